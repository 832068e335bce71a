"""Quarto post-render script: the binary data of the HTML lab widgets goes into the site.

Every page with a widget (``data-lab=``, analysis/lab.py) gets the widgets' scripts and styles
(``lab/*.js``, ``lab/*.css`` -> ``<out>/lab/``; copied here rather than through Quarto's
``resources``, whose glob walks the whole project tree, virtual environment included). A page
names what else it needs in two attributes:

- ``data-lab-assets="<profile>/<experiment>/<key>"``: the stored run whose ``web/`` folder (files
  written for the browser: ONNX model, float16 embeddings, images) is copied to
  ``<out>/lab/runs/<profile>/<experiment>/<key>/``;
- ``data-lab-decoder="<profile>/sam_explorer/<key>"``: the run's ONNX decoder, which is model
  weights and so not stored with the run: ``python -m analysis lab-decoder`` (this interpreter:
  Quarto runs post-render scripts with the project's Python) writes it beside the run's files,
  exported again and checked against the run's sha256 (cached in ``.cache/sam_onnx/``);
- ``data-lab-ort``: onnxruntime-web's WebAssembly build, copied from ``node_modules/`` (installed
  by ``make setup`` from package.json) to ``<out>/lab/ort/``: the site fetches nothing from a CDN.

Standard library only (like scripts/pre_render.py). Files already in place with the same size and
modification time are not copied again. A missing run folder fails the render (the widget would show
nothing); a decoder that cannot be exported (no project environment) and missing onnxruntime-web
are warnings (the widget says what is missing).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
# the single-threaded-capable WebAssembly build and its loader (numThreads=1 needs no cross-origin isolation)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
LAB_SRC = ROOT / "lab"
WIDGET_RE = re.compile(r'data-lab="[a-z0-9_-]+"')
ASSETS_RE = re.compile(r'data-lab-assets="([^"]*)"')
ORT_RE = re.compile(r"data-lab-ort\b")
DECODER_RE = re.compile(r'data-lab-decoder="([^"]*)"')
# what a page may name: <profile>/<experiment>/<run key>, nothing else (no absolute path, no "..")
RUN_REF_RE = re.compile(r"(offline|full|smoke)/[a-z0-9_]+/[0-9a-f]{16}")


def results_root() -> Path:
    value = os.environ.get("ANALYSIS_RESULTS_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else ROOT / "results"


def run_folder(rel: str) -> Path | None:
    """The stored run a page names (``<profile>/<experiment>/<key>``), inside the result store; None
    for anything else (an absolute path, ``..``, another shape)."""
    if not RUN_REF_RE.fullmatch(rel):
        return None
    root = results_root().resolve()
    folder = (root / rel).resolve()
    return folder if folder.is_relative_to(root) else None


def verified_web_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The run's ``web/`` files, each checked against the run's ``checksums.sha256``; returns
    (files, problems). A file the list does not name, or whose bytes differ, is a problem: it is not
    published (a corrupted embedding would give the explorer wrong masks without a word)."""
    sums = {}
    try:
        for line in (folder / "checksums.sha256").read_text(encoding="ascii").splitlines():
            digest, _, name = line.partition("  ")
            sums[name] = digest
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{folder / 'checksums.sha256'}: unreadable ({exc.__class__.__name__}); the run's web files "
                    f"cannot be verified (fix: python -m analysis run {folder.parent.name} --profile "
                    f"{folder.parent.parent.name} --force)"]
    files, problems = [], []
    for f in sorted((folder / "web").rglob("*")):
        if not f.is_file():
            continue
        name = f.relative_to(folder).as_posix()
        if sums.get(name) != hashlib.sha256(f.read_bytes()).hexdigest():
            problems.append(f"{f}: {'not in the run checksums' if name not in sums else 'fails its checksum'}, so it is "
                            f"not published (fix: python -m analysis run {folder.parent.name} --profile "
                            f"{folder.parent.parent.name} --force)")
        else:
            files.append(f)
    return files, problems


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
    runs, decoders, wants_ort, widgets = set(), set(), False, False
    for page in out_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        runs.update(ASSETS_RE.findall(text))
        decoders.update(DECODER_RE.findall(text))
        wants_ort = wants_ort or bool(ORT_RE.search(text))
        widgets = widgets or bool(WIDGET_RE.search(text))
    copied, problems = 0, []
    if widgets:
        for f in sorted(LAB_SRC.glob("*")):
            if f.suffix in (".js", ".css"):
                copied += _copy(f, out_dir / "lab" / f.name)
    for rel in sorted(runs):
        folder = run_folder(rel)
        if folder is None:
            problems.append(f"data-lab-assets={rel!r} is not <profile>/<experiment>/<run key> inside the result store")
            continue
        src = folder / "web"
        if not src.is_dir():
            problems.append(f"{src} is missing: the page needs the stored run's web/ folder; run "
                            f"`python -m analysis run {rel.split('/')[1]} --profile {rel.split('/')[0]}`")
            continue
        files, bad = verified_web_files(folder)
        problems += bad
        for f in files:
            copied += _copy(f, out_dir / "lab" / "runs" / rel / f.relative_to(src))
    for rel in sorted(decoders):
        if run_folder(rel) is None:
            problems.append(f"data-lab-decoder={rel!r} is not <profile>/<experiment>/<run key> inside the result store")
            continue
        dest = out_dir / "lab" / "runs" / rel / "decoder.onnx"
        if dest.exists():
            continue
        proc = subprocess.run([sys.executable, "-m", "analysis", "lab-decoder", rel, "--out", str(dest)],
                              cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            print(f"lab_assets: WARNING: the SAM explorer's decoder for {rel} could not be exported ({why}); "
                  "render in the project's environment (make setup, make render).", file=sys.stderr)
        else:
            copied += 1
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
    sys.path.insert(0, str(ROOT))
    from analysis.freeze import render_output_dir  # standard library only, like this script

    out_dir = render_output_dir("lab_assets")
    if out_dir is None:
        return 0
    copied, problems = run(out_dir)
    for p in problems:
        print(f"lab_assets: ERROR: {p}", file=sys.stderr)
    if copied:
        print(f"lab_assets: {copied} files copied into {out_dir / 'lab'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
