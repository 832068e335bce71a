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
