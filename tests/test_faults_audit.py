"""Fault suite, audit of issue 20's cases that had no test of their own (and a few found beside them).

Each test is named after its case and class (injection, stale, unclear). No render: each case is
checked where it is decided (the CLI, the store, the freezer sync, the notebook's own functions).
The last group are cases found beside the listed ones (annotations that are not UTF-8 or lack a
label, a cache folder that is a file, `status` on a run edited consistently, a CRLF checkout of
the store, truncated weights of an older training). Everything runs on copies under ``tmp_path``;
``results/offline`` is checked byte-identical around the module.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError, DataError, StoreError

PROJECT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("offline_unchanged")  # tests/conftest.py

PAYLOADS = ['<img src=x onerror="window.__pwned=1">', "</script><script>window.__pwned=2</script>", "<!-- x",
            "[click](javascript:window.__pwned=3)", "#set text(red) @key $m$"]


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=PROJECT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(proc) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def offline_copy(tmp_path):
    """A copy of the committed offline store (ANALYSIS_RESULTS_DIR points here in the CLI tests)."""
    root = tmp_path / "results"
    shutil.copytree(PROJECT / "results" / "offline", root / "offline")
    return root


def run_dir(root: Path, experiment: str) -> Path:
    return next(p for p in sorted((root / "offline" / experiment).iterdir()) if not p.name.startswith("."))


def rewrite_run_json(folder: Path, **fields) -> None:
    """Edit run.json and update its checksum (a consistent hand edit)."""
    meta = json.loads((folder / "run.json").read_text())
    meta.update(fields)
    data = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode()
    (folder / "run.json").write_bytes(data)
    sums = [f"{hashlib.sha256(data).hexdigest()}  run.json" if line.endswith("  run.json") else line
            for line in (folder / "checksums.sha256").read_text().splitlines()]
    (folder / "checksums.sha256").write_text("\n".join(sums) + "\n")


# --- injection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", PAYLOADS)
def test_injection_widget_json_with_html_comment_is_valid_json(text):
    """`<!--` (or `</script>`) in a text broke the CoT browser: to_json wrote `<\\!--`, not JSON."""
    from analysis.lab import to_json

    out = to_json({"t": text, "rows": [text]})
    assert json.loads(out) == {"t": text, "rows": [text]}
    assert "<" not in out and ">" not in out


def test_injection_inline_data_names_are_offered_as_literal_markdown():
    """Chapter 4's group names and chapter 2's image names in the prose (inline expressions) reach
    Quarto as escaped markdown (text/markdown wins over Quarto's own text/plain escaping)."""
    from analysis.cot import chapter as cot
    from analysis.report import escape_md

    for text in PAYLOADS:
        value = cot._group_name("stem: " + text)
        assert hasattr(value, "_repr_markdown_") and value._repr_markdown_() == escape_md(text)


@pytest.mark.parametrize("ref", ["../sam_explorer/0123456789abcdef", "offline/../../etc", "/etc/passwd",
                                 "offline/sam_explorer/../../../x", ".."])
def test_injection_lab_decoder_refuses_a_run_outside_the_store(tmp_path, ref):
    """`lab-decoder` took `..` as a profile and loaded a run from outside the store, and its message
    suggested `--profile ..`: now anything but <profile>/sam_explorer/<16-hex key> is refused."""
    out = tmp_path / "decoder.onnx"
    line = error_line(cli("lab-decoder", ref, "--out", str(out), env={"ANALYSIS_RESULTS_DIR": str(tmp_path)}))
    assert "not a stored explorer run" in line and "offline, full, smoke" in line
    assert "--profile .." not in line and "--profile /" not in line
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


# --- stale or unverified renders ----------------------------------------------------------------


def test_stale_damaged_table_stops_the_render_before_quarto(offline_copy, shared_data):
    """A table failing its checksum made `make render` exit 0: the pre-render step (`prepare`) now
    verifies every stored run and stops with the store's message (pre_render.py exits with it)."""
    table = run_dir(offline_copy, "sam_auto") / "records.jsonl"
    table.write_text(table.read_text().replace("0.", "1.", 1))  # still valid JSON
    line = error_line(cli("prepare", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(offline_copy)}))
    assert str(table) in line and "differs from its checksum" in line and "--force" in line


