"""Quarto post-render script: the binary data of the HTML lab widgets goes into the site.

Every page with a widget (``data-lab=``, analysis/lab.py) gets the widgets' scripts and styles
(``lab/*.js``, ``lab/*.css`` -> ``<out>/lab/``; copied here rather than through Quarto's
``resources``, whose glob walks the whole project tree, virtual environment included). A page
names what else it needs in two attributes:

- ``data-lab-assets="<profile>/<experiment>/<key>"``: the stored run whose ``web/`` folder (files
  written for the browser: ONNX model, float16 embeddings, images) is copied to
  ``<out>/lab/runs/<profile>/<experiment>/<key>/``;
- ``data-lab-ort``: onnxruntime-web's WebAssembly build, copied from ``node_modules/`` (installed
  by ``make setup`` from package.json) to ``<out>/lab/ort/``: the site fetches nothing from a CDN.

Standard library only (like scripts/freeze_sync.py). Files already in place with the same size and
modification time are not copied again. A missing run folder fails the render (the widget would show
nothing); missing onnxruntime-web is a warning (the widget says what to install).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
# the single-threaded-capable WebAssembly build and its loader (numThreads=1 needs no cross-origin isolation)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
LAB_SRC = ROOT / "lab"
WIDGET_RE = re.compile(r'data-lab="[a-z0-9_-]+"')
ASSETS_RE = re.compile(r'data-lab-assets="([A-Za-z0-9_./-]+)"')
ORT_RE = re.compile(r"data-lab-ort\b")


def results_root() -> Path:
    value = os.environ.get("ANALYSIS_RESULTS_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else ROOT / "results"


def _copy(src: Path, dest: Path) -> bool:
    if dest.exists():
        a, b = src.stat(), dest.stat()
        if a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime):
            return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return True


def run(out_dir: Path) -> tuple[int, list[str]]:
    """Copy what the pages under ``out_dir`` ask for; returns (files copied, problems)."""
    runs, wants_ort, widgets = set(), False, False
    for page in out_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        runs.update(ASSETS_RE.findall(text))
        wants_ort = wants_ort or bool(ORT_RE.search(text))
        widgets = widgets or bool(WIDGET_RE.search(text))
    copied, problems = 0, []
    if widgets:
        for f in sorted(LAB_SRC.glob("*")):
            if f.suffix in (".js", ".css"):
                copied += _copy(f, out_dir / "lab" / f.name)
    for rel in sorted(runs):
        if ".." in Path(rel).parts:
            problems.append(f"data-lab-assets={rel!r} leaves the result store")
            continue
        src = results_root() / rel / "web"
        if not src.is_dir():
            problems.append(f"{src} is missing: the page needs the stored run's web/ folder; run "
                            f"`python -m analysis run {rel.split('/')[1]} --profile {rel.split('/')[0]}`")
            continue
        for f in sorted(src.rglob("*")):
            if f.is_file():
                copied += _copy(f, out_dir / "lab" / "runs" / rel / f.relative_to(src))
    if wants_ort:
        missing = [n for n in ORT_FILES if not (ORT_DIST / n).is_file()]
        if missing:
            print(f"lab_assets: WARNING: onnxruntime-web is not installed ({ORT_DIST} lacks {', '.join(missing)}); "
                  "the SAM explorer will say so. Run `make setup` (or `npm ci`) and render again.", file=sys.stderr)
        else:
            for name in ORT_FILES:
                copied += _copy(ORT_DIST / name, out_dir / "lab" / "ort" / name)
    return copied, problems


def main() -> int:
    out = os.environ.get("QUARTO_PROJECT_OUTPUT_DIR")
    if not out:
        print("lab_assets: QUARTO_PROJECT_OUTPUT_DIR is not set (run by quarto render)", file=sys.stderr)
        return 0
    out_dir = Path(out)
    if not out_dir.is_absolute():
        out_dir = Path.cwd() / out_dir
    copied, problems = run(out_dir)
    for p in problems:
        print(f"lab_assets: ERROR: {p}", file=sys.stderr)
    if copied:
        print(f"lab_assets: {copied} files copied into {out_dir / 'lab'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
