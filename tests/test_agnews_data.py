"""AG News loader: real local files, label mapping against the original CSV, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data import agnews
from analysis.errors import DataError


def test_local_splits_shapes_and_labels():
    test = agnews.load("test")
    assert len(test) == 7600
    assert test["label"].value_counts().to_dict() == {0: 1900, 1: 1900, 2: 1900, 3: 1900}
    assert test["id"].is_unique and test["id"].iloc[0] == "test-0"
    train = agnews.load("train")
    assert len(train) == 8794
    assert set(train["label"]) == {0, 1, 2, 3}
    assert not set(train["text"]) & set(test["text"])  # the offline train rows are not test rows


def test_label_mapping_matches_original_csv():
    """classes.txt order is the label order, and the original CSV's 1-4 labels are ours plus one."""
    folder = agnews.folder() / "original"
    if not (folder / "test.csv").exists():
        pytest.skip("original CSV not present")
    classes = (folder / "classes.txt").read_text().split()
    assert tuple(classes) == agnews.LABELS
    raw = pd.read_csv(folder / "test.csv", header=None, names=["label", "title", "description"], nrows=200)
    test = agnews.load("test").iloc[:200]
    assert (raw["label"].to_numpy() - 1 == test["label"].to_numpy()).all()
    assert (raw["title"] + " " + raw["description"]).str.strip().tolist() == test["text"].tolist()


@pytest.mark.parametrize(
    "rows, fragment",
    [
        ({"text": ["ok text", "   "], "label": [0, 1]}, "empty text"),
        ({"text": ["ok text", None], "label": [0, 1]}, "not a string"),
        ({"text": ["ok text", 3.5], "label": [0, 1]}, "not a string"),
        ({"text": ["a", "b"], "label": [0, 4]}, "outside 0-3"),
        ({"text": ["a", "b"], "label": [-1, 2]}, "outside 0-3"),
        ({"text": ["a", "b"], "label": ["World", 2]}, "outside 0-3"),
        ({"headline": ["a"], "label": [0]}, "missing column"),
    ],
)
def test_bad_rows_raise_data_error(rows, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        agnews.validate(pd.DataFrame(rows), "x.parquet")
    assert info.value.fix  # every error says how to fix it


def test_bad_csv_file_names_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "ag_news"
    folder.mkdir()
    pd.DataFrame({"text": ["fine", ""], "label": [1, 2]}).to_csv(folder / "train.csv", index=False)
    monkeypatch.setenv("ANALYSIS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        agnews.load("train")
    assert info.value.path == folder / "train.csv"
    with pytest.raises(DataError, match="file not found"):
        agnews.load("test")


def test_text_is_stripped_and_labels_are_ints():
    df = agnews.validate(pd.DataFrame({"text": ["  a  ", "b"], "label": ["1", 3.0]}), "x")
    assert df["text"].tolist() == ["a", "b"] and df["label"].tolist() == [1, 3]


def test_stratified_sample_and_holdout():
    train = agnews.load("train")
    sample = agnews.stratified_sample(train, 40, seed=0)
    assert sample["label"].value_counts().tolist() == [10, 10, 10, 10]
    assert sample["id"].tolist() == agnews.stratified_sample(train, 40, seed=0)["id"].tolist()
    rest, val = agnews.train_validation_split(train, 800, seed=42)
    assert len(val) == 800 and len(rest) == len(train) - 800
    assert not set(rest["id"]) & set(val["id"])
    assert np.bincount(val["label"]).tolist() == [200, 200, 200, 200]
