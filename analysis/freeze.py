"""Keep Quarto's ``_freeze/`` true to what each chapter read (standard library only).

Quarto's freezer (``execute: freeze: auto``) re-executes a document only when its text changes.
This book's chapters also depend on the stored runs they read, on the package code they import and
on a few other files (benchmark results, annotations), and the Jupyter cache cannot be used
with inline ``{python}`` expressions. So:

- **while a chapter executes** in a render, ``record_reads()`` (installed by the package's
  ``__init__`` when Quarto runs the kernel) notes every experiment folder of the result store the
  chapter opens a file in, every other project file it reads or folder it lists, and the package modules it
  imported (after each cell), and writes ``_freeze/_analysis-deps/<doc>.json`` (outside Quarto's
  own per-document folders, which it copies back and forth): the profile, the result store in
  force, per module a digest of its source, per experiment folder a digest of its stored runs
  (each run's ``run.json`` and checksum list, which covers every stored file), per other file a
  digest of its bytes, and the package versions a page shows (``record_environment``);
- **before each render**, ``sync()`` (called by the project's ``pre-render`` script,
  ``scripts/pre_render.py``) recomputes those digests and drops a chapter's frozen results when
  anything differs (another profile or store, a changed module it imported, a run added, replaced
  or removed, a changed file, other package versions than the page shows), when a frozen figure
  is missing, or when the chapter has frozen results but no record. Quarto then executes that
  chapter again. Editing a module no chapter imports (compute code) re-executes nothing; its runs'
  keys change instead.

Only the default profile freezes (its ``_freeze/`` is committed); the other profiles set
``freeze: false`` in their ``_quarto-<profile>.yml``, execute every chapter on each render and
never touch the committed freeze.

Only the standard library is used, so the pre-render script also runs where the package's
dependencies are not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

FREEZE_DIR = "_freeze"
DEPS_DIR = "_analysis-deps"  # in FREEZE_DIR; one <document path>.json per executed document
FROZEN_PROFILE = "offline"  # the one profile whose chapter outputs are frozen (and committed)
_PACKAGE_DIR = Path(__file__).resolve().parent
# project folders whose files are inputs handled elsewhere (package code: modules; results: folders)
# or outputs and caches, never a chapter's input
# (data/: a group's data folder, covered by the runs' keys)
_NOT_INPUTS = ("analysis", "results", "data", "_freeze", ".quarto", ".cache", ".venv", "node_modules", "artifacts",
               ".git")
_HASH_LIMIT = 16 * 2**20  # larger inputs are identified by size and mtime, not hashed


def imported_modules(package_dir: Path = _PACKAGE_DIR) -> dict[str, str]:
    """The package's modules loaded in this process: path relative to the package -> file digest."""
    out = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if path.suffix == ".py" and path.is_relative_to(package_dir):
            out[path.relative_to(package_dir).as_posix()] = file_digest(path)
    return dict(sorted(out.items()))


def folder_digest(folder: Path) -> str:
    """Digest of the runs stored under ``folder``: each ``run.json`` and ``checksums.sha256``
    (relative path and bytes; the checksum list names every stored file's sha256).

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
            sums = meta.with_name("checksums.sha256")
            digest.update(hashlib.sha256(sums.read_bytes()).digest() if sums.exists() else b"unsealed")
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits); ``size:mtime`` for files over 16 MiB;
    "missing" when it cannot be read."""
    try:
        stat = Path(path).stat()
        if stat.st_size > _HASH_LIMIT:
            return f"{stat.st_size}:{stat.st_mtime_ns}"
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def _input_key(path: Path, project: Path) -> str | None:
    """How a project file or folder a chapter read is named in its record (its project-relative
    path), or None when it is not a chapter input: package code and stored results are recorded
    their own way, outputs and caches are no inputs, and data files are covered by the runs (their
    keys hold the data's fingerprint), so a render without the data folder changes no record."""
    if not path.is_relative_to(project):
        return None
    rel = path.relative_to(project)
    if (not rel.parts or rel.parts[0] in _NOT_INPUTS or rel.parts[0].startswith(("_book", "."))
            or rel.parts[0].endswith(".egg-info") or rel.suffix in (".qmd", ".ipynb")):
        return None
    return rel.as_posix()


def listing_digest(folder: Path) -> str:
    """Digest of a folder's entry names (a chapter that lists a folder, e.g. the group's demo
    screenshots, depends on what is in it); "missing" when it cannot be listed."""
    try:
        names = sorted(p.name for p in Path(folder).iterdir())
    except OSError:
        return "missing"
    return hashlib.sha256("\0".join(names).encode()).hexdigest()[:16]


