"""The table and number helpers every chapter uses: no Python repr may reach the book."""

import numpy as np
import pandas as pd

from analysis.report import MISSING, count, fmt_cell, md_table_text, num, pct


def _rows(text):
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()]


def test_integer_columns_print_as_integers():
    df = pd.DataFrame({"n": np.array([5, 12], dtype=np.int64), "as float": [5.0, 12.0], "score": [0.5, 0.25]})
    rows = _rows(md_table_text(df))
    assert rows[2] == ["5", "5", "0.500"]
    assert rows[3] == ["12", "12", "0.250"]


def test_scores_that_happen_to_be_whole_keep_their_decimals():
    rows = _rows(md_table_text(pd.DataFrame({"F1": [0.0, 1.0]})))
    assert rows[2] == ["0.000"] and rows[3] == ["1.000"]


def test_missing_values_are_an_em_dash_not_nan():
    df = pd.DataFrame({"x": [0.5, np.nan], "y": [None, "a"], "z": [1.0, float("nan")]})
    text = md_table_text(df)
    assert "nan" not in text.lower() and "None" not in text
    assert _rows(text)[3][0] == MISSING and _rows(text)[2][1] == MISSING


def test_numpy_scalars_and_booleans():
    assert fmt_cell(np.int64(19)) == "19"
    assert fmt_cell(np.float64(0.12345), 2) == "0.12"
    assert fmt_cell(np.bool_(True)) == "yes" and fmt_cell(False) == "no"
    assert num(np.float64(0.5)) == "0.500" and num(np.int64(3), 0) == "3"
    assert num(float("nan")) == MISSING and pct(None) == MISSING and pct(np.float64(0.4567)) == "45.7%"
    assert count(np.float64(120000.0)) == "120,000"


def test_numeric_columns_right_aligned_and_pipes_escaped():
    rows = md_table_text(pd.DataFrame({"name": ["a|b"], "v": [1.5]})).splitlines()
    assert rows[1] == "|:---|----:|"
    assert "a\\|b" in rows[2]


def test_widths_make_a_long_separator_with_proportional_dashes():
    sep = md_table_text(pd.DataFrame({"a": ["x"], "b": ["y"]}), widths=[1, 3]).splitlines()[1]
    a, b = sep.strip("|").replace(":", "-").split("|")
    assert len(sep) > 72 and abs(len(b) / len(a) - 3) < 0.1


def test_digits_per_column():
    rows = _rows(md_table_text(pd.DataFrame({"a": [0.12345], "b": [0.12345]}), digits={"a": 1}))
    assert rows[2] == ["0.1", "0.123"]


def test_escape_md_makes_data_literal_in_html_and_typst():
    """Every markup a data set or a model could carry prints as text (Pandoc: HTML and Typst writers)."""
    import shutil
    import subprocess

    import pytest

    from analysis.report import escape_md

    payload = ('<img src=x onerror=alert(1)> </script> <!-- c --> [x](javascript:alert(1)) ![i](y.png) '
               '#set text(red) @key $x$ **b** _i_ a|b <https://a.b>')
    md = escape_md(payload + "\nline 2")
    assert "\n" not in md and "<img" not in md.replace("\\<img", "")
    if shutil.which("quarto") is None:
        pytest.skip("Quarto (its pandoc) is not on PATH")
    html = subprocess.run(["quarto", "pandoc", "-f", "markdown", "-t", "html"], input=md, capture_output=True,
                          text=True, check=True).stdout
    assert "<img" not in html and "<a " not in html and "<!--" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    typ = subprocess.run(["quarto", "pandoc", "-f", "markdown", "-t", "typst"], input=md, capture_output=True,
                         text=True, check=True).stdout
    assert "\\#set" in typ and "#link" not in typ and "#image" not in typ and "\\@key" in typ


def test_code_block_cannot_be_closed_by_its_text():
    from analysis.report import code_block

    block = code_block("a\n```\nnot code? ````` x", width=10)
    fence = block.splitlines()[0]
    assert fence == "`" * 6 and block.splitlines()[-1] == fence
    assert all(len(line) <= 10 for line in block.splitlines()[1:-1])


def test_code_block_stops_quarto_shortcodes_in_its_text():
    """Quarto expands shortcodes inside code blocks too: a question holding one keeps it as text."""
    from analysis.report import code_block

    block = code_block("a {{< pagebreak >}} b {{{< meta title >}}}")
    assert "{{<" not in block and "{{\u200b< pagebreak >}}" in block
    assert block.replace("\u200b", "").splitlines()[1] == "a {{< pagebreak >}} b {{{< meta title >}}}"


def test_inline_texts_offer_quarto_escaped_markdown():
    """Quarto escapes a plain str inline result itself and leaves @, $ and & live; Literal offers
    escape_md's markdown instead (text/markdown wins), Markdown its own, already escaped."""
    from analysis.report import Literal, Markdown, escape_md

    name = Literal("@key $x$ &lt; <b>")
    assert name == "@key $x$ &lt; <b>" and name._repr_markdown_() == escape_md(name)
    assert name._repr_markdown_().startswith(r"\@key \$x\$ \&lt\; \<b\>")
    assert Markdown("“\\@k” (1 of 2)")._repr_markdown_() == "“\\@k” (1 of 2)"


def test_md_table_cells_are_data_unless_declared_markup():
    import pandas as pd
    import pytest

    from analysis.report import md_table_text

    df = pd.DataFrame({"text": ["<img src=x onerror=alert(1)> | [x](javascript:alert(1))", None],
                       "n": [1, 2], "label": ["**bold** `code`", "@sec-x"]})
    md = md_table_text(df, markup=("label",))
    rows = md.splitlines()[2:]
    assert rows[0].startswith("| \\<img src\\=x onerror\\=alert\\(1\\)\\> \\| \\[x\\]\\(javascript\\:alert\\(1\\)\\) | 1 |")
    assert rows[0].endswith("| **bold** `code` |") and rows[1].endswith("| @sec-x |")
    assert "| — |" in rows[1]  # missing stays the em dash
    with pytest.raises(ValueError, match="not in the table"):
        md_table_text(df, markup=("nope",))


def test_escape_md_breaks_long_unbroken_words():
    from analysis.report import escape_md

    out = escape_md("short " + "d" * 65, long_words=30)
    assert out.split(" ")[1].split("\u200b") == ["d" * 30, "d" * 30, "d" * 5]
    assert "\u200b" not in escape_md("d" * 65)  # only when asked
