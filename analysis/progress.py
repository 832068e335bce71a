"""Progress bars for long work: shown in a terminal (CLI, scripts), silent inside a Quarto render."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def _in_kernel() -> bool:
    # Inside a Jupyter kernel (a Quarto render, the book check) bars would end up in the book.
    return "ipykernel" in sys.modules


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", **kwargs) -> tqdm:
    """A tqdm bar with an ETA; disabled in kernels and with ``ANALYSIS_NO_PROGRESS=1``."""
    disable = _in_kernel() or os.environ.get("ANALYSIS_NO_PROGRESS") == "1"
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        disable=disable,
        dynamic_ncols=True,
        file=sys.stderr,
        **kwargs,
    )