def _input_digest(key: str, project: Path) -> str:
    if key.endswith("/"):
        return listing_digest(project / key)
    return file_digest(project / key)


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
        # other inputs a chapter reads: files (annotations, bench results) and listed folders ("figures/demo/")
        self.files: dict[str, str] = {}
        # the environment a page describes (record_environment): its Python and package versions
        self.environment: dict[str, str | None] = {}
        self._busy = False
        self._write()  # a chapter that reads no result still gets a record
        _after_each_cell(self._write)  # modules imported by later cells

    def __call__(self, event: str, args) -> None:
        """An ``open`` of a file in ``<profile>/<experiment>/<key>/`` records the experiment folder;
        listing ``<profile>/`` or deeper (``os.scandir``/``os.listdir``, as a glob does) records
        the folder listed, down to the experiment level; a read of any other project file records
        that file, a listing of a project folder its entry names."""
        if self._busy or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        try:
            path = Path(os.fsdecode(args[0]))
            if not path.is_absolute():
                path = Path.cwd() / path
            path = path.resolve()
        except (ValueError, OSError):
            return
        if not path.is_relative_to(self.results):
            if event == "open" and len(args) > 1 and isinstance(args[1], str) and set(args[1]) & set("wax+"):
                return  # written, not read
            key = _input_key(path, self.project)
            if key is None:
                return
            if event != "open":
                if _on_import_path(path):
                    return  # the import system lists every sys.path folder (the chapter's own, as ''): no input
                key = key.rstrip("/") + "/"
            if key not in self.files and (path.is_dir() if key.endswith("/") else path.is_file()):
                self._busy = True
                try:
                    self.files[key] = _input_digest(key, self.project)
                    self._write()
                finally:
                    self._busy = False
            return
        rel = path.relative_to(self.results)
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

    def _write(self, *_) -> None:
        self._busy, busy = True, self._busy
        try:
            record = {"profile": self.profile, "results": _rel(self.results, self.project), "modules": imported_modules(),
                      "folders": self.folders, "files": self.files}
            if self.environment:
                record["environment"] = dict(sorted(self.environment.items()))
            text = json.dumps(record, indent=1, sort_keys=True) + "\n"
            if self.deps_path.exists() and self.deps_path.read_text() == text:
                return
            self.deps_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.deps_path.with_name(self.deps_path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.deps_path)
        finally:
            self._busy = busy


def _on_import_path(folder: Path) -> bool:
    """Whether ``folder`` is a folder of ``sys.path`` (``''`` is the working directory)."""
    for entry in sys.path:
        try:
            if Path(entry or ".").resolve() == folder:
                return True
        except (OSError, ValueError):
            continue
    return False


def _after_each_cell(callback) -> None:
    """Call ``callback`` after every cell the IPython kernel runs (no-op outside IPython)."""
    try:
        ip = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    except Exception:  # noqa: BLE001 - any IPython trouble only costs the per-cell update
        ip = None
    if ip is not None:
        ip.events.register("post_run_cell", callback)


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
    # QUARTO_EXECUTE_INFO: set by Quarto itself, not by the book check (which mimics the others);
    # a Jupyter kernel: Quarto's own process keeps these variables for the scripts it runs after the
    # chapters (post-render: `python -m analysis lab-decoder`), which execute no document
    if not (project and doc_dir and doc_file and os.environ.get("QUARTO_EXECUTE_INFO")) or "ipykernel" not in sys.modules:
        return None
    document = (Path(doc_dir) / doc_file).with_suffix(".qmd")
    current = getattr(sys, "_analysis_freeze_recorder", None)
    if current is not None and current.document == document:
        return current
    from .paths import results_dir
    from .profiles import active_profile

    profile = active_profile()
    if profile != FROZEN_PROFILE:
        return None  # only the frozen profile's chapters are frozen: the other profiles keep no record
    try:
        recorder = _Recorder(Path(project), document, results_dir(), profile)
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
def stale_reason(deps: dict, project: Path, profile: str, results: Path,
                 package_dir: Path = _PACKAGE_DIR) -> str | None:
    """Why a chapter's frozen output no longer matches (None: it still does)."""
    if deps.get("profile") != profile:
        return f"rendered under profile {deps.get('profile')!r}, now {profile!r}"
    recorded = Path(deps.get("results", "results"))
    recorded = recorded if recorded.is_absolute() else project / recorded
    if "modules" not in deps:
        return "its record predates per-module code digests"
    if recorded.resolve() != results.resolve():
        return f"rendered from the result store {recorded}, now {results}"
    for module, digest in sorted(deps["modules"].items()):
        if file_digest(package_dir / module) != digest:
            return f"analysis/{module} changed"
    for folder, digest in sorted(deps.get("folders", {}).items()):
        if folder_digest(results / folder) != digest:
            return f"stored runs changed in {folder}"
    for key, digest in sorted(deps.get("files", {}).items()):
        if _input_digest(key, project) != digest:
            return f"{key} changed"
    recorded_env = deps.get("environment") or {}
    now = environment_now(tuple(recorded_env))
    for name, version in sorted(recorded_env.items()):
        if now[name] != version:
            return f"the environment changed ({name} {version or 'not installed'} -> {now[name] or 'not installed'})"
    return None


