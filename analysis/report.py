"""Small helpers chapters use to show results: markdown tables and number formatting.

Everything a reader sees goes through these, so no Python repr (``np.int64(19)``, ``nan``,
``True``, ``5.000`` for a count) reaches the book: integers print as integers, missing values as
an em dash, numpy scalars as plain numbers.
"""

from __future__ import annotations

import math
import numbers
import re
import textwrap

MISSING = "—"  # em dash: a value that does not exist (not applicable, not measured)

# Pandoc markdown treats any backslash-escaped ASCII punctuation literally (all_symbols_escapable),
# and its HTML and Typst writers then escape what those formats need: so escaping every one of them
# makes text from a data set or a model plain text in every output format.
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def escape_md(text, newlines: str = " ", long_words: int | None = None) -> str:
    """Text that came from data or a model (a news text, a question, a chain of thought), made literal
    markdown: no HTML tag, link, image, citation, emphasis, math or Typst markup in it takes effect in
    any output format. Newlines become ``newlines`` (a space for table cells and sentences; pass
    ``"\\\n"`` to keep line breaks in a paragraph). ``long_words``: a run of more characters
    without a space gets a zero-width space after every ``long_words`` of them, where a line may
    break (a model's unbroken output would run off a PDF page). None and NaN print as the em dash."""
    if _is_missing(text):
        return MISSING
    text = str(text)
    if long_words:
        text = re.sub(r"\S{%d,}" % (long_words + 1),
                      lambda m: "\u200b".join(m.group(0)[i:i + long_words] for i in range(0, len(m.group(0)), long_words)),
                      text)
    escaped = _PUNCT.sub(r"\\\1", text)
    return escaped.replace("\r\n", "\n").replace("\n", newlines)


class Literal(str):
    """Text from data or a model for an inline expression (``{python} name``): the page shows it as
    the text it is. A plain ``str`` goes through Quarto's own escaping, which leaves ``@``, ``$``,
    ``&``, ``<``, ``~`` and ``^`` live (a question holding "@key" became a citation, "&lt;" a "<");
    this one offers Quarto its markdown, ``escape_md``'s (text/markdown wins over text/plain)."""

    def _repr_markdown_(self) -> str:
        return escape_md(str(self))


class Markdown(str):
    """Markdown for an inline expression, composed by a helper whose data parts went through
    ``escape_md`` (a sentence quoting topics): Quarto inserts it as it is, without its own escaping."""

    def _repr_markdown_(self) -> str:
        return str(self)


def no_shortcodes(text) -> str:
    """Text for a code block or a cell's printed output: Quarto runs shortcodes even there (a
    "{{< pagebreak >}}" in a question vanished from the page), so a zero-width space goes after
    every "{{" that would open one; the text reads the same."""
    return re.sub(r"\{\{(?=[<%])", "{{\u200b", str(text))


def code_block(text, width: int | None = None, lang: str = "") -> str:
    """A fenced code block showing ``text`` literally (a model's raw output): the fence is longer
    than any backtick run inside, so no text can close it early; ``width`` wraps long lines (a PDF
    page does not scroll), keeping each line's indentation; ``no_shortcodes`` first."""
    text = no_shortcodes(text)
    lines = text.splitlines() or [""]
    if width:
        wrapped = []
        for line in lines:
            indent = line[: len(line) - len(line.lstrip())]
            wrapped += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=True,
                                     break_on_hyphens=False, drop_whitespace=False) or [""]
        lines = wrapped
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence + lang, *lines, fence])


def _is_missing(x) -> bool:
    if x is None:
        return True
    try:
        import pandas as pd

        if x is pd.NA or x is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(x, numbers.Real) and not isinstance(x, numbers.Integral) and math.isnan(float(x))


def _integer_column(values) -> bool:
    """A column of numbers that are all whole (counts, steps, layers), shown without decimals.

    Integer dtypes always are; a float column is when every present value is whole and at least one
    is beyond 1 in magnitude (so a score column that happens to be all 0.0 or 1.0 keeps its decimals).
    """
    present = [v for v in values if not _is_missing(v)]
    if not present or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in present):
        return False
    if all(isinstance(v, numbers.Integral) for v in present):
        return True
    return all(float(v).is_integer() for v in present) and any(abs(float(v)) > 1 for v in present)


