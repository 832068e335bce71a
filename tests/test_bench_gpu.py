"""``bench/bench_gpu.py --tiny``: the GPU benchmark's code runs on CPU at toy sizes and writes its JSON."""

import json
import subprocess
import sys

from analysis.paths import PROJECT_ROOT


def test_bench_gpu_tiny_writes_its_schema(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "bench_gpu.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["tiny"] is True and r["device_type"] == "cpu"
    for key in ("device", "torch", "transformers", "total_seconds"):
        assert key in r
    bert = r["bert"]
    assert bert["snippet"]["batch_size"] == 16 and bert["snippet"]["precision"] == "fp32"
    assert bert["project"]["measured_whole_epoch"] and bert["project"]["epoch_seconds"] > 0
    assert bert["snippet"]["epoch_seconds_extrapolated"] > 0 and bert["speedup"] > 0
    # the project's numbers are the full profile's settings
    from analysis.bert.experiments import FT_FULL

    assert bert["project"]["batch_size"] == FT_FULL.batch_size == bert["full_config"]["batch_size"]
    # the loop comparison: Trainer vs the fast loop (analysis/bert/train_fast.py) at batch 16 and 32
    loops = bert["loops"]
    assert [row["batch_size"] for row in loops["by_batch"]] == [16, 32] and loops["compile"] is False
    for row in loops["by_batch"]:
        assert row["trainer"]["epoch_seconds"] > 0 and row["fast"]["epoch_seconds"] > 0
        assert row["fast"]["measured_whole_epoch"] and row["fast"]["steps_timed"] > 0
        assert row["ratio_trainer_over_fast"] == row["trainer"]["epoch_seconds"] / row["fast"]["epoch_seconds"]
        assert row["fast"]["gpu_utilisation_percent"] is None  # CPU: no utilisation to sample
    sam = r["sam"]
    assert sam["naive"]["seconds_extrapolated"] > 0 and sam["project"]["seconds"] > 0
    assert 0 <= sam["bf16_vs_fp32_masks"]["pixel_agreement"] <= 1
    t5 = r["t5"]
    assert t5["one_at_a_time"]["seconds_extrapolated"] > 0
    assert any(b["is_full_config"] for b in t5["batched"]) and all(b["seconds"] > 0 for b in t5["batched"])