def environment_now(names: tuple[str, ...]) -> dict[str, str | None]:
    """This interpreter's version of each name: ``python`` is Python itself, any other name an
    installed distribution (None: not installed)."""
    import platform

    from .envinfo import package_versions

    versions = package_versions(tuple(n for n in names if n != "python"))
    return {n: platform.python_version() if n == "python" else versions[n] for n in names}


def record_environment(versions: dict[str, str | None]) -> None:
    """Note that the page being executed shows these versions (``python`` and distributions):
    its frozen output is then dropped before a render whose environment has other versions
    (``stale_reason``), so a page's environment table is always the rendering environment's.
    Outside a render of the frozen profile: nothing to do."""
    recorder = _current_recorder()
    if recorder is not None:
        recorder.environment.update(versions)
        recorder._write()


_FIGURE_REF = re.compile(r"[\w.-]+_files/(figure-[\w-]+/[^)\s\"'}]+)")


def missing_figures(doc_freeze: Path) -> list[str]:
    """Figures a frozen result shows that are not in its freezer folder (``figure-<format>/``)."""
    missing = []
    for result in sorted((doc_freeze / "execute-results").glob("*.json")):
        try:
            markdown = json.loads(result.read_text()).get("result", {}).get("markdown", "")
        except (OSError, json.JSONDecodeError, AttributeError):
            return [result.name]
        missing += [ref for ref in _FIGURE_REF.findall(markdown) if not (doc_freeze / ref).is_file()]
    return missing


def sync(project: Path, profile: str, log=print, results: Path | None = None) -> list[str]:
    """Drop the frozen results of every chapter whose record no longer matches; returns their
    freezer folders (relative to ``_freeze``). Only the frozen profile's outputs are synced: the
    other profiles do not freeze, and the committed freeze is never theirs to change.

    ``results``: the store in force (default ``$ANALYSIS_RESULTS_DIR``, else ``<project>/results``)."""
    from .paths import RESULTS_DIR_ENV  # standard library only

    freeze = project / FREEZE_DIR
    if profile != FROZEN_PROFILE or not freeze.is_dir():
        return []
    env_results = os.environ.get(RESULTS_DIR_ENV, "").strip()
    results = Path(results or (Path(env_results).expanduser() if env_results else project / "results")).resolve()
    dropped = []
    for results_folder in sorted(freeze.rglob("execute-results")):
        doc_freeze = results_folder.parent
        deps_path = (freeze / DEPS_DIR / doc_freeze.relative_to(freeze)).with_suffix(".json")
        try:
            deps = json.loads(deps_path.read_text())
            reason = stale_reason(deps, project, profile, results)
        except FileNotFoundError:
            reason = "no record of the results it read"
        except (json.JSONDecodeError, OSError, AttributeError) as exc:
            reason = f"unreadable record {deps_path.name} ({exc.__class__.__name__})"
        if reason is None and (gone := missing_figures(doc_freeze)):
            reason = f"frozen figure {gone[0]} is missing"
        if reason is None:
            continue
        shutil.rmtree(results_folder)
        deps_path.unlink(missing_ok=True)
        rel = doc_freeze.relative_to(freeze).as_posix()
        log(f"freeze-sync: {rel} will execute again: {reason}")
        dropped.append(rel)
    return dropped


_RANDOM_CELL_ID = re.compile(r"\{#([0-9a-f]{8}) \.cell")


