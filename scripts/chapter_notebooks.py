"""Quarto post-render script: every page with Python cells gets a self-contained notebook, as a
download on the page and on Colab.

Quarto turns `format-links` off for book pages and renders `ipynb` for a book as one merged
notebook (src/project/types/book/book-render.ts), so a book gets no per-chapter notebooks from its
formats. This script does it after every render (`post-render` in _quarto.yml):

- for every rendered page ``<out>/<path>.html`` whose source ``<path>.qmd`` has Python cells,
  ``quarto convert`` gives the page's cells (unexecuted); the notebook is then made
  **self-contained**: a first cell saying what it is and what to click, the set-up cells of the
  hand-in notebook ``notebooks/colab_full.ipynb`` (those tagged ``setup``: settings, GPU check,
  clone of a public or private repository, packages, the lung file when the page needs it, the
  experiments), told which experiments the page reads (from its record in
  ``_freeze/_analysis-deps/``, else all), a cell that enters the page's folder as Quarto does, then
  the page's cells. Conversions are cached in ``.cache/chapter-notebooks/`` by the source's hash
  and the set-up cells' hash, so a warm render spends no time here;
- the notebook is written beside the page (``<out>/<path>.ipynb``, the download) and as
  ``notebooks/<path>.ipynb`` in the repository (committed: Colab opens notebooks from GitHub);
- the page gets the block Quarto itself writes for a website's other formats ("Other Formats") at
  the end of its table of contents: the Jupyter download and, when the repository has a GitHub
  remote (``analysis.repo``), an "Open in Colab" link to ``notebooks/<path>.ipynb`` on its
  ``main`` branch (as d2l.ai links each chapter).

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
VERSION = "2"  # bump when the notebook's content changes for the same source
MARKER = "quarto-alternate-formats"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
HANDIN = "notebooks/colab_full.ipynb"  # the set-up cells come from here (tagged "setup")
NOTEBOOKS = "notebooks"  # committed copies: notebooks/<page path>.ipynb
DEPS = "_freeze/_analysis-deps"  # what each page read in the last offline render (analysis/freeze.py)


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


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def setup_cells(project_dir: Path = ROOT) -> list[dict]:
    """The hand-in notebook's cells tagged ``setup``, without outputs (the project's own copy when
    ``project_dir`` has none)."""
    path = project_dir / HANDIN if (project_dir / HANDIN).is_file() else ROOT / HANDIN
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        if "setup" in cell.get("metadata", {}).get("tags", []):
            copy = {"cell_type": cell["cell_type"], "metadata": {"tags": ["setup"]}, "source": _source(cell)}
            if cell["cell_type"] == "code":
                copy.update(execution_count=None, outputs=[])
            cells.append(copy)
    if not cells or cells[0]["cell_type"] != "code":
        raise ValueError(f"{path}: the first cell tagged 'setup' must be the settings cell")
    return cells


def experiments_read(rel_qmd: str, project_dir: Path = ROOT) -> list[str]:
    """The experiments the page read in the last recorded render (``analysis/freeze.py`` keeps
    ``<profile>/<experiment>`` folders), else ``["all"]``."""
    record = project_dir / DEPS / (rel_qmd[:-len(".qmd")] + ".json")
    try:
        folders = json.loads(record.read_text(encoding="utf-8"))["folders"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["all"]
    return sorted({folder.split("/", 1)[1] for folder in folders if "/" in folder})


def intro_cell(rel_qmd: str, experiments: list[str]) -> dict:
    reads = ", ".join(f"`{e}`" for e in experiments) if experiments else "no stored run"
    text = (
        f"# `{rel_qmd}`, as a notebook\n\n"
        f"*This is `{rel_qmd}` of the book: its Python cells (converted by `quarto convert`, no outputs), "
        "after the set-up cells of the hand-in notebook `notebooks/colab_full.ipynb`, so it runs on its own.* "
        f"The page reads {reads}.\n\n"
        "**On Colab, in order:** (1) *Runtime > Change runtime type > GPU > Save*; (2) in the first code "
        "cell set `REPO_URL` to your group's repository; a private one needs a Colab secret `GITHUB_TOKEN` "
        "(key icon in the left bar; a fine-grained token with *Contents: Read-only*, *Notebook access* on) "
        "or a `git bundle` (`REPO_BUNDLE`); (3) *Runtime > Run all*; (4) upload the course's "
        "`lung_field_dataset.npz` if asked (SAM chapters). `PROFILE = \"full\"` computes what the page reads "
        "with the assignment's models (a stored run is reused); `PROFILE = \"offline\"` only reads the "
        "results committed in the repository. Elsewhere: start Jupyter in the project's environment "
        "(`make setup`) with `SKIP_COLAB_STEPS=1`. Values written inline as `` `{python} expression` `` are "
        "filled in by the rendered book, not by Jupyter."
    )
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def page_cells(rel_qmd: str, experiments: list[str]) -> tuple[dict, dict]:
    """The cell that names the page's experiments (after the settings cell) and the one that enters
    the page's folder before its own cells."""
    folder = rel_qmd.rsplit("/", 1)[0] if "/" in rel_qmd else "."
    names = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": (
        f"# This page reads these experiments (the experiments cell computes the missing ones under PROFILE).\n"
        f"EXPERIMENTS = {experiments!r}")}
    enter = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": (
        "# The page's cells run from its folder, as in a Quarto render, under the profile chosen above.\n"
        "from importlib.metadata import version as _installed\n"
        "_stale = [m for m in (\"numpy\", \"pandas\", \"scipy\", \"matplotlib\", \"torch\", \"transformers\")\n"
        "          if m in sys.modules and getattr(sys.modules[m], \"__version__\", _installed(m)).split(\"+\")[0]\n"
        "          != _installed(m).split(\"+\")[0]]\n"
        "if _stale:\n"
        "    raise RuntimeError(f\"pip upgraded {', '.join(_stale)} under this running session: Runtime > Restart \"\n"
        "                       \"session, then Runtime > Run all (the installs are then done already)\")\n"
        "sys.path.insert(0, str(REPO_DIR))  # the package, installed above after this session started\n"
        "os.environ[\"QUARTO_PROFILE\"] = PROFILE\n"
        f"os.chdir(REPO_DIR / {folder!r})\n"
        f"print(f\"the cells of {rel_qmd} under the {{PROFILE}} profile\")")}
    return names, enter


