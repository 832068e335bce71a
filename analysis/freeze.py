"""Keep Quarto's ``_freeze/`` true to the result store (standard library only).

Quarto's freezer (``execute: freeze: auto``) re-executes a document only when its text changes.
This book's chapters also depend on the stored runs they read and on this package's code, and the
Jupyter cache cannot be used with inline ``{python}`` expressions. So:

- **while a chapter executes** in a render, ``record_reads()`` (installed by the package's
  ``__init__`` when Quarto runs the kernel) notes every experiment folder of the result store the
  chapter opens a file in (and the files of ``annotations/`` it reads), and writes ``_freeze/_analysis-deps/<doc>.json`` (outside Quarto's own
  per-document folders, which it copies back and forth): the profile, a digest
  of the package's source, and per experiment folder a digest of its stored runs (key and
  ``run.json`` bytes of each);
- **before each render**, ``sync()`` (the project's ``pre-render`` script,
  ``scripts/freeze_sync.py``) recomputes those digests and drops a chapter's frozen results when
  anything differs (another profile, changed package code, a run added, replaced or removed) or
  when the chapter has frozen results but no record. Quarto then executes that chapter again.

Only the standard library is used, so the pre-render script also runs where the package's
dependencies are not installed (the publish workflow renders the committed ``_freeze/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

FREEZE_DIR = "_freeze"
DEPS_DIR = "_analysis-deps"  # in FREEZE_DIR; one <document path>.json per executed document
ANNOTATIONS_DIR = "annotations"  # human labels of stored outputs that chapters read (task 4.6)
_PACKAGE_DIR = Path(__file__).resolve().parent


def source_digest(package_dir: Path = _PACKAGE_DIR) -> str:
    """sha256 over the package's Python files (relative path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def folder_digest(folder: Path) -> str:
    """Digest of the runs stored under ``folder``: each ``run.json`` (relative path and bytes).

    ``folder`` is an experiment folder (``<profile>/<experiment>``) or a whole profile (when a
    document lists every run, as the preface does). Hidden folders (a save in progress) are
    skipped; an empty or missing folder has its own digest.
    """
    digest = hashlib.sha256()
    if folder.is_dir():
        for meta in sorted(folder.rglob("run.json")):
            rel = meta.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts):
                continue
            digest.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(meta.read_bytes()).digest())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits), or "missing"."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def _deps_path(project: Path, document: Path) -> Path:
    """Where a document's record lives: ``_freeze/_analysis-deps/<path without extension>.json``."""
    rel = document.resolve().relative_to(project.resolve())
    return project / FREEZE_DIR / DEPS_DIR / rel.with_suffix(".json")


# --------------------------------------------------------------------------- recording (kernel)
class _Recorder:
    def __init__(self, project: Path, document: Path, results: Path, profile: str):
        self.document = document
        self.deps_path = _deps_path(project, document)
        self.results = results.resolve()
        self.project = project.resolve()
        self.profile = profile
        self.folders: dict[str, str] = {}
        self.files: dict[str, str] = {}  # other inputs a chapter reads (our annotations), by path
        self._busy = False
        self._write()  # a chapter that reads no result still gets a record

    def __call__(self, event: str, args) -> None:
        """An ``open`` of a file in ``<profile>/<experiment>/<key>/`` records the experiment folder;
        listing ``<profile>/`` or deeper (``os.scandir``/``os.listdir``, as a glob does) records
        the folder listed, down to the experiment level."""
        if self._busy or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        try:
            path = Path(os.fsdecode(args[0]))
            if not path.is_absolute():
                path = Path.cwd() / path
            path = path.resolve()
        except (ValueError, OSError):
            return
        if event == "open" and path.is_relative_to(self.project / ANNOTATIONS_DIR):
            key = path.relative_to(self.project).as_posix()
            if key not in self.files:
                self._busy = True
                try:
                    self.files[key] = file_digest(path)
                    self._write()
                finally:
                    self._busy = False
            return
        try:
            rel = path.relative_to(self.results)
        except ValueError:
            return
        depth = 2 if event == "open" else min(len(rel.parts), 2)
        if depth == 0 or len(rel.parts) < depth or (event == "open" and len(rel.parts) < 3):
            return
        folder = Path(*rel.parts[:depth]).as_posix()
        if folder in self.folders or folder.split("/")[0] in self.folders:
            return
        self._busy = True  # our own reads below must not re-enter
        try:
            self.folders[folder] = folder_digest(self.results / folder)
            self._write()
        finally:
            self._busy = False

    def _write(self) -> None:
        record = {"profile": self.profile, "source": source_digest(),
                  "results": _rel(self.results, self.project), "folders": self.folders, "files": self.files}
        self.deps_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.deps_path.with_name(self.deps_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.deps_path)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _current_recorder() -> _Recorder | None:
    """The recorder for the document Quarto is executing now (a new one when the document
    changed, should Quarto reuse a kernel), or None outside a project render."""
    project = os.environ.get("QUARTO_PROJECT_ROOT")
    doc_dir = os.environ.get("QUARTO_DOCUMENT_PATH")
    doc_file = os.environ.get("QUARTO_DOCUMENT_FILE")
    # QUARTO_EXECUTE_INFO: set by Quarto itself, not by the book check (which mimics the others)
    if not (project and doc_dir and doc_file and os.environ.get("QUARTO_EXECUTE_INFO")):
        return None
    document = (Path(doc_dir) / doc_file).with_suffix(".qmd")
    current = getattr(sys, "_analysis_freeze_recorder", None)
    if current is not None and current.document == document:
        return current
    from .paths import results_dir
    from .profiles import active_profile

    try:
        recorder = _Recorder(Path(project), document, results_dir(), active_profile())
    except (ValueError, OSError):
        return None  # not a document of this project: nothing to keep in sync
    sys._analysis_freeze_recorder = recorder
    return recorder