def stable_cell_ids(project: Path) -> list[Path]:
    """Replace the random ids Quarto gives unlabelled cells in frozen results (``{#2ae136d7 .cell``,
    new on every execution) by ids numbered in document order (``{#cell-4-2 .cell``), so a chapter
    executed again with the same output leaves the committed ``_freeze/`` byte-identical. Returns
    the files it rewrote (post-render step; nothing links to these ids)."""
    changed = []
    for path in sorted((project / FREEZE_DIR).rglob("execute-results/*.json")):
        text = path.read_text(encoding="utf-8")
        ids = list(dict.fromkeys(_RANDOM_CELL_ID.findall(text)))
        if not ids:
            continue
        stem = re.sub(r"[^\w-]", "", path.parent.parent.name)[:24] or "doc"
        mapping = {old: f"cell-{stem}-{n}" for n, old in enumerate(ids, 1)}
        new = _RANDOM_CELL_ID.sub(lambda m: "{#" + mapping[m.group(1)] + " .cell", text)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
        changed.append(path)
    return changed


STASH_DIR = Path(".cache") / "freeze-stash"  # the committed freeze, while another profile renders


def stash_freeze(project: Path, profile: str) -> None:
    """Pre-render: under a profile other than the frozen one, move the committed ``_freeze/`` aside.

    Quarto writes such a render's outputs into ``_freeze/`` (``freeze: auto``) or, with ``freeze:
    false``, deletes the frozen outputs of every document it renders (quarto-cli
    src/command/render/render-files.ts: "cleanup the _freeze subdir b/c we aren't explicitly freezing").
    Either way the committed freeze would change; ``restore_freeze`` (post-render, and ``make render``
    after a failed render) puts it back. A stash left by a render that never finished is kept: it
    is the committed freeze."""
    freeze, stash = project / FREEZE_DIR, project / STASH_DIR
    if profile == FROZEN_PROFILE:
        restore_freeze(project)
        return
    if stash.exists():
        shutil.rmtree(freeze, ignore_errors=True)
    elif freeze.exists():
        stash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(freeze, stash)


def restore_freeze(project: Path) -> bool:
    """Put the stashed committed ``_freeze/`` back (dropping what another profile's render left there);
    False when nothing was stashed."""
    freeze, stash = project / FREEZE_DIR, project / STASH_DIR
    if not stash.exists():
        return False
    shutil.rmtree(freeze, ignore_errors=True)
    os.replace(stash, freeze)
    return True


INPUTS_SNAPSHOT = Path(".quarto") / "analysis-render-inputs.json"


def _render_inputs() -> list[str]:
    """The files Quarto renders now (project-relative), from the pre/post-render environment."""
    listed = os.environ.get("QUARTO_PROJECT_INPUT_FILES", "")
    via_file = os.environ.get("QUARTO_USE_FILE_FOR_PROJECT_INPUT_FILES")
    if via_file and Path(via_file).is_file():
        listed = Path(via_file).read_text()
    return [line for line in listed.splitlines() if line.strip()]


def snapshot_inputs(project: Path) -> None:
    """Pre-render: note the digest of each file being rendered (see ``inputs_changed``)."""
    snapshot = {f: file_digest(project / f) for f in _render_inputs()}
    path = project / INPUTS_SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, sort_keys=True))


def inputs_changed(project: Path) -> list[str]:
    """Post-render: the rendered files saved again while they rendered.

    ``quarto preview`` re-renders a file when it is saved, but an edit saved *during* that re-render is
    lost: when the render ends, Quarto records the file's content hash as rendered, so its next watch
    event, for the edit, is skipped as already rendered (quarto-cli ``src/project/serve/watch.ts``).
    A post-render script that fails keeps Quarto from recording the hash, and the edit renders next."""
    try:
        snapshot = json.loads((project / INPUTS_SNAPSHOT).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return sorted(f for f, digest in snapshot.items() if file_digest(project / f) != digest)


def render_output_dir(script: str) -> Path | None:
    """The site folder Quarto hands a post-render script (``QUARTO_PROJECT_OUTPUT_DIR``, made
    absolute); None, with a note on stderr, when the script was not started by ``quarto render``."""
    out = os.environ.get("QUARTO_PROJECT_OUTPUT_DIR")
    if not out:
        print(f"{script}: QUARTO_PROJECT_OUTPUT_DIR is not set (run by quarto render)", file=sys.stderr)
        return None
    path = Path(out)
    return path if path.is_absolute() else Path.cwd() / path
