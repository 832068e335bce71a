"""Quarto post-render script: each HTML chapter offers its source as a Jupyter notebook download.

Quarto turns `format-links` off for book pages and renders `ipynb` for a book as one merged
notebook (src/project/types/book/book-render.ts), so a book gets no per-chapter notebooks from its
formats. This script does it after every render (`post-render` in _quarto.yml):

- for every rendered page ``<out>/<path>.html`` whose source ``<path>.qmd`` has Python cells,
  ``quarto convert`` writes ``<out>/<path>.ipynb`` (cells unexecuted, with a first cell saying where
  to run it); conversions are cached in ``.cache/chapter-notebooks/`` by the source's hash, so a
  warm render spends no time here;
- the page gets the block Quarto itself writes for a website's other formats ("Other Formats",
  Jupyter icon) at the end of its table of contents, linking the notebook.

Standard library only (like scripts/pre_render.py), so the publish workflow runs it too.
Idempotent: a page that already links its notebook is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "1"  # bump when the notebook's content changes for the same source
MARKER = "quarto-alternate-formats"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def has_python_cells(qmd: Path) -> bool:
    return any(line.lstrip().startswith("```{python") for line in qmd.read_text(encoding="utf-8").splitlines())


def pages(out_dir: Path, project_dir: Path = ROOT) -> list[tuple[Path, Path]]:
    """(html page, its .qmd source) for every rendered page whose source has Python cells."""
    found = []
    for html in sorted(out_dir.rglob("*.html")):
        rel = html.relative_to(out_dir)
        if rel.parts[0] in {"site_libs", "search"}:
            continue
        qmd = project_dir / rel.with_suffix(".qmd")
        if qmd.is_file() and has_python_cells(qmd):
            found.append((html, qmd))
    return found


def intro_cell(rel_qmd: str) -> dict:
    where = "the repository root" if "/" not in rel_qmd else f"the repository's `{rel_qmd.rsplit('/', 1)[0]}/` folder"
    text = (
        f"*This notebook is `{rel_qmd}` of the book, converted by `quarto convert` (no outputs).* "
        f"Run it from {where} in the environment `make setup` builds (or on Colab after the set-up "
        "cells of `notebooks/colab_full.ipynb`). It reads the stored results of the profile named by "
        "`QUARTO_PROFILE` (default `offline`) and computes a result that is missing. Values written "
        "inline as `` `{python} expression` `` are filled in by the rendered book, not by Jupyter."
    )
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def tidy(nb: dict, rel_qmd: str) -> dict:
    """A portable notebook: generic kernelspec (no local path), the intro cell first."""
    nb.setdefault("metadata", {})["kernelspec"] = dict(KERNELSPEC)
    nb["cells"] = [intro_cell(rel_qmd)] + nb.get("cells", [])
    return nb


def quarto_executable() -> str | None:
    bin_path = os.environ.get("QUARTO_BIN_PATH")
    if bin_path and (Path(bin_path) / "quarto").exists():
        return str(Path(bin_path) / "quarto")
    return shutil.which("quarto")


def convert(qmd: Path, quarto: str, cache: Path, project_dir: Path = ROOT) -> str:
    """The notebook's JSON text for ``qmd`` (from the cache when the source is unchanged)."""
    rel = qmd.relative_to(project_dir).as_posix()
    digest = hashlib.sha256((VERSION + "\0" + rel + "\0").encode() + qmd.read_bytes()).hexdigest()[:16]
    cached = cache / f"{qmd.stem}-{digest}.ipynb"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{qmd.stem}.ipynb"
        subprocess.run([quarto, "convert", str(qmd), "--output", str(raw)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        nb = json.loads(raw.read_text(encoding="utf-8"))
    text = json.dumps(tidy(nb, rel), indent=1, ensure_ascii=False) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{qmd.stem}-*.ipynb"):
        old.unlink()
    cached.write_text(text, encoding="utf-8")
    return text


def link_block(name: str) -> str:
    """The markup Quarto writes for a website page's other formats (format-html-bootstrap.ts)."""
    return (f'<div class="{MARKER}"><h2>Other Formats</h2><ul><li>'
            f'<a href="{name}" download="{name}"><i class="bi bi-journal-code"></i>Jupyter</a>'
            "</li></ul></div>")


def add_link(html: Path, notebook_name: str) -> bool:
    """Put the notebook link at the end of the page's table of contents; False if already there
    or the page has no table of contents."""
    text = html.read_text(encoding="utf-8")
    if MARKER in text:
        return False
    start = text.find('<nav id="TOC"')
    end = text.find("</nav>", start) if start >= 0 else -1
    if end < 0:
        print(f"chapter_notebooks: {html} has no table of contents; no notebook link added", file=sys.stderr)
        return False
    html.write_text(text[:end] + link_block(notebook_name) + "\n" + text[end:], encoding="utf-8")
    return True


def run(out_dir: Path, project_dir: Path = ROOT, quarto: str | None = None) -> list[Path]:
    """Write the notebooks and links for ``out_dir``; returns the notebooks written or kept."""
    todo = pages(out_dir, project_dir)
    if not todo:
        return []
    quarto = quarto or quarto_executable()
    if quarto is None:
        print("chapter_notebooks: quarto not found; no chapter notebooks", file=sys.stderr)
        return []
    cache = project_dir / ".cache" / "chapter-notebooks"
    with ThreadPoolExecutor(max_workers=3) as pool:
        texts = list(pool.map(lambda page: convert(page[1], quarto, cache, project_dir), todo))
    written = []
    for (html, _qmd), text in zip(todo, texts):
        notebook = html.with_suffix(".ipynb")
        if not notebook.is_file() or notebook.read_text(encoding="utf-8") != text:
            notebook.write_text(text, encoding="utf-8")
        add_link(html, notebook.name)
        written.append(notebook)
    return written


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from analysis.freeze import render_output_dir  # standard library only, like this script

    out_dir = render_output_dir("chapter_notebooks")
    if out_dir is None:
        return 0
    written = run(out_dir)
    if written:
        print(f"chapter_notebooks: {len(written)} chapter notebooks linked in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
