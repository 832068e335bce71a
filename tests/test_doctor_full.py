"""``python -m analysis doctor --profile full``: exactly what the full profile needs, what is missing
and how to get it, with no download, no progress bar and no library warning."""

from __future__ import annotations

import os
import subprocess
import sys

from analysis.data import agnews, scienceqa
from analysis.models import HUB_REVISIONS
from analysis.paths import PROJECT_ROOT
from analysis.sam.model import CHECKPOINTS


def _doctor(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYSIS_", "HF_"))}
    env = {**base, "PYTHONPATH": str(PROJECT_ROOT), "ANALYSIS_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
           "ANALYSIS_CACHE_DIR": str(tmp_path / "cache"), "ANALYSIS_RESULTS_DIR": str(tmp_path / "results"),
           "HF_HUB_CACHE": str(tmp_path / "hf"), **env}
    return subprocess.run([sys.executable, "-m", "analysis", "doctor", "--profile", "full", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if f" {name} " in line)


def test_doctor_full_names_what_is_missing_and_how(tmp_path):
    (tmp_path / "data").mkdir()
    proc = _doctor(tmp_path, "--no-load", ANALYSIS_DATA_DIR=str(tmp_path / "data"))
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert proc.stderr == "", proc.stderr  # no progress bars, no warnings
    # exactly the full profile's models: SAM ViT-H (not ViT-B), the three hub models
    assert "sam_vit_h" in out and "sam_vit_b" not in out and "litemedsam" not in out
    for name in ("sam_vit_h", "bert_base_uncased", "gpt2", "flan_t5_base", "lung X-rays", "AG News", "ScienceQA", "GPU"):
        assert _line(out, name).lstrip().startswith("MISSING"), name
    assert f"bert-base-uncased@{HUB_REVISIONS['bert-base-uncased'][:12]} not in the Hugging Face cache" in out
    assert "2.4 GB, size and sha256 checked" in out  # how the checkpoint comes
    assert "the course hands it out" in out and "the notebook asks for it" in out
    assert "Colab" in out.split("device:")[1].split("data:")[0]  # the GPU line says where to get one
    from analysis import experiments

    assert f"0 of {len(experiments.load_all())} runs stored" in out and out.rstrip().endswith("(the arrows say how to get each)")
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").rglob("*.pth"))


def test_doctor_full_finds_the_pinned_copies(tmp_path, shared_data):
    """With the pinned commits in the Hugging Face cache and a checkpoint of the right size, only
    the GPU (a CPU machine) and the results are missing."""
    hf = tmp_path / "hf"
    for repo, rev in HUB_REVISIONS.items():
        snap = hf / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        (snap / "model.safetensors").write_bytes(b"")
    for mod in (agnews, scienceqa):
        snap = hf / f"datasets--{mod.HUB_ID.replace('/', '--')}" / "snapshots" / mod.HUB_REVISION
        snap.mkdir(parents=True)
        (snap / "README.md").write_text("")
    ck = CHECKPOINTS["sam_vit_h"]
    dest = tmp_path / "cache" / "models" / "sam" / ck.url.rsplit("/", 1)[1]
    dest.parent.mkdir(parents=True)
    with open(dest, "wb") as fh:  # sparse: the right size, no 2.5 GB written
        fh.truncate(ck.size)
    proc = _doctor(tmp_path, "--no-load", ANALYSIS_DATA_DIR=str(shared_data))
    out = proc.stdout
    for name in ("sam_vit_h", "bert_base_uncased", "gpt2", "flan_t5_base", "lung X-rays", "AG News", "ScienceQA"):
        assert _line(out, name).lstrip().startswith("ok"), _line(out, name)
    assert "size checked" in _line(out, "sam_vit_h")
    assert _line(out, "GPU").lstrip().startswith("MISSING") and proc.returncode == 1
    # a wrong-size checkpoint (an interrupted download) is missing again
    with open(dest, "r+b") as fh:
        fh.truncate(ck.size - 1)
    out = _doctor(tmp_path, "--no-load", ANALYSIS_DATA_DIR=str(shared_data)).stdout
    assert "a partial file of" in _line(out, "sam_vit_h")


def test_status_prints_no_bars_or_warnings(tmp_path):
    """`status` reads the store and downloads nothing: its output is the table, stderr stays empty."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYSIS_", "HF_"))}
    env = {**base, "PYTHONPATH": str(PROJECT_ROOT), "ANALYSIS_RESULTS_DIR": str(tmp_path / "results")}
    proc = subprocess.run([sys.executable, "-m", "analysis", "status", "--profile", "smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    from analysis import experiments

    lines = proc.stdout.splitlines()
    assert lines[0].startswith("result store: ") and len(lines) == 2 + len(experiments.load_all())
    assert all(" missing " in line for line in lines[2:])
