"""``bert_finetune`` on two processes (``torchrun -m analysis.bert.train``, gloo on CPU): DDP
training on both, one stored result written by the main process only; launching the CLI itself
on several processes is refused with a clear error instead of hanging."""

import json
import os
import socket
import subprocess
import sys

from analysis.paths import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_store_one_run(tmp_path, shared_data):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYSIS_", "QUARTO_"))}
    env.update({"ANALYSIS_RESULTS_DIR": str(tmp_path / "results"), "ANALYSIS_ARTIFACTS_DIR": str(tmp_path / "art"),
                "ANALYSIS_CACHE_DIR": str(tmp_path / "cache"), "ANALYSIS_DATA_DIR": str(shared_data),
                "ANALYSIS_DEVICE": "cpu", "ANALYSIS_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(PROJECT_ROOT), "CUDA_VISIBLE_DEVICES": ""})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "analysis.bert.train", "--profile", "smoke"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    runs = [p for p in (tmp_path / "results" / "smoke" / "bert_finetune").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1
    meta = json.loads((runs[0] / "run.json").read_text())
    assert meta["metrics"]["n_processes"] == 2
    # the smoke config: 64 training rows, batch 16 per process on 2 processes -> 2 steps per epoch
    assert meta["metrics"]["global_step"] == 2
    assert proc.stdout.count("bert_finetune [smoke]") == 1  # one process stored (and reported) the run
    assert "the main process evaluates and stores the run" in proc.stderr
    finals = list((tmp_path / "art" / "bert").glob("*/final"))
    assert len(finals) == 1 and (finals[0] / "model.safetensors").exists()


def test_cli_on_several_processes_is_refused(monkeypatch, tmp_path):
    from analysis.bert.compute import compute_finetune
    from analysis.bert.experiments import FT_SMOKE
    from analysis.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ANALYSIS_ARTIFACTS_DIR", str(tmp_path))
    try:
        compute_finetune(FT_SMOKE)
    except ConfigError as exc:
        assert "analysis.bert.train" in str(exc)
    else:
        raise AssertionError("expected a ConfigError")
