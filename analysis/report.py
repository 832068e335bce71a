"""Small helpers chapters use to show results: markdown tables and number formatting."""

from __future__ import annotations

import math


def md_table(df, digits: int = 3, index: bool = False):
    """A DataFrame as a pipe table that Quarto cross-references (use under a ``tbl-`` label)."""
    from IPython.display import Markdown

    return Markdown(df.to_markdown(index=index, floatfmt=f".{digits}f"))


def pct(x: float, digits: int = 1) -> str:
    """0.4567 -> '45.7%'."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def num(x: float, digits: int = 3) -> str:
    """A number for prose, with a fixed number of decimals."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"