def _frozen_project(root: Path, results: Path) -> Path:
    from analysis import freeze

    run = results / "offline" / "exp" / "k1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"a": 1}')
    (run / "checksums.sha256").write_text("abc  run.json\n")
    frozen = root / "_freeze" / "chapters" / "one" / "execute-results"
    frozen.mkdir(parents=True)
    (frozen / "html.json").write_text(json.dumps({"result": {"markdown": "text"}}))
    deps = {"profile": "offline", "results": str(results), "modules": {},
            "folders": {"offline/exp": freeze.folder_digest(results / "offline" / "exp")}, "files": {}}
    path = root / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(deps))
    return frozen


def test_stale_another_store_in_force_through_the_environment(tmp_path, monkeypatch):
    """`ANALYSIS_RESULTS_DIR` pointing at another store rendered the old numbers: the pre-render sync
    (no explicit store, as scripts/pre_render.py calls it) reads the variable and drops the chapter."""
    from analysis import freeze

    first, other = tmp_path / "store-a", tmp_path / "store-b"
    frozen = _frozen_project(tmp_path, first)
    shutil.copytree(first, other)  # the same runs, byte for byte, in another folder
    monkeypatch.setenv("ANALYSIS_RESULTS_DIR", str(first))
    assert freeze.sync(tmp_path, "offline", log=lambda m: None) == [] and frozen.exists()
    monkeypatch.setenv("ANALYSIS_RESULTS_DIR", str(other))
    said = []
    assert freeze.sync(tmp_path, "offline", log=said.append) == ["chapters/one"]
    assert not frozen.exists() and "result store" in said[0] and str(other) in said[0]


def test_stale_changed_question_makes_the_stored_run_missing(tmp_path, monkeypatch, shared_data):
    """A question edited in the data: the CoT run's key (data fingerprint) changes, so the stored
    run no longer answers and the pre-render step computes a new one (the chapter then re-executes:
    a new run changes its folder's digest)."""
    from analysis import experiments, freeze
    from analysis.data import scienceqa

    exp = experiments.get("cot_scienceqa")
    config = exp.configs["offline"]
    before = exp.key(config, "offline")
    data = tmp_path / "data"
    shutil.copytree(shared_data / "scienceqa", data / "scienceqa")
    for path in (data / "scienceqa").glob("scienceqa_*_all.jsonl"):
        path.chmod(0o644)
        lines = path.read_text().splitlines()
        row = json.loads(lines[0])
        row["question"] = "Edited: " + row["question"]
        path.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    monkeypatch.setenv("ANALYSIS_DATA_DIR", str(data))
    scienceqa._CHECKED.clear()
    after = exp.key(config, "offline")
    assert after != before
    assert experiments.lookup("cot_scienceqa", "offline") is None  # prepare computes it
    folder = PROJECT / "results" / "offline" / "cot_scienceqa"
    copy = tmp_path / "cot_scienceqa"
    shutil.copytree(folder, copy)
    digest = freeze.folder_digest(copy)
    (copy / after).mkdir()
    (copy / after / "run.json").write_text("{}")
    assert freeze.folder_digest(copy) != digest


def test_stale_cot_cache_keys_on_the_model_revision(monkeypatch):
    """`.cache/cot` outputs were keyed by the model's name: a re-pinned revision reused them."""
    from analysis import models
    from analysis.cot.generate import LM, cache_key

    before = LM("gpt2").cache_id
    monkeypatch.setitem(models.HUB_REVISIONS, "gpt2", "0" * 40)
    after = LM("gpt2").cache_id
    assert before != after and "0" * 40 in after
    assert cache_key(before, "q", {}) != cache_key(after, "q", {})
    assert models.QWEN_GGUF_SHA256 in LM("qwen25_coder_1p5b").cache_id  # offline: its file's sha256


