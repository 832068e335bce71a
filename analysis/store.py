"""Content-addressed result store.

A run lives in ``results/<profile>/<experiment>/<key>/`` where ``key`` hashes (experiment, profile,
config, code version, data fingerprint). It holds

- ``run.json``: experiment, profile, key, created, wall seconds, config, code version, source hash,
  data fingerprint, environment (versions, device, seed) and metrics;
- ``<table>.jsonl``: per-item records (``records.jsonl``, one row per item with a stable ``id``) and
  any further named tables;
- ``arrays.npz``: small arrays a chapter plots (attention maps, example masks).

- ``checksums.sha256``: the sha256 of every other file (``sha256sum`` format), verified when a file
  is read; a mismatch is a :class:`~analysis.errors.StoreError` naming the file and saying that
  ``run --force`` recomputes it.

Safety (see ``Store.save``):

- a run is written into a hidden staging folder (``.KEY.staging.PID.*``) and renamed into place;
  ``run.json`` and ``checksums.sha256`` come last, so a folder without them is never a run;
- replacing a run renames the old copy to ``.KEY.old.*`` first; if the process dies before the new
  copy is in place, the next ``load``/``runs`` restores the old copy (at every instant one complete
  copy exists), and leftovers of killed saves are removed; hidden folders are never listed as runs;
- one lock file per key (``<root>/.locks/``, ``fcntl.flock``, released by the kernel when a process
  dies) serialises computing and saving a key, so two runs of one key cannot race;
- before computing, ``check_writable`` fails fast on a read-only or full disk; a save that still
  fails for lack of space writes the finished run to the system temp folder and says where.

Runs written before checksums existed (no ``checksums.sha256``) are *legacy* runs: they load, their
files are parsed with the same clear errors, but nothing can be verified; ``seal_legacy`` writes
their checksum files once (the committed offline runs were sealed so). Runs of different profiles
live in different folders, so a smoke run cannot overwrite an offline or full one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StoreError
from .paths import results_dir

try:  # POSIX; elsewhere the per-key lock is a no-op (documented limitation)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

RUN_FILE = "run.json"
ARRAYS_FILE = "arrays.npz"
CHECKSUM_FILE = "checksums.sha256"
KEY_LENGTH = 16
STORE_FORMAT = 2  # run.json of runs with checksums says so: their checksum file may not go missing
LOCK_DIR = ".locks"
META_KEYS = ("experiment", "profile", "key", "created", "wall_seconds", "config", "env", "metrics")
MIN_FREE_BYTES = 256 << 20  # refuse to start a computation with less free space in the store
MIN_FREE_ENV = "ANALYSIS_STORE_MIN_FREE_MB"
LEGACY_STAGING_AGE_S = 3600  # staging folders of the pre-lock code are removed when older than this

# Test hook (the fault suite): "<point>:kill" SIGKILLs this process at a named point of ``save``,
# "<point>:pause:<file>" writes <file> and sleeps there (the test kills it from outside),
# "<point>:enospc" raises "no space left" there. Points: see ``SAVE_POINTS``.
FAULT_ENV = "ANALYSIS_STORE_FAULT"
SAVE_POINTS = ("staged-tables", "staged-arrays", "staged-meta", "staged", "old-moved", "installed")


def _fault_point(point: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, action = spec.partition(":")
    if name != point:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("pause:"):
        Path(action.partition(":")[2]).write_text(point)
        time.sleep(600)
    elif action == "enospc":  # once: the rescue copy goes to another folder (another disk, typically)
        os.environ.pop(FAULT_ENV, None)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (test hook at {point})")


@dataclasses.dataclass
class Output:
    """What an experiment's compute function returns.

    ``tables["records"]`` is the per-item table (each row a dict with a stable ``"id"``);
    other tables are free-form (curves, summaries). ``arrays`` holds small numpy arrays.
    ``web`` holds files written for the HTML book's browser widgets (name -> bytes, stored as
    ``web/<name>`` and checksummed like every other file; scripts/lab_assets.py copies them into
    the site): an ONNX model, float16 embeddings, PNG images.
    """

    metrics: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    web: dict[str, bytes] = dataclasses.field(default_factory=dict)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from dataclasses, numpy scalars/arrays, paths, tuples and sets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace): the input of every hash here."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_key(experiment: str, profile: str, config: Any, code_version: str, data_fingerprint: str) -> str:
    """The run's address: a hash of everything that determines its results."""
    payload = canonical_json(
        {
            "experiment": experiment,
            "profile": profile,
            "config": config,
            "code_version": code_version,
            "data": data_fingerprint,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB blocks (model files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised on (path, size, mtime) for cheap re-renders.

    A changed size or mtime hashes the file again."""
    path = Path(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_HASHES:
        _FILE_HASHES[memo] = sha256_file(path)
    return _FILE_HASHES[memo]


def fingerprint_files(paths: Iterable[Path]) -> str:
    """A data fingerprint from file contents (names do not matter, bytes do)."""
    parts = sorted(file_sha256(Path(p)) for p in paths)
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:KEY_LENGTH]


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})  ((?:web/)?[A-Za-z0-9_.-]+)$")
WEB_DIR = "web"  # Output.web files live in this sub-folder of a run
_WEB_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def _recompute_fix(path: Path) -> str:
    """The fix for a damaged run folder ``path``: the CLI command that recomputes it."""
    experiment, profile = path.parent.name, path.parent.parent.name
    fix = f"`python -m analysis run {experiment} --profile {profile} --force` recomputes it"
    if profile == "offline":  # the committed runs: git has the intact copy
        fix += f" (or restore the committed copy: `git checkout -- {path}`)"
    return fix


class Run:
    """A stored run, loaded lazily: ``metrics`` and ``config`` from ``run.json``, tables on demand.

    Every file is checked against ``checksums.sha256`` before it is parsed (legacy runs without that
    file are only parsed); problems raise :class:`StoreError` naming the file.
    """

    def __init__(self, path: Path, key: str | None = None, *, unsealed_ok: bool = False):
        self.path = Path(path)
        self._expected_key = key or self.path.name  # an old copy (.KEY.old.N) still holds KEY
        self._unsealed_ok = unsealed_ok  # only `seal` reads a run without checksums, to show and seal it
        self.checksums: dict[str, str] | None = self._read_checksums()
        self._verified: dict[str, tuple[int, int]] = {}
        self.meta: dict[str, Any] = self._read_meta()

    def __repr__(self) -> str:
        return f"Run({self.experiment}/{self.profile}/{self.key}, {self.wall_seconds:.0f} s)"

    experiment = property(lambda self: self.meta["experiment"])
    profile = property(lambda self: self.meta["profile"])
    key = property(lambda self: self.meta["key"])
    config = property(lambda self: self.meta["config"])
    metrics = property(lambda self: self.meta["metrics"])
    env = property(lambda self: self.meta["env"])
    created = property(lambda self: self.meta["created"])
    wall_seconds = property(lambda self: float(self.meta["wall_seconds"]))

    @property
    def sealed(self) -> bool:
        """Whether the run has checksums (False for legacy runs written before they existed)."""
        return self.checksums is not None

    def _damaged(self, name: str, problem: str) -> StoreError:
        if self._replaced_since_opened():
            return StoreError(self.path, f"was replaced by a newer computation (`run --force`) while this reader "
                              f"held it ({name} belongs to the new run)", "read the run again (a render: "
                              "render again; in Python: load the run anew); the new run is intact")
        return StoreError(self.path / name, problem, _recompute_fix(self.path))

    def _replaced_since_opened(self) -> bool:
        """Whether the run's checksum file now lists other contents than when this reader opened it
        (another process replaced the run), as opposed to a damaged file inside an unchanged run."""
        opened = getattr(self, "checksums", None)
        if opened is None:
            return False
        try:
            now = (self.path / CHECKSUM_FILE).read_text()
        except OSError:
            return False
        return now != getattr(self, "_checksum_text", now)

    def _read_checksums(self) -> dict[str, str] | None:
        path = self.path / CHECKSUM_FILE
        if not path.exists():
            return None
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise self._damaged(CHECKSUM_FILE, f"unreadable ({exc.__class__.__name__}: {exc})") from None
        self._checksum_text = text  # what this reader saw: tells a replaced run from a damaged one
        lines = text.splitlines()
        sums = {}
        for n, line in enumerate(lines, 1):
            match = _CHECKSUM_LINE.match(line)
            if not match:
                raise self._damaged(CHECKSUM_FILE, f"line {n} is not '<sha256>  <file>' ({line[:60]!r})")
            sums[match.group(2)] = match.group(1)
        if RUN_FILE not in sums:
            raise self._damaged(CHECKSUM_FILE, f"does not list {RUN_FILE}")
        return sums

    def _read_verified(self, name: str) -> bytes:
        """A file's bytes, checked against its checksum (legacy runs: unchecked)."""
        path = self.path / name
        if self.checksums is not None and name not in self.checksums:
            raise self._damaged(name, f"is not listed in {CHECKSUM_FILE} (added or renamed by hand)")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._damaged(name, "is missing") from None
        except OSError as exc:
            raise self._damaged(name, f"cannot be read ({exc.__class__.__name__}: {exc})") from None
        if self.checksums is not None and _sha256_bytes(data) != self.checksums[name]:
            if b"\r\n" in data and _sha256_bytes(data.replace(b"\r\n", b"\n")) == self.checksums[name]:
                raise StoreError(path, "has Windows line endings (CRLF) where the run was stored with LF: "
                                 "git converted it on checkout (core.autocrlf)",
                                 "check the store out again as committed: `git checkout HEAD -- results` (the "
                                 "project's .gitattributes keeps results/ unconverted; an older clone may also "
                                 "need `git config core.autocrlf false`)")
            raise self._damaged(name, f"content differs from its checksum in {CHECKSUM_FILE} "
                                      f"({len(data)} bytes; edited, truncated or corrupted)")
        return data

    def _read_meta(self) -> dict[str, Any]:
        data = self._read_verified(RUN_FILE)
        try:
            meta = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._damaged(RUN_FILE, f"is not valid JSON ({exc.__class__.__name__}: {str(exc)[:120]})") from None
        if not isinstance(meta, dict):
            raise self._damaged(RUN_FILE, f"holds a JSON {type(meta).__name__}, not an object")
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise self._damaged(RUN_FILE, f"lacks field(s) {missing}")
        if meta["key"] != self._expected_key:
            raise self._damaged(RUN_FILE, f"says key {meta['key']!r} but is stored under {self._expected_key!r}")
        if self.checksums is None and meta.get("store_format", 1) >= STORE_FORMAT:
            raise self._damaged(CHECKSUM_FILE, "is missing (this run was saved with checksums)")
        if self.checksums is None and not self._unsealed_ok:
            raise StoreError(self.path / CHECKSUM_FILE, "is missing: this run has no checksums, so nothing it holds "
                             "can be verified", f"recompute it (python -m analysis run {meta['experiment']} --profile "
                             f"{meta['profile']} --force), or, if you know it is intact, `python -m analysis seal "
                             f"--profile {meta['profile']}` lists its files and seals them")

        for field, kind in (("metrics", dict), ("config", dict), ("created", str)):
            if not isinstance(meta[field], kind):
                raise self._damaged(RUN_FILE, f"{field!r} is {meta[field]!r}, not {'an object' if kind is dict else 'text'}")
        try:
            float(meta["wall_seconds"])
        except (TypeError, ValueError):
            raise self._damaged(RUN_FILE, f"'wall_seconds' is {meta['wall_seconds']!r}, not a number") from None
        return meta

    def check_key(self) -> "Run":
        """The run's key must be the hash of the config, code version and data fingerprint its
        ``run.json`` records (``run_key``): a run edited by hand, checksums and all, is refused."""
        meta = self.meta
        if run_key(meta["experiment"], meta["profile"], meta["config"], meta.get("code_version"),
                   meta.get("data_fingerprint")) != meta["key"]:
            raise self._damaged(RUN_FILE, "holds a config, code version or data fingerprint that does not hash to "
                                f"its key {meta['key']!r} (edited by hand?)")
        return self

    def files(self) -> list[str]:
        if self.checksums is not None:
            return sorted(self.checksums)
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)

    def verify(self) -> "Run":
        """Check every file against its checksum and parse every table and the arrays."""
        if self.checksums is not None:
            for name in self.checksums:
                self._read_verified(name)
        for name in self.table_names():
            self.rows(name)
        if ARRAYS_FILE in self.files():
            self.__dict__.pop("arrays", None)
            _ = self.arrays
        return self

    def table_names(self) -> list[str]:
        return sorted(n[: -len(".jsonl")] for n in self.files() if n.endswith(".jsonl") and "/" not in n)

    def web_file(self, name: str) -> bytes:
        """A file of ``Output.web``, checked against its checksum."""
        return self._read_verified(f"{WEB_DIR}/{name}")

    def rows(self, name: str = "records") -> list[dict[str, Any]]:
        """A stored table as a list of dicts."""
        file = f"{name}.jsonl"
        if name not in self.table_names():
            raise KeyError(f"run {self.key} has no table {name!r}; it has {self.table_names()}")
        try:
            text = self._read_verified(file).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._damaged(file, f"is not UTF-8 text ({exc})") from None
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise self._damaged(file, f"line {n} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise self._damaged(file, f"line {n} is a JSON {type(row).__name__}, not an object")
            rows.append(row)
        return rows

    def table(self, name: str = "records"):
        """A stored table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows(name))

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        if ARRAYS_FILE not in self.files():
            return {}
        import io
        import zipfile

        data = self._read_verified(ARRAYS_FILE)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib_error()) as exc:
            raise self._damaged(ARRAYS_FILE, f"cannot be read as .npz ({exc.__class__.__name__}: {str(exc)[:120]})") from None


def zlib_error():
    import zlib

    return zlib.error


def _pickle_rescue(output: Output, experiment: str, key: str) -> str:
    """Keep an output that cannot be stored (a bug in the experiment's code) so its compute is not lost."""
    import pickle

    try:
        fd, name = tempfile.mkstemp(prefix=f"analysis-unsaved-{experiment}-{key}-", suffix=".pickle")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(output, fh)
        return f"the raw output was pickled to {name}"
    except Exception:  # noqa: BLE001 - unpicklable too: nothing more can be kept
        return "the raw output could not be kept"


# ---------------------------------------------------------------------------------------------
# locks


_HELD: dict[str, int] = {}  # lock path -> depth, for this process (flock is per open file)


class KeyLock:
    """An exclusive lock on one run key (``fcntl.flock`` on ``<root>/.locks/<profile>/<exp>/<key>.lock``).

    The kernel releases it when the holder dies, so a killed run never leaves a stale lock.
    Re-entrant within a process.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fh = None
        self.waited = False

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, wait: bool = True, on_wait=None) -> bool:
        key = str(self.path)
        if _HELD.get(key):
            _HELD[key] += 1
            return True
        if fcntl is None:  # pragma: no cover
            _HELD[key] = 1
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ignore = self.path.parents[2] / ".gitignore" if len(self.path.parents) > 2 else None
        if ignore is not None and ignore.parent.name == LOCK_DIR and not ignore.exists():
            with contextlib.suppress(OSError):
                ignore.write_text("*\n")
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                fh.close()
                return False
            self.waited = True
            if on_wait is not None:
                on_wait(self.holder())
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._fh = fh
        _HELD[key] = 1
        return True

    def release(self) -> None:
        key = str(self.path)
        depth = _HELD.get(key, 0)
        if depth > 1:
            _HELD[key] = depth - 1
            return
        _HELD.pop(key, None)
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


# ---------------------------------------------------------------------------------------------
# the store


_OLD = re.compile(r"^\.(?P<key>[^.]+)\.old\.\d+$")
_STAGING = re.compile(r"^\.(?P<key>[^.]+)\.staging\.(?P<pid>\d+)\..+$")
_LEGACY_STAGING = re.compile(r"^\.(?P<key>[^.]+)\.[a-z0-9_]{8}$")  # tempfile.mkdtemp(prefix=".KEY.")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return _sha256_bytes(data)


def _write_checksums(folder: Path, sums: dict[str, str]) -> None:
    text = "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))
    _write_file(folder / CHECKSUM_FILE, text.encode("ascii"))


def _min_free_bytes() -> int:
    value = os.environ.get(MIN_FREE_ENV, "").strip()
    if not value:
        return MIN_FREE_BYTES
    try:
        mib = float(value)
    except ValueError:
        mib = float("nan")
    if not mib >= 0:  # NaN, negative, a word
        from .errors import ConfigError

        raise ConfigError(f"${MIN_FREE_ENV}={value!r} is not a number of MiB (fix: a number such as 256, or unset it "
                          f"for the default {MIN_FREE_BYTES >> 20})")
    return int(mib * (1 << 20))


_DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                getattr(errno, "EDQUOT", -1): "the disk quota is exceeded"}


class Store:
    """The result store rooted at ``root`` (default: ``results/``)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else results_dir()

    def run_dir(self, profile: str, experiment: str, key: str) -> Path:
        return self.root / profile / experiment / key

    def lock(self, profile: str, experiment: str, key: str) -> KeyLock:
        return KeyLock(self.root / LOCK_DIR / profile / experiment / f"{key}.lock")

    # --- recovery -----------------------------------------------------------------------------

    def _leftovers(self, folder: Path, key: str | None = None) -> dict[str, list[Path]]:
        """Hidden folders of killed saves in an experiment folder, by key."""
        found: dict[str, list[Path]] = {}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return found
        for entry in entries:
            if not entry.name.startswith("."):
                continue
            match = _OLD.match(entry.name) or _STAGING.match(entry.name) or _LEGACY_STAGING.match(entry.name)
            if match and (key is None or match.group("key") == key) and entry.is_dir(follow_symlinks=False):
                found.setdefault(match.group("key"), []).append(Path(entry.path))
        return found

    @staticmethod
    def _complete(path: Path, key: str) -> bool:
        try:
            Run(path, key).verify()
            return True
        except (StoreError, KeyError):
            return False

    def recover(self, profile: str, experiment: str, key: str) -> Path | None:
        """Repair what a killed save left for ``key``; returns a complete copy's folder or None.

        Under the key's lock (skipped when another process holds it, or when the store is
        read-only): a missing run is restored from the newest complete old copy; old copies beside a
        complete run, and staging folders (no save of this key runs), are removed. Without the lock,
        a complete old copy is still returned (read from where it lies) so nothing is ever lost.
        """
        folder = self.root / profile / experiment
        leftovers = self._leftovers(folder, key).get(key, [])
        final = folder / key
        if not leftovers:  # a folder with checksums but no run.json is damaged, not missing
            return final if (final / RUN_FILE).exists() or (final / CHECKSUM_FILE).exists() else None
        olds = sorted((p for p in leftovers if _OLD.match(p.name)), key=lambda p: p.name, reverse=True)
        lock = self.lock(profile, experiment, key)
        try:
            locked = lock.acquire(wait=False)
        except OSError:
            locked = False
        if not locked:  # a save is running, or the store is read-only: read, do not repair
            if (final / RUN_FILE).exists():
                return final
            return next((p for p in olds if self._complete(p, key)), None)
        try:
            if not (final / RUN_FILE).exists():
                good = next((p for p in olds if self._complete(p, key)), None)
                if good is not None:
                    if final.exists():  # a folder without run.json: never a run; keep it aside
                        os.replace(final, final.with_name(f".{key}.old.{time.time_ns()}"))
                    os.replace(good, final)
                    _fsync_dir(folder)
                    print(f"result store: restored {final} from {good.name} (a replace was interrupted)",
                          file=sys.stderr)
            if self._complete(final, key):  # old copies go only once the run in place is intact
                now = time.time()
                for path in self._leftovers(folder, key).get(key, []):
                    if _LEGACY_STAGING.match(path.name) and now - path.stat().st_mtime < LEGACY_STAGING_AGE_S:
                        continue  # may belong to a save by code without locks, still running
                    shutil.rmtree(path, ignore_errors=True)
            else:
                for path in self._leftovers(folder, key).get(key, []):
                    if _STAGING.match(path.name):
                        shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # read-only store: nothing repaired, nothing lost
        finally:
            lock.release()
        if (final / RUN_FILE).exists():
            return final
        good = next((p for p in olds if p.exists() and self._complete(p, key)), None)
        return good if good is not None or not (final / CHECKSUM_FILE).exists() else final

    # --- reading ------------------------------------------------------------------------------

    def load(self, profile: str, experiment: str, key: str) -> Run | None:
        """The stored run, or None; a damaged run raises StoreError naming the file."""
        path = self.recover(profile, experiment, key)
        return Run(path, key) if path is not None else None

    def runs(self, profile: str | None = None, experiment: str | None = None) -> list[Run]:
        """Every stored run, oldest first (hidden folders of interrupted saves are never runs)."""
        found = []
        for exp_dir in sorted(self.root.glob(f"{profile or '*'}/{experiment or '*'}")):
            if exp_dir.name.startswith(".") or exp_dir.parent.name.startswith(".") or not exp_dir.is_dir():
                continue
            keys = {p.name for p in exp_dir.iterdir() if not p.name.startswith(".") and p.is_dir()}
            keys |= set(self._leftovers(exp_dir))
            for key in sorted(keys):
                run = self.load(exp_dir.parent.name, exp_dir.name, key)
                if run is not None:
                    found.append(run)
        return sorted(found, key=lambda r: r.created)

    # --- writing ------------------------------------------------------------------------------

    def check_writable(self, profile: str, experiment: str, need_bytes: int | None = None) -> None:
        """Fail fast, before any computation, if a run could not be saved (read-only, no space)."""
        folder = self.root / profile / experiment
        fix = f"make {self.root} writable, or point ANALYSIS_RESULTS_DIR at a writable folder"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = _DISK_ERRNOS.get(exc.errno, f"{exc.__class__.__name__}: {exc.strerror or exc}")
            raise StoreError(folder, f"cannot write a run here ({reason})", fix) from None
        need = _min_free_bytes() if need_bytes is None else need_bytes
        free = shutil.disk_usage(folder).free
        if free < need:
            raise StoreError(folder, f"only {free / 2**20:.0f} MiB free, at least {need / 2**20:.0f} MiB needed "
                             "to store a run", f"free disk space, or set {MIN_FREE_ENV} lower if runs are small")

    def save(
        self,
        *,
        experiment: str,
        profile: str,
        key: str,
        config: Any,
        output: Output,
        code_version: str,
        source_hash: str,
        data_fingerprint: str,
        env: dict[str, Any],
        wall_seconds: float,
        replace: bool = False,
        source_digests: dict[str, str] | None = None,
    ) -> Run:
        """Write a run atomically; an existing run with the same key is kept unless ``replace``."""
        final = self.run_dir(profile, experiment, key)
        if not replace and (path := self.recover(profile, experiment, key)) is not None:
            return Run(path)
        for name, rows in output.tables.items():
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"table name {name!r} must be letters, digits, '_' or '-'")
        if "records" in output.tables:
            ids = [row.get("id") for row in output.tables["records"]]
            if any(i is None for i in ids) or len(set(map(str, ids))) != len(ids):
                raise ValueError(f"{experiment}: every record needs a unique, stable 'id'")
        meta = {
            "experiment": experiment,
            "profile": profile,
            "key": key,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(float(wall_seconds), 3),
            "code_version": code_version,
            "source_hash": source_hash,
            "source_digests": source_digests or {},
            "data_fingerprint": data_fingerprint,
            "config": to_jsonable(config),
            "env": to_jsonable(env),
            "metrics": to_jsonable(output.metrics),
            "store_format": STORE_FORMAT,
        }
        # serialise first: a bad value fails here, before anything touches the disk
        try:
            files = self._serialise(output, meta)
        except (TypeError, ValueError) as exc:
            kept = _pickle_rescue(output, experiment, key)
            raise type(exc)(f"{experiment}: the computed output cannot be stored ({exc}); {kept}") from exc
        lock = self.lock(profile, experiment, key)
        try:
            lock.acquire(wait=True, on_wait=lambda who: print(
                f"result store: waiting for {who} to finish saving {experiment} [{profile}] {key}", file=sys.stderr))
        except OSError as exc:
            return self._rescue(final, files, exc)
        try:
            return self._install(final, key, files, replace)
        except OSError as exc:
            return self._rescue(final, files, exc)
        finally:
            lock.release()

    @staticmethod
    def _serialise(output: Output, meta: dict[str, Any]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for name, rows in output.tables.items():
            files[f"{name}.jsonl"] = "".join(json.dumps(to_jsonable(row), sort_keys=True, allow_nan=False) + "\n"
                                             for row in rows).encode()
        if output.arrays:
            import io

            arrays = {k: np.asarray(v) for k, v in output.arrays.items()}
            for name, value in arrays.items():
                if value.dtype.hasobject:  # would be pickled, and unreadable with allow_pickle=False
                    raise ValueError(f"array {name!r} has dtype object; store numbers or fixed-width strings")
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            files[ARRAYS_FILE] = buffer.getvalue()
        for name, data in output.web.items():
            if not _WEB_NAME.match(name):
                raise ValueError(f"web file name {name!r} must be letters, digits, '_', '-' or '.' (no folders)")
            if not isinstance(data, (bytes, bytearray)):
                raise ValueError(f"web file {name!r} holds {type(data).__name__}, not bytes")
            files[f"{WEB_DIR}/{name}"] = bytes(data)
        files[RUN_FILE] = (json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()
        return files

    def _install(self, final: Path, key: str, files: dict[str, bytes], replace: bool) -> Run:
        if not replace and (final / RUN_FILE).exists():
            return Run(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.staging.{os.getpid()}.", dir=final.parent))
        try:
            self._write_run(staging, files)
            os.chmod(staging, 0o755)
            _fault_point("staged")
            if final.exists():
                old = final.with_name(f".{key}.old.{time.time_ns()}")
                os.replace(final, old)
                _fault_point("old-moved")  # the window: only the old copy exists (load() restores it)
                os.replace(staging, final)
                _fsync_dir(final.parent)
                _fault_point("installed")
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, final)
                _fsync_dir(final.parent)
                _fault_point("installed")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Run(final)

    @staticmethod
    def _write_run(folder: Path, files: dict[str, bytes]) -> None:
        """Tables and arrays first, then run.json, then checksums.sha256 (which marks it complete)."""
        sums = {}
        if any(name.startswith(WEB_DIR + "/") for name in files):
            (folder / WEB_DIR).mkdir(exist_ok=True)
        for name, data in files.items():
            if name not in (RUN_FILE, ARRAYS_FILE):
                sums[name] = _write_file(folder / name, data)
        _fault_point("staged-tables")
        if ARRAYS_FILE in files:
            sums[ARRAYS_FILE] = _write_file(folder / ARRAYS_FILE, files[ARRAYS_FILE])
        _fault_point("staged-arrays")
        sums[RUN_FILE] = _write_file(folder / RUN_FILE, files[RUN_FILE])
        _fault_point("staged-meta")
        _write_checksums(folder, sums)
        _fsync_dir(folder)

    def _rescue(self, final: Path, files: dict[str, bytes], exc: OSError) -> Run:
        """A save failed on the disk: keep the computed run in the system temp folder, say where."""
        reason = _DISK_ERRNOS.get(exc.errno, f"{exc.__class__.__name__}: {exc.strerror or exc}")
        try:
            rescue = Path(tempfile.mkdtemp(prefix=f"analysis-rescue-{final.parent.name}-{final.name}-"))
            self._write_run(rescue, files)
            kept = f"the finished run was written to {rescue}; move that folder to {final} once fixed"
        except OSError:
            kept = "the finished run could not be kept anywhere"
        raise StoreError(final, f"cannot save the run ({reason}); {kept}",
                         f"free space or make {self.root} writable (ANALYSIS_RESULTS_DIR moves it)") from None

    # --- migration ----------------------------------------------------------------------------

    def seal_legacy(self, profile: str | None = None, show=None) -> list[Path]:
        """Write ``checksums.sha256`` into runs saved before checksums existed (files untouched).

        Each run is parsed first (``run.json``, every table, the arrays): a damaged legacy run is
        reported, never sealed. Returns the folders sealed.
        """
        sealed = []
        for exp_dir in sorted(self.root.glob(f"{profile or '*'}/*")):
            if exp_dir.name.startswith(".") or exp_dir.parent.name.startswith(".") or not exp_dir.is_dir():
                continue
            for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if (run_dir / CHECKSUM_FILE).exists() or not (run_dir / RUN_FILE).exists():
                    continue
                Run(run_dir, unsealed_ok=True).verify()
                sums = {p.relative_to(run_dir).as_posix(): sha256_file(p) for p in sorted(run_dir.rglob("*"))
                        if p.is_file()}
                if show is not None:
                    show(run_dir, sums)
                _write_checksums(run_dir, sums)
                sealed.append(run_dir)
        return sealed

    def mark_format(self, profile: str | None = None) -> list[Path]:
        """Add ``store_format`` to the ``run.json`` of sealed runs that lack it (saved between the
        checksums and the marker), after verifying every file; the checksum list gets run.json's new
        sha256. A run that says its format cannot lose its checksum file unnoticed. Returns the folders."""
        marked = []
        for run in self.runs(profile):
            if "store_format" in run.meta or run.checksums is None:
                continue
            run.verify()
            meta = dict(run.meta, store_format=STORE_FORMAT)
            data = (json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()
            sums = dict(run.checksums, **{RUN_FILE: _sha256_bytes(data)})
            # a one-time migration of committed runs (git holds the old bytes): two writes, each atomic
            _write_file(run.path / (RUN_FILE + ".tmp"), data)
            os.replace(run.path / (RUN_FILE + ".tmp"), run.path / RUN_FILE)
            _write_file(run.path / (CHECKSUM_FILE + ".tmp"), "".join(f"{sums[n]}  {n}\n" for n in sorted(sums)).encode())
            os.replace(run.path / (CHECKSUM_FILE + ".tmp"), run.path / CHECKSUM_FILE)
            marked.append(run.path)
        return marked
