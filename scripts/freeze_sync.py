"""Quarto pre-render script: drop frozen chapter outputs that no longer match the result store.

Runs before every `quarto render` / `quarto preview` (see `pre-render` in _quarto.yml); standard
library only, so it also runs where the package's dependencies are missing. See analysis/freeze.py.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import sync  # noqa: E402
from analysis.profiles import active_profile  # noqa: E402

sync(ROOT, active_profile())