def _audit(event: str, args) -> None:
    if event in ("open", "os.scandir", "os.listdir"):
        recorder = _current_recorder()
        if recorder is not None:
            recorder(event, args)


def record_reads() -> bool:
    """Record this kernel's reads of the result store while Quarto renders a document of a project
    (``QUARTO_PROJECT_ROOT``, ``QUARTO_DOCUMENT_PATH``, ``QUARTO_DOCUMENT_FILE`` and
    ``QUARTO_EXECUTE_INFO`` set). Installs
    one audit hook per process; returns whether recording is on."""
    if _current_recorder() is None:
        return False
    if not getattr(sys, "_analysis_freeze_hooked", False):
        sys._analysis_freeze_hooked = True
        sys.addaudithook(_audit)
    return True


# --------------------------------------------------------------------------- sync (pre-render)
def stale_reason(deps: dict, project: Path, profile: str, source: str) -> str | None:
    """Why a chapter's frozen output no longer matches (None: it still does)."""
    if deps.get("profile") != profile:
        return f"rendered under profile {deps.get('profile')!r}, now {profile!r}"
    if deps.get("source") != source:
        return "the analysis package changed"
    results = Path(deps.get("results", "results"))
    results = results if results.is_absolute() else project / results
    for folder, recorded in sorted(deps.get("folders", {}).items()):
        if folder_digest(results / folder) != recorded:
            return f"stored runs changed in {folder}"
    for file, recorded in sorted(deps.get("files", {}).items()):
        if file_digest(project / file) != recorded:
            return f"{file} changed"
    return None


def sync(project: Path, profile: str, log=print) -> list[str]:
    """Drop the frozen results of every chapter whose record no longer matches; returns their
    freezer folders (relative to ``_freeze``)."""
    freeze = project / FREEZE_DIR
    if not freeze.is_dir():
        return []
    source = source_digest()
    dropped = []
    for results_dir in sorted(freeze.rglob("execute-results")):
        doc_freeze = results_dir.parent
        deps_path = (freeze / DEPS_DIR / doc_freeze.relative_to(freeze)).with_suffix(".json")
        try:
            deps = json.loads(deps_path.read_text())
            reason = stale_reason(deps, project, profile, source)
        except FileNotFoundError:
            reason = "no record of the results it read"
        except (json.JSONDecodeError, OSError) as exc:
            reason = f"unreadable record {deps_path.name} ({exc.__class__.__name__})"
        if reason is None:
            continue
        shutil.rmtree(results_dir)
        deps_path.unlink(missing_ok=True)
        rel = doc_freeze.relative_to(freeze).as_posix()
        log(f"freeze-sync: {rel} will execute again: {reason}")
        dropped.append(rel)
    return dropped


def render_output_dir(script: str) -> Path | None:
    """The site folder Quarto hands a post-render script (``QUARTO_PROJECT_OUTPUT_DIR``, made
    absolute); None, with a note on stderr, when the script was not started by ``quarto render``."""
    out = os.environ.get("QUARTO_PROJECT_OUTPUT_DIR")
    if not out:
        print(f"{script}: QUARTO_PROJECT_OUTPUT_DIR is not set (run by quarto render)", file=sys.stderr)
        return None
    path = Path(out)
    return path if path.is_absolute() else Path.cwd() / path
