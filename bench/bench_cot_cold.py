"""Cold time of the whole offline chain-of-thought run (200 questions: direct scores, CoT
generation with the early-answering probe), from an empty generation cache.

Runs the offline configuration's ``compute`` (``--budget`` overrides its token budget, e.g. 256,
the budget of the earlier stored run) in a subprocess whose generation cache is ``--cache``
(default: a temporary folder; the joined model file in the normal cache is reused: joining it is
setup, not the run), and writes bench/results/cot_offline_cold.json with the wall time, the run's
own timings, the decoding statistics and the machine's load before and after. Takes as long as it
measures (~20-40 min on 2 cores).

    python bench/bench_cot_cold.py --budget 256 [--cache DIR] [--out bench/results/cot_offline_cold.json]
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

CODE = """
import dataclasses, json, sys
from analysis.cot.config import CONFIGS
from analysis.cot.compute import compute
config = CONFIGS["offline"]
if int(sys.argv[1]):
    config = dataclasses.replace(config, max_new_tokens=int(sys.argv[1]))
out = compute(config)
json.dump({"config": dataclasses.asdict(config), "metrics": out.metrics}, open(sys.argv[2], "w"), default=str)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=0, help="new tokens per chain (0: the offline config's)")
    ap.add_argument("--cache", help="generation cache folder to use (must hold no entries for this model)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cot_offline_cold.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cot-") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp) / "cache"
        models = ROOT / ".cache" / "models"
        if not args.cache and models.is_dir():  # the joined GGUF: setup, not part of the run
            shutil.copytree(models, cache / "models", symlinks=True)
        env = dict(os.environ, ANALYSIS_CACHE_DIR=str(cache))
        meta_path = Path(tmp) / "metrics.json"
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", CODE, str(args.budget), str(meta_path)], cwd=ROOT, env=env, check=True)
        wall = time.perf_counter() - started
        meta = json.loads(meta_path.read_text())
    m = meta["metrics"]
    out = {"what": "analysis.cot.compute.compute(offline config) from an empty generation cache",
           "wall_s": round(wall, 1), "target_s": 20 * 60, "n_questions": m["n"],
           "new_tokens": round(m["mean_new_tokens"] * m["n"]), "n_hit_max": m["n_hit_max"],
           "timings": m["timings"], "config": meta["config"], "cached": m["cached"], "cpus": os.cpu_count(),
           "load_avg_1min_before": round(load_before, 2), "load_avg_1min_after": round(os.getloadavg()[0], 2)}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
