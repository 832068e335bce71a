"""Fault suite, data: every bad-input class of the loaders ends in one DataError line naming the file,
the problem and the fix, raised before anything is hashed or computed; the offline fingerprints
(and so the stored offline run keys) stay exactly as they were."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import experiments, store
from analysis.data import agnews, lung, scienceqa
from analysis.errors import DataError

PROJECT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("offline_unchanged")  # tests/conftest.py


def one_line(err, path) -> str:
    text = str(err)
    assert "\n" not in text and str(path) in text and "(fix: " in text, text
    return text


# --- lung --------------------------------------------------------------------------------------


def lung_arrays(n=3, size=32, **override):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in lung.SPLITS:
        x = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
        y = np.zeros((n, size, size, 1), np.uint8)
        y[:, 8:24, 4:14] = 1
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    arrays.update(override)
    return arrays


def write_npz(tmp_path, **arrays) -> Path:
    path = tmp_path / "lung" / "lung_field_dataset.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def test_a_good_small_file_loads(tmp_path):
    path = write_npz(tmp_path, **lung_arrays())
    assert lung.fingerprint(path) == store.fingerprint_files([path])


def test_empty_mask_is_refused(tmp_path):
    y = lung_arrays()["y_val"].copy()
    y[1] = 0
    path = write_npz(tmp_path, **lung_arrays(y_val=y))
    with pytest.raises(DataError, match="1 empty lung mask") as err:
        lung.fingerprint(path)
    one_line(err.value, path)


def test_split_with_zero_images_is_refused(tmp_path):
    path = write_npz(tmp_path, **lung_arrays(x_test=np.zeros((0, 32, 32, 1), np.uint8),
                                             y_test=np.zeros((0, 32, 32, 1), np.uint8)))
    with pytest.raises(DataError, match="test split has no images") as err:
        lung.fingerprint(path)
    one_line(err.value, path)


def test_split_at_another_resolution_is_refused(tmp_path):
    other = lung_arrays(size=64)
    path = write_npz(tmp_path, **lung_arrays(x_val=other["x_val"], y_val=other["y_val"]))
    with pytest.raises(DataError, match="different resolutions") as err:
        lung.fingerprint(path)
    one_line(err.value, path)


def test_object_array_is_a_clear_error(tmp_path):
    names = np.array(["a", 1, None], dtype=object)
    path = write_npz(tmp_path, **lung_arrays(names_train=names))
    with pytest.raises(DataError, match="cannot be read without pickle") as err:
        lung.fingerprint(path)
    one_line(err.value, path)


def test_corrupt_zip_member_is_a_clear_error(tmp_path):
    path = write_npz(tmp_path, **lung_arrays())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("x_val.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
    data[start:start + 40] = bytes(40)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"x_val\].*damaged member|cannot read") as err:
        lung.fingerprint(path)
    one_line(err.value, path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "npy", "directory"])
def test_unreadable_lung_files(tmp_path, damage):
    path = write_npz(tmp_path, **lung_arrays())
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "npy":
        path.unlink()
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(DataError) as err:
        lung.fingerprint(path)
    one_line(err.value, path)


def test_missing_lung_file_stops_the_full_profile_before_any_work(tmp_path, monkeypatch):
    """Issue 11.1: no raw FileNotFoundError from the fingerprint; the error says where to put the file."""
    monkeypatch.setenv("ANALYSIS_DATA_DIR", str(tmp_path))
    called = []
    sam = experiments.get("sam_prompts")
    monkeypatch.setitem(experiments._REGISTRY, "sam_prompts", dataclasses.replace(sam, compute=called.append))
    with pytest.raises(DataError) as err:
        experiments.get_or_run("sam_prompts", "full", store=store.Store(tmp_path / "results"))
    text = one_line(err.value, tmp_path / "lung" / "lung_field_dataset.npz")
    assert "ANALYSIS_DATA_DIR" in text and "--data-dir" in text and "file not found" in text
    assert not (tmp_path / "results").exists() and called == []


# --- AG News -----------------------------------------------------------------------------------


def agnews_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "ag_news"
    folder.mkdir()
    monkeypatch.setenv("ANALYSIS_DATA_DIR", str(tmp_path))
    return folder


GOOD_CSV = "text,label\nStocks fell today,2\nTeam wins the cup,1\n"


@pytest.mark.parametrize("name, content, match", [
    ("latin-1", "text,label\nCaf\xe9 prices rise,2\n".encode("latin-1"), "not UTF-8"),
    ("semicolons", b"text;label\nStocks fell;2\n", "separator is ';'"),
    ("tabs", b"text\tlabel\nStocks fell\t2\n", "separator is '\\\\t'"),
    ("empty", b"", "empty"),
    ("header only", b"text,label\n", "no rows"),
    ("bad quoting", b'text,label\n"Stocks, fell,2\nTeam,1\n', "not a well-formed CSV|label"),
    ("labels 1-4", b"text,label\nStocks fell,4\nTeam wins,1\nOther,3\nx,2\ny,5\n", "outside 0-3"),
    ("no header", b"3,Stocks fell,desc\n2,Team wins,desc\n", "missing column"),
    ("unquoted comma", b"text,label\nStocks, fell today,2\nTeam, wins the cup,1\n", "more fields than its header"),
    # label first: the extra fields' leading column (2, 1) happens to be a range, still not the rows' index
    ("unquoted comma, label first", b"label,text\n2,Stocks, fell today\n1,Team, wins the cup\n", "more fields than its header"),
])
def test_bad_csv_files(tmp_path, monkeypatch, name, content, match):
    folder = agnews_dir(tmp_path, monkeypatch)
    (folder / "train.csv").write_bytes(content)
    (folder / "test.csv").write_text(GOOD_CSV)
    with pytest.raises(DataError, match=match) as err:
        agnews.fingerprint("local")
    one_line(err.value, folder / "train.csv")


@pytest.mark.parametrize("damage", ["truncated", "not parquet"])
def test_bad_parquet_files(tmp_path, monkeypatch, damage):
    folder = agnews_dir(tmp_path, monkeypatch)
    pd.DataFrame({"text": ["a b", "c d"], "label": [0, 1]}).to_parquet(folder / "train.parquet")
    pd.DataFrame({"text": ["a b", "c d"], "label": [0, 1]}).to_parquet(folder / "test.parquet")
    path = folder / "test.parquet"
    path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"text,label\nx,1\n")
    with pytest.raises(DataError, match="cannot be read as parquet") as err:
        agnews.fingerprint("local")
    one_line(err.value, path)


def test_missing_agnews_folder_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYSIS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="file not found") as err:
        experiments.get("agnews_stats").data_fingerprint(experiments.get("agnews_stats").configs["offline"])
    assert "ANALYSIS_DATA_DIR" in one_line(err.value, tmp_path / "nowhere")


def test_hub_fingerprints_carry_the_pinned_revision():
    assert agnews.fingerprint("hub") == f"hub:{agnews.HUB_ID}@{agnews.HUB_REVISION}"
    assert scienceqa.fingerprint("test", "hub") == f"hub:{scienceqa.HUB_ID}@{scienceqa.HUB_REVISION}"
    for rev in (agnews.HUB_REVISION, scienceqa.HUB_REVISION):
        assert len(rev) == 40 and int(rev, 16) >= 0


def test_scienceqa_hub_loader_reads_only_the_needed_split_at_the_revision(monkeypatch):
    import datasets

    calls = []

    class Fake(list):
        column_names = ["question", "choices", "answer", "image"]

        def cast_column(self, *args):
            return self

    def fake_load(hub_id, **kwargs):
        calls.append((hub_id, kwargs))
        return Fake([{"question": "q", "choices": ["a", "b"], "answer": 0, "image": None}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = scienceqa.load_hub_rows("val")
    assert calls == [(scienceqa.HUB_ID, {"revision": scienceqa.HUB_REVISION,
                                         "data_files": {"validation": "data/validation-*.parquet"},
                                         "split": "validation"})]
    assert rows[0]["pid"] == "val-0" and rows[0]["has_image"] is False


# --- ScienceQA ---------------------------------------------------------------------------------


def row(pid, **kw):
    base = {"pid": pid, "question": f"Question {pid}?", "choices": ["w", "x", "y", "z"], "answer": 1,
            "has_image": False}
    base.update(kw)
    return base


def write_jsonl(tmp_path, rows, raw: bytes | None = None) -> Path:
    path = tmp_path / "scienceqa" / "scienceqa_test_all.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows).encode())
    return path


GOOD = [row(str(i)) for i in range(1, 6)]


@pytest.mark.parametrize("name, rows, raw, match", [
    ("latin-1", None, '{"pid": "1", "question": "Caf\xe9?"}\n'.encode("latin-1"), "not UTF-8"),
    ("truncated", None, (json.dumps(row("1")) + "\n" + json.dumps(row("2"))[:30]).encode(), "line 2 is not JSON"),
    ("not an object", [row("1"), ["a", "b"]], None, "line 2 is a JSON list"),
    ("empty", None, b"", "no questions"),
    ("blank lines", None, b"\n\n  \n", "no questions"),
    ("missing choices", [*GOOD, {k: v for k, v in row("9").items() if k != "choices"}], None, "choices missing"),
    ("choices a string", [*GOOD, row("9", choices="w, x, y, z")], None, "choices str, not a list"),
    ("choice null", [*GOOD, row("9", choices=["w", None, "y", "z"])], None, "not a non-empty string"),
    ("missing id", [*GOOD, {k: v for k, v in row("9").items() if k != "pid"}], None, "has no id"),
    ("has_image string", [*GOOD, row("9", has_image="false")], None, "has_image 'false'"),
    ("duplicate id", [*GOOD, row("1")], None, "occurs more than once"),
    ("answer out of range", [*GOOD, row("9", answer=4)], None, "not an index 0-3"),
])
def test_bad_scienceqa_files(tmp_path, name, rows, raw, match):
    path = write_jsonl(tmp_path, rows, raw)
    with pytest.raises(DataError, match=match) as err:
        scienceqa.fingerprint("test", root=path.parent)
    one_line(err.value, path)


def test_too_few_questions_names_the_file(tmp_path):
    path = write_jsonl(tmp_path, GOOD)
    with pytest.raises(DataError, match="only 5 are text-only") as err:
        scienceqa.sample_questions(n=50, root=path.parent)
    one_line(err.value, path)


def test_exclusions_are_only_the_selection_rule(tmp_path):
    rows = [*GOOD, row("7", has_image=True), row("8", choices=["a", "b"]), row("9", choices=list("abcde"))]
    sample = scienceqa.sample_questions(n=5, root=write_jsonl(tmp_path, rows).parent)
    assert sample.excluded == {"has image": 1, "fewer than 4 options": 1, "more than 4 options": 1}


# --- the stored offline runs keep their keys -----------------------------------------------------


def test_offline_keys_and_fingerprints_are_unchanged(shared_data):
    """Every stored offline run's key is reproduced from its stored config and code version with the
    data fingerprint computed now (validation before hashing changed no fingerprint), and an
    experiment whose config and code version are unchanged since its run finds that run."""
    results = PROJECT / "results" / "offline"
    checked, current = 0, 0
    for name, exp in sorted(experiments.load_all().items()):
        if "offline" not in exp.configs or not (results / name).is_dir():
            continue
        config = exp.configs["offline"]
        fingerprint = exp.data_fingerprint(config)
        for folder in sorted(p for p in (results / name).iterdir() if (p / "run.json").exists()):
            meta = json.loads((folder / "run.json").read_text())
            assert meta["data_fingerprint"] == fingerprint, name
            assert store.run_key(name, "offline", meta["config"], meta["code_version"], fingerprint) == folder.name
            if meta["config"] == store.to_jsonable(config) and meta["code_version"] == exp.code_version:
                assert exp.key(config, "offline") == folder.name
                assert experiments.lookup(name, "offline") is not None
                current += 1
            checked += 1
    assert checked >= 7 and current >= 6  # the SAM and BERT runs are found under today's keys


def test_a_folder_where_a_data_file_belongs(tmp_path, monkeypatch):
    folder = agnews_dir(tmp_path, monkeypatch)
    (folder / "train.csv").mkdir()
    (folder / "test.csv").write_text(GOOD_CSV)
    with pytest.raises(DataError, match="cannot be read") as err:
        agnews.fingerprint("local")
    one_line(err.value, folder / "train.csv")
    path = tmp_path / "scienceqa" / "scienceqa_test_all.jsonl"
    path.mkdir(parents=True)
    with pytest.raises(DataError, match="is not a file") as err:
        scienceqa.fingerprint("test", root=path.parent)
    one_line(err.value, path)


def test_byte_order_marks_are_handled(tmp_path, monkeypatch):
    folder = agnews_dir(tmp_path, monkeypatch)
    (folder / "train.csv").write_bytes(b"\xef\xbb\xbf" + GOOD_CSV.encode())
    (folder / "test.csv").write_text(GOOD_CSV)
    assert list(agnews.load("train")["text"]) == ["Stocks fell today", "Team wins the cup"]
    path = write_jsonl(tmp_path, GOOD)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert scienceqa.sample_questions(n=5, root=path.parent).n_rows == 5


def test_tb_flags_other_than_0_1_are_refused(tmp_path):
    path = write_npz(tmp_path, **lung_arrays(tb_val=np.array([0, 1, 7], np.uint8),
                                             names_val=np.array(["a", "b", "c"])))
    with pytest.raises(DataError, match=r"TB flags \[7\]") as err:
        lung.fingerprint(path)
    one_line(err.value, path)