def test_stale_seal_refuses_an_edited_run_whose_checksums_were_deleted(offline_copy):
    """Deleting the checksum file of a marked run and editing a table: `seal` refuses (the run says it
    was saved with checksums), writes nothing, and the run stays refused."""
    from analysis.store import CHECKSUM_FILE, Store

    folder = run_dir(offline_copy, "agnews_stats")
    (folder / CHECKSUM_FILE).unlink()
    table = folder / "records.jsonl"
    table.write_text(table.read_text().replace("World", "Sports", 1))  # a hand edit, still valid JSON
    with pytest.raises(StoreError, match="this run was saved with checksums"):
        Store(offline_copy).seal_legacy("offline")
    assert not (folder / CHECKSUM_FILE).exists()
    proc = cli("seal", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(offline_copy)})
    assert "checksums.sha256: is missing (this run was saved with checksums)" in error_line(proc)
    assert not (folder / CHECKSUM_FILE).exists()


# --- unclear -----------------------------------------------------------------------------------


def test_unclear_quarto_missing_at_make_render_says_what_to_install(tmp_path):
    """Quarto missing gave "/bin/sh: ... not found": scripts/render.sh (make render) says what to do,
    before it touches anything."""
    env = {**os.environ, "QUARTO": str(tmp_path / "no-quarto")}
    proc = subprocess.run(["bash", "scripts/render.sh", "offline"], cwd=PROJECT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 127
    assert "Quarto not found" in proc.stderr and "quarto.org" in proc.stderr and "quarto-cli" in proc.stderr
    assert not (PROJECT / "_book.partial").exists()


@pytest.mark.parametrize("target", ["preview", "render-latex"])
def test_unclear_quarto_missing_at_the_other_make_targets_says_what_to_install(tmp_path, target):
    """`make preview` and `make render-latex` call Quarto directly: they say the same, nothing started."""
    proc = subprocess.run(["make", "-s", target, f"QUARTO_BIN={tmp_path / 'no-quarto'}"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"{target}: Quarto not found" in proc.stderr and "quarto.org" in proc.stderr and "make setup" in proc.stderr


def _notebook_functions(monkeypatch, *markers):
    """The hand-in notebook's settings cell, then the functions of the cells holding ``markers``."""
    import nbformat

    monkeypatch.setenv("SKIP_COLAB_STEPS", "1")
    cells = [c.source for c in nbformat.read(PROJECT / "notebooks" / "colab_full.ipynb", as_version=4).cells
             if c.cell_type == "code"]
    ns: dict = {}
    exec(compile(cells[0], "settings cell", "exec"), ns)  # noqa: S102 - the notebook's own code
    ns["REPO_DIR"] = PROJECT
    for marker in markers:
        source = next(c for c in cells if marker in c)
        tree = ast.parse(source)
        tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        exec(compile(tree, marker, "exec"), ns)  # noqa: S102
    return ns


def _small_lung_file(path: Path) -> Path:
    from analysis.data import lung

    rng = np.random.default_rng(0)
    arrays = {}
    for split in lung.SPLITS:
        arrays[f"x_{split}"] = rng.integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
        y = np.zeros((3, 32, 32, 1), np.uint8)
        y[:, 8:24, 4:14] = 1
        arrays[f"y_{split}"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def test_unclear_colab_bad_lung_upload_is_asked_for_again(tmp_path, monkeypatch, capsys):
    """A bad lung upload was never asked for again: each rejected upload says why and the next one
    is taken; nothing half-written stays beside the installed file."""
    ns = _notebook_functions(monkeypatch, "def install_lung_file")
    good = _small_lung_file(tmp_path / "upload" / "lung_field_dataset.npz")
    target = tmp_path / "data" / "lung" / "lung_field_dataset.npz"
    uploads = iter([("notes.txt", b"x"), ("lung_field_dataset.npz", b"not an npz"),
                    ("lung_field_dataset.npz", good.read_bytes()[:200]), ("lung_field_dataset.npz", good.read_bytes())])
    assert ns["install_lung_file"](target, uploads) == target
    assert target.read_bytes() == good.read_bytes() and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    said = capsys.readouterr().out
    assert "notes.txt is not an .npz file" in said and said.count("is not the course's lung file") == 2
    with pytest.raises(FileNotFoundError, match="no valid lung file was given"):
        ns["install_lung_file"](target, iter([("lung_field_dataset.npz", b"still bad")]))


def test_unclear_colab_interrupted_drive_restore_is_repaired(tmp_path, monkeypatch):
    """An interrupted Drive restore left a damaged run whose only fix was recomputing: a restore
    stages each run and checks it before it appears; an interrupted one leaves no visible half run,
    and the next restore completes it (and replaces a run damaged on disk)."""
    ns = _notebook_functions(monkeypatch, "def restore_runs")
    archive = tmp_path / "results-offline.tar.gz"
    names = ["agnews_stats", "bert_attention", "sam_auto"]
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            folder = run_dir(PROJECT / "results", name)
            tar.add(folder, arcname=f"results/offline/{name}/{folder.name}")
    restored = tmp_path / "restored"
    real_extract, calls = tarfile.TarFile.extract, [0]

    def dying_extract(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt("runtime reset while restoring")
        return real_extract(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", dying_extract)
    with pytest.raises(KeyboardInterrupt):
        ns["restore_runs"](archive, restored)
    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)
    visible = lambda: sorted(p for p in restored.glob("offline/*/*") if not p.name.startswith("."))  # noqa: E731
    seen = visible()
    assert len(seen) < len(names) and ns["check_runs"]([(p, p.name) for p in seen]) == {}  # no half run visible
    assert len(ns["restore_runs"](archive, restored)) == len(names) - len(seen)
    assert len(visible()) == len(names) and not list(restored.glob("offline/*/.*"))
    victim = visible()[0] / "records.jsonl"
    victim.write_bytes(victim.read_bytes()[:50])
    assert ns["restore_runs"](archive, restored) == [visible()[0].relative_to(restored)]
    assert ns["check_runs"]([(p, p.name) for p in visible()]) == {}


# --- found beside the listed cases --------------------------------------------------------------


class _AnnotatedRun:
    experiment, profile = "cot_scienceqa", "audit"

    def __init__(self):
        self.records = [{"id": "q1", "flip": "correct_correct", "qual_rank": 0, "cot_text": "Reasoning.\nAnswer: A"}]

    def table(self, name="records"):
        return pd.DataFrame(self.records)


def _annotations(tmp_path, monkeypatch, data: bytes):
    from analysis.cot import chapter as ch

    path = tmp_path / "annotations.jsonl"
    path.write_bytes(data)
    monkeypatch.setattr(ch, "annotations_path", lambda run: path)
    return ch, path


def test_unclear_empty_annotation_file_counts_nothing_read(tmp_path, monkeypatch):
    ch, _ = _annotations(tmp_path, monkeypatch, b"")
    assert ch.top_label(_AnnotatedRun(), "correct_correct") == "none read"


def test_unclear_annotation_line_without_label_names_the_file_and_line(tmp_path, monkeypatch):
    from analysis.cot.chapter import text_sha

    run = _AnnotatedRun()
    line = json.dumps({"id": "q1", "text_sha": text_sha(run.records[0]["cot_text"]), "note": "n"})
    ch, path = _annotations(tmp_path, monkeypatch, (line + "\n").encode())
    with pytest.raises(DataError, match="line 1") as err:
        ch.annotations(run)
    assert str(path) in str(err.value) and "label" in str(err.value)


def test_unclear_annotation_file_not_utf8_names_the_file(tmp_path, monkeypatch):
    ch, path = _annotations(tmp_path, monkeypatch, b'{"id": "q1", "text_sha": "x", "label": "useful", "note": "caf\xe9"}\n')
    with pytest.raises(DataError) as err:
        ch.annotations(_AnnotatedRun())
    assert str(path) in str(err.value) and "UTF-8" in str(err.value)


def test_unclear_cache_dir_that_is_a_file_names_the_variable(tmp_path, monkeypatch):
    from analysis.paths import cache_dir

    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(blocker))
    with pytest.raises(AnalysisError, match="ANALYSIS_CACHE_DIR"):
        cache_dir()


def test_unclear_status_on_a_results_path_that_is_a_file_names_it(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    out = cli("status", env={"ANALYSIS_RESULTS_DIR": str(blocker)})
    assert out.returncode != 0
    assert str(blocker) in out.stderr and "is a file, not a folder" in out.stderr
    assert "ANALYSIS_RESULTS_DIR" in out.stderr and "Traceback" not in out.stderr


def test_silently_wrong_status_reports_a_run_whose_config_does_not_hash_to_its_key(offline_copy, shared_data):
    folder = run_dir(offline_copy, "agnews_stats")
    meta = json.loads((folder / "run.json").read_text())
    rewrite_run_json(folder, config=dict(meta["config"], seed=meta["config"].get("seed", 0) + 1))
    env = {"ANALYSIS_RESULTS_DIR": str(offline_copy)}
    assert "does not hash to its key" in error_line(cli("run", "agnews_stats", "--profile", "offline", env=env))
    proc = cli("status", "--profile", "offline", env=env)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("agnews_stats"))
    assert proc.returncode == 1 and "damaged" in line and "does not hash to its key" in line


def test_unclear_crlf_checkout_of_the_store_says_line_endings(offline_copy):
    from analysis.store import Store

    folder = run_dir(offline_copy, "agnews_stats")
    for path in folder.iterdir():
        if path.suffix in (".json", ".jsonl", ".sha256"):
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(StoreError) as err:
        Store(offline_copy).load("offline", "agnews_stats", folder.name).verify()
    said = err.value.problem.lower()  # (not the fix: it names the folder, whose tmp path holds "crlf")
    assert "line ending" in said or "crlf" in said


def test_unclear_truncated_weights_of_an_older_training_are_not_reused(tmp_path, monkeypatch, shared_data):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from analysis.bert import train as T
    from analysis.bert.config import FineTuneConfig

    monkeypatch.setenv("ANALYSIS_ARTIFACTS_DIR", str(tmp_path))
    cfg = FineTuneConfig(limit_train=48, n_validation=16, limit_test=16, max_length=32, batch_size=8,
                         eval_steps=2, logging_steps=1)
    final = T.model_dir(cfg) / "final"
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=37, num_labels=4)).save_pretrained(final)
    (final / T.STATE_FILE).write_text(json.dumps({"global_step": 4, "log_history": []}))  # no "weights": older code
    weights = final / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    try:
        again = T.finetune(cfg)  # the fix may train again (a few seconds at this size) ...
        T.load_finetuned(again, device=torch.device("cpu"))
    except AnalysisError as exc:  # ... or refuse, naming the file
        assert str(weights) in str(exc)


def test_unclear_run_json_field_of_the_wrong_type_names_it(offline_copy):
    """A consistent hand edit giving a field the wrong type ("created": 5) was a raw TypeError when
    runs were listed; it is a damaged run.json, named with the field."""
    from analysis.store import Store

    folder = run_dir(offline_copy, "agnews_stats")
    rewrite_run_json(folder, created=5)
    with pytest.raises(StoreError, match="'created' is 5, not text"):
        Store(offline_copy).load("offline", "agnews_stats", folder.name).verify()
    proc = cli("status", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(offline_copy)})
    assert "Traceback" not in proc.stderr and "'created' is 5" in proc.stdout
