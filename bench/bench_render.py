"""Render times of the whole book (HTML site + Typst PDF), warm and cold.

- **cold**: no ``_freeze/``: Quarto executes every chapter (from the stored results; nothing is
  computed) for each format;
- **warm**: right after, nothing changed: the pre-render sync keeps every frozen chapter and no
  Python runs (what ``make render`` costs while writing). Target: warm <= 60 s on the 2-core
  development machine.

Runs in a copy of the tracked files (plus ``_freeze/`` and the stored results) in a temporary
folder, so the working tree's ``_freeze/`` is untouched. Writes ``bench/results/render.json``.

    python bench/bench_render.py [--profile offline] [--out bench/results/render.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def render(project: Path, profile: str, env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["quarto", "render", "--profile", profile], cwd=project, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"quarto render failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "render.json"))
    args = ap.parse_args()
    if shutil.which("quarto") is None:
        sys.exit("quarto is not on PATH")
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        project = Path(tmp)
        copy_project(project)
        shutil.rmtree(project / "_freeze", ignore_errors=True)  # cold: nothing frozen
        # the copy's package, its results and its caches: nothing of the working tree is written
        env = dict(os.environ, PYTHONPATH=str(project), QUARTO_PYTHON=sys.executable,
                   ANALYSIS_CACHE_DIR=str(project / ".cache"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        env.setdefault("ANALYSIS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
        env.pop("QUARTO_PROFILE", None)
        cold = render(project, args.profile, env)
        print(f"cold (no _freeze/): {cold:.1f} s")
        warm = render(project, args.profile, env)
        print(f"warm (nothing changed): {warm:.1f} s")
        pdf = next((project / "_book").glob("*.pdf"), None)
        pages = None
        if pdf is not None:
            from pypdf import PdfReader

            pages = len(PdfReader(pdf).pages)
    result = {
        "profile": args.profile, "cold_s": round(cold, 1), "warm_s": round(warm, 1), "pdf_pages": pages,
        "target_warm_s": 60, "cpus": os.cpu_count(), "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(),
        "quarto": subprocess.run(["quarto", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