def fmt_cell(x, digits: int = 3, integer: bool = False) -> str:
    """One table cell as text: numbers rounded to ``digits`` (whole numbers when ``integer``),
    booleans as yes/no, missing values (None, NaN, NA) as an em dash, numpy scalars as plain numbers."""
    if _is_missing(x):
        return MISSING
    if isinstance(x, bool) or type(x).__module__ == "numpy" and type(x).__name__ in ("bool", "bool_"):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}" if abs(int(x)) >= 10_000 else str(int(x))
    if isinstance(x, numbers.Real):
        x = float(x)
        if integer:
            return f"{round(x):,}" if abs(x) >= 10_000 else str(round(x))
        return f"{x:.{digits}f}"
    return str(x)


def _pipe_cell(text: str) -> str:
    """A cell of markdown the package wrote, kept inside its pipe-table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(df, digits: int | dict = 3, index: bool = False, widths: list[float] | None = None,
             markup: tuple[str, ...] = ()):
    """A DataFrame as a pipe table that Quarto cross-references (use under a ``tbl-`` label).

    ``digits``: decimals for float columns, one number or a dict ``{column: digits}`` (other columns
    get 3). Columns of whole numbers print as integers, missing values as an em dash, numeric
    columns are right-aligned, text columns left-aligned. ``widths``: relative column widths (any scale); the table then spans
    the text width and its cells wrap, which keeps wide tables inside the PDF page.
    Every text cell is data (``escape_md``: a news text, a question, a file name prints literally,
    whatever it holds) except in the ``markup`` columns, whose cells the package writes as markdown
    (emphasis, code, cross-references); headers are the package's and are markdown.
    """
    from IPython.display import Markdown

    return Markdown(md_table_text(df, digits=digits, index=index, widths=widths, markup=markup))


def md_table_text(df, digits: int | dict = 3, index: bool = False, widths: list[float] | None = None,
                  markup: tuple[str, ...] = ()) -> str:
    """The markdown text of :func:`md_table` (testable without IPython)."""
    if index:
        df = df.reset_index()
    header = [str(c) for c in df.columns]
    columns = [list(df.iloc[:, i]) for i in range(df.shape[1])]
    cols_text, align = [], []
    for name, values in zip(header, columns):
        d = digits.get(name, 3) if isinstance(digits, dict) else digits
        integer = _integer_column(values)
        numeric = all((isinstance(v, numbers.Real) and not isinstance(v, bool)) or _is_missing(v)
                      for v in values) and any(
            not _is_missing(v) for v in values)
        cells = [fmt_cell(v, d, integer) for v in values]
        if numeric or name in markup:  # the package's own text: only what would break the table
            cells = [_pipe_cell(c) for c in cells]
        else:  # data: literal in every format (escape_md escapes | and folds newlines too)
            cells = [c if _is_missing(v) else escape_md(c) for c, v in zip(cells, values)]
        cols_text.append(cells)
        align.append("right" if numeric else "left")
    unknown = set(markup) - set(header)
    if unknown:
        raise ValueError(f"md_table: markup columns {sorted(unknown)} are not in the table")
    rows = [list(r) for r in zip(*cols_text)] if cols_text else []
    header = [_pipe_cell(h) for h in header]
    n = len(header)
    if widths is not None:
        if len(widths) != n:
            raise ValueError(f"md_table: {len(widths)} widths for {n} columns")
        total = float(sum(widths))
        # pandoc reads relative widths from the dashes when a line is longer than 72 characters
        dashes = [max(3, round(120 * w / total)) for w in widths]
    else:
        dashes = [max(3, len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    sep = ["-" * (k - 1) + ":" if a == "right" else ":" + "-" * (k - 1) for k, a in zip(dashes, align)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x: float, digits: int = 1) -> str:
    """0.4567 -> '45.7%'."""
    return MISSING if _is_missing(x) else f"{100 * float(x):.{digits}f}%"


def num(x: float, digits: int = 3) -> str:
    """A number for prose, with a fixed number of decimals (numpy scalars print as plain numbers)."""
    return MISSING if _is_missing(x) else f"{float(x):.{digits}f}"


def count(x) -> str:
    """A whole number for prose, with thousands separators: 120000 -> '120,000'."""
    return MISSING if _is_missing(x) else f"{round(float(x)):,}"