def tidy(nb: dict, rel_qmd: str, project_dir: Path = ROOT) -> dict:
    """A self-contained, portable notebook: generic kernelspec (no local path), the intro cell, the
    set-up cells, the page's experiments, then the page's own cells; cell ids numbered."""
    experiments = experiments_read(rel_qmd, project_dir)
    setup = setup_cells(project_dir)
    names, enter = page_cells(rel_qmd, experiments)
    nb.setdefault("metadata", {})["kernelspec"] = dict(KERNELSPEC)
    nb["metadata"]["accelerator"] = "GPU"
    nb["cells"] = [intro_cell(rel_qmd, experiments), setup[0], names, *setup[1:], enter] + nb.get("cells", [])
    nb["nbformat"], nb["nbformat_minor"] = 4, max(int(nb.get("nbformat_minor", 5)), 5)
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{i:03d}"
    return nb


def quarto_executable() -> str | None:
    bin_path = os.environ.get("QUARTO_BIN_PATH")
    if bin_path and (Path(bin_path) / "quarto").exists():
        return str(Path(bin_path) / "quarto")
    return shutil.which("quarto")


def convert(qmd: Path, quarto: str, cache: Path, project_dir: Path = ROOT) -> str:
    """The notebook's JSON text for ``qmd`` (from the cache when the source, the set-up cells and
    the page's experiments are unchanged)."""
    rel = qmd.relative_to(project_dir).as_posix()
    context = json.dumps([setup_cells(project_dir), experiments_read(rel, project_dir)], sort_keys=True)
    digest = hashlib.sha256((VERSION + "\0" + rel + "\0" + context + "\0").encode() + qmd.read_bytes()).hexdigest()[:16]
    cached = cache / f"{qmd.stem}-{digest}.ipynb"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{qmd.stem}.ipynb"
        subprocess.run([quarto, "convert", str(qmd), "--output", str(raw)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        nb = json.loads(raw.read_text(encoding="utf-8"))
    text = json.dumps(tidy(nb, rel, project_dir), indent=1, ensure_ascii=False) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{qmd.stem}-*.ipynb"):
        old.unlink()
    cached.write_text(text, encoding="utf-8")
    return text


def colab_link(rel_notebook: str, project_dir: Path = ROOT) -> str | None:
    """The Open-in-Colab URL of a committed notebook, from the repository's GitHub remote (else None)."""
    sys.path.insert(0, str(ROOT))
    from analysis.repo import colab_url, github_slug  # standard library only

    slug = github_slug(root=project_dir)
    return colab_url(slug, notebook=rel_notebook) if slug else None


def link_block(name: str, colab: str | None = None) -> str:
    """The markup Quarto writes for a website page's other formats (format-html-bootstrap.ts), with
    the Jupyter download and, given its URL, the page's notebook on Colab."""
    items = f'<li><a href="{name}" download="{name}"><i class="bi bi-journal-code"></i>Jupyter</a></li>'
    if colab:
        items += (f'<li><a href="{colab}" target="_blank" rel="noopener"><i class="bi bi-google"></i>'
                  "Open in Colab</a></li>")
    return f'<div class="{MARKER}"><h2>Other Formats</h2><ul>{items}</ul></div>'


def add_link(html: Path, notebook_name: str, colab: str | None = None) -> bool:
    """Put the notebook links at the end of the page's table of contents; False if already there
    or the page has no table of contents."""
    text = html.read_text(encoding="utf-8")
    if MARKER in text:
        return False
    start = text.find('<nav id="TOC"')
    end = text.find("</nav>", start) if start >= 0 else -1
    if end < 0:
        print(f"chapter_notebooks: {html} has no table of contents; no notebook link added", file=sys.stderr)
        return False
    html.write_text(text[:end] + link_block(notebook_name, colab) + "\n" + text[end:], encoding="utf-8")
    return True


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


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
    for (html, qmd), text in zip(todo, texts):
        notebook = html.with_suffix(".ipynb")
        _write_if_changed(notebook, text)
        rel_notebook = f"{NOTEBOOKS}/{qmd.relative_to(project_dir).with_suffix('.ipynb').as_posix()}"
        _write_if_changed(project_dir / rel_notebook, text)  # the copy Colab opens from GitHub
        add_link(html, notebook.name, colab_link(rel_notebook, project_dir))
        written.append(notebook)
    return written


def write_repo_notebooks(project_dir: Path = ROOT, quarto: str | None = None) -> list[Path]:
    """Write ``notebooks/<path>.ipynb`` for every page of the book with Python cells, without a
    render (``python scripts/chapter_notebooks.py --notebooks``)."""
    quarto = quarto or quarto_executable()
    if quarto is None:
        raise SystemExit("chapter_notebooks: quarto not found (PATH, or QUARTO_BIN_PATH)")
    cache = project_dir / ".cache" / "chapter-notebooks"
    out = []
    for qmd in sorted([*project_dir.glob("*.qmd"), *project_dir.glob("chapters/*.qmd"), *project_dir.glob("appendices/*.qmd")]):
        if has_python_cells(qmd):
            target = project_dir / NOTEBOOKS / qmd.relative_to(project_dir).with_suffix(".ipynb")
            _write_if_changed(target, convert(qmd, quarto, cache, project_dir))
            out.append(target)
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT))
    if "--notebooks" in sys.argv[1:]:
        for path in write_repo_notebooks():
            print(f"chapter_notebooks: {path.relative_to(ROOT)}")
        return 0
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
