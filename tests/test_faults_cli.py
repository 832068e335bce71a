"""Fault suite, CLI: mistyped profiles, status on a damaged or empty store, doctor --no-load, book-check
on a missing file, run without data. Each exits non-zero with one `error:` line (no traceback) or
reports exactly what it checked. The results go to temporary stores (ANALYSIS_RESULTS_DIR)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("offline_unchanged")  # tests/conftest.py


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT), **(env or {})}
    for key, value in list(full_env.items()):
        if value is None:
            del full_env[key]
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=PROJECT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def clear_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def results_copy(tmp_path, shared_data):
    root = tmp_path / "results"
    shutil.copytree(PROJECT / "results" / "offline", root / "offline")
    return root


@pytest.mark.parametrize("value", ["smok", "Smoke", "offline,fulll"])
def test_mistyped_quarto_profile_is_an_error_for_every_command(tmp_path, value):
    for args in (["run", "agnews_stats", "--force"], ["status"], ["status", "--json"]):
        proc = cli(*args, env={"QUARTO_PROFILE": value, "ANALYSIS_RESULTS_DIR": str(tmp_path)})
        clear_error(proc, "unknown profile", "EXTRA_PROFILES")
    assert not any(tmp_path.iterdir())  # nothing ran, nothing was written


def test_status_json_honours_profile_and_lists_missing_runs(results_copy):
    proc = cli("status", "--json", "--profile", "smoke", env={"ANALYSIS_RESULTS_DIR": str(results_copy),
                                                             "QUARTO_PROFILE": None})
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    from analysis.experiments import load_all

    assert {r["profile"] for r in rows} == {"smoke"} and len(rows) == len(load_all())
    assert {r["state"] for r in rows} == {"missing"} and all(r["key"] for r in rows)
    proc = cli("status", "--json", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(results_copy)})
    states = {r["experiment"]: r["state"] for r in map(json.loads, proc.stdout.splitlines())}
    assert states["sam_prompts"] == states["bert_finetune"] == "stored"


def test_status_survives_a_damaged_run_and_names_it(results_copy):
    damaged = next((results_copy / "offline" / "agnews_stats").iterdir()) / "run.json"
    damaged.write_text(damaged.read_text()[:100])
    table = next((results_copy / "offline" / "sam_auto").iterdir()) / "records.jsonl"
    table.write_text(table.read_text().replace("0.", "1.", 1))  # a hand edit that stays valid JSON
    arrays = next((results_copy / "offline" / "bert_attention").iterdir()) / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-100])
    proc = cli("status", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(results_copy)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for name, path in (("agnews_stats", damaged), ("sam_auto", table), ("bert_attention", arrays)):
        line = next(l for l in proc.stdout.splitlines() if l.startswith(name))
        assert "damaged" in line and str(path) in line and "--force" in line
    assert any(l.startswith("bert_finetune") and "stored" in l for l in proc.stdout.splitlines())
    proc = cli("run", "agnews_stats", "--profile", "offline", env={"ANALYSIS_RESULTS_DIR": str(results_copy)})
    clear_error(proc, str(damaged), "--force")


def test_status_without_data_says_unknown_not_a_traceback(tmp_path):
    proc = cli("status", "--profile", "offline", env={"ANALYSIS_DATA_DIR": str(tmp_path / "none"),
                                                     "ANALYSIS_RESULTS_DIR": str(tmp_path / "r")})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert all("unknown" in l and "file not found" in l for l in proc.stdout.splitlines()[2:])


def test_run_full_without_the_lung_file_stops_before_work(tmp_path):
    (tmp_path / "data").mkdir()
    proc = cli("run", "all", "--profile", "full", env={"ANALYSIS_DATA_DIR": str(tmp_path / "data"),
                                                      "ANALYSIS_RESULTS_DIR": str(tmp_path / "r")})
    line = clear_error(proc)
    assert "file not found" in line and "ANALYSIS_DATA_DIR" in line
    assert not (tmp_path / "r").exists()


def test_book_check_missing_file_and_bad_data_dir():
    clear_error(cli("book-check", "chapters/no-such-chapter.qmd"), "no-such-chapter.qmd", "no such file")
    clear_error(cli("--data-dir", "/no/such/dir", "status"), "/no/such/dir", "no such directory")


def test_unknown_experiment_and_profile_flag():
    proc = cli("run", "sam_prompt")
    assert proc.returncode == 2 and "unknown experiment 'sam_prompt'" in proc.stderr
    proc = cli("run", "all", "--profile", "smok")
    assert proc.returncode == 2 and "invalid choice: 'smok'" in proc.stderr


def test_doctor_no_load_does_not_say_ok_for_models():
    proc = cli("doctor", "--no-load")
    models = proc.stdout.split("models:", 1)[1].split("\nHTML lab", 1)[0]  # the lab's lines are not models
    lines = [line for line in models.splitlines()[1:] if line.strip()]
    assert len(lines) >= 8 and all(line.split()[0] in ("located", "FAILED") for line in lines)
    assert "not checked" in models
    assert "located" in models and "models only located, not checked" in proc.stdout


def test_seal_adds_checksums_to_a_legacy_run_only(results_copy):
    """A run as the code before checksums saved it (no checksum file, no format marker) is refused by
    status; `seal` lists each file with its sha256, then seals it."""
    run_dir = next((results_copy / "offline" / "agnews_stats").iterdir())
    (run_dir / "checksums.sha256").unlink()
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["store_format"]
    (run_dir / "run.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    env = {"ANALYSIS_RESULTS_DIR": str(results_copy)}
    status = cli("status", "--profile", "offline", env=env)
    assert status.returncode == 1 and "has no checksums" in status.stdout and "seal" in status.stdout
    proc = cli("seal", "--profile", "offline", env=env)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0] == f"sealing {run_dir}:" and lines[-2:] == [
        f"sealed {run_dir}", "1 run(s) sealed; runs that already had checksums were left alone"]
    assert any(line.strip().endswith("  run.json") for line in lines[1:-2])
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "checksums.sha256"} == before
    assert cli("status", "--profile", "offline", env=env).returncode == 0