"""Cold time of the whole offline chain-of-thought run (200 questions: direct scores, CoT
generation with the early-answering probe), from an empty generation cache.

Runs `python -m analysis run cot_scienceqa --profile offline` with the generation cache and the
result store in temporary folders (the joined model file in the normal cache is reused: joining it
is setup, not the run), and writes bench/results/cot_offline_cold.json. Target: <= 45 min on the
2-core development machine. Takes as long as it measures.

    python bench/bench_cot_cold.py [--out bench/results/cot_offline_cold.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cot_offline_cold.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cot-") as tmp:
        cache, results = Path(tmp) / "cache", Path(tmp) / "results"
        models = ROOT / ".cache" / "models"
        if models.is_dir():  # the joined GGUF: setup, not part of the run
            shutil.copytree(models, cache / "models", symlinks=True)
        env = dict(os.environ, ANALYSIS_CACHE_DIR=str(cache), ANALYSIS_RESULTS_DIR=str(results))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analysis", "run", "cot_scienceqa", "--profile", "offline"],
                       cwd=ROOT, env=env, check=True)
        wall = time.perf_counter() - started
        meta = json.loads(next(results.glob("offline/cot_scienceqa/*/run.json")).read_text())
    m = meta["metrics"]
    out = {"what": "python -m analysis run cot_scienceqa --profile offline, empty generation cache",
           "wall_s": round(wall, 1), "target_s": 45 * 60, "n_questions": m["n"],
           "timings": m["timings"], "config": meta["config"], "cpus": os.cpu_count(),
           "load_avg_1min_before": round(load_before, 2), "load_avg_1min_after": round(os.getloadavg()[0], 2)}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
