"""Content-addressed result store.

A run lives in ``results/<profile>/<experiment>/<key>/`` where ``key`` hashes (experiment, profile,
config, code version, data fingerprint). It holds

- ``run.json``: experiment, profile, key, created, wall seconds, config, code version, source hash,
  data fingerprint, environment (versions, device, seed) and metrics;
- ``<table>.jsonl``: per-item records (``records.jsonl``, one row per item with a stable ``id``) and
  any further named tables;
- ``arrays.npz``: small arrays a chapter plots (attention maps, example masks).

Writes are atomic (a temporary folder renamed into place), an existing run is never replaced unless
asked, and runs of different profiles live in different folders, so a smoke run cannot overwrite
an offline or full one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .paths import results_dir

RUN_FILE = "run.json"
ARRAYS_FILE = "arrays.npz"
KEY_LENGTH = 16


@dataclasses.dataclass
class Output:
    """What an experiment's compute function returns.

    ``tables["records"]`` is the per-item table (each row a dict with a stable ``"id"``);
    other tables are free-form (curves, summaries). ``arrays`` holds small numpy arrays.
    """

    metrics: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised on (path, size, mtime) for cheap re-renders."""
    path = Path(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[memo] = digest.hexdigest()
    return _FILE_HASHES[memo]


def fingerprint_files(paths: Iterable[Path]) -> str:
    """A data fingerprint from file contents (names do not matter, bytes do)."""
    parts = sorted(file_sha256(Path(p)) for p in paths)
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:KEY_LENGTH]


class Run:
    """A stored run, loaded lazily: ``metrics`` and ``config`` from ``run.json``, tables on demand."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads((self.path / RUN_FILE).read_text())

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

    def table_names(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.jsonl"))

    def rows(self, name: str = "records") -> list[dict[str, Any]]:
        """A stored table as a list of dicts."""
        path = self.path / f"{name}.jsonl"
        if not path.exists():
            raise KeyError(f"run {self.key} has no table {name!r}; it has {self.table_names()}")
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def table(self, name: str = "records"):
        """A stored table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows(name))

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        path = self.path / ARRAYS_FILE
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}


class Store:
    """The result store rooted at ``root`` (default: ``results/``)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else results_dir()

    def run_dir(self, profile: str, experiment: str, key: str) -> Path:
        return self.root / profile / experiment / key

    def load(self, profile: str, experiment: str, key: str) -> Run | None:
        path = self.run_dir(profile, experiment, key)
        return Run(path) if (path / RUN_FILE).exists() else None

    def runs(self, profile: str | None = None, experiment: str | None = None) -> list[Run]:
        """Every stored run, oldest first."""
        pattern = f"{profile or '*'}/{experiment or '*'}/*/{RUN_FILE}"
        found = [Run(p.parent) for p in self.root.glob(pattern)]
        return sorted(found, key=lambda r: r.created)

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
    ) -> Run:
        """Write a run atomically; an existing run with the same key is kept unless ``replace``."""
        final = self.run_dir(profile, experiment, key)
        if (final / RUN_FILE).exists() and not replace:
            return Run(final)
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
            "data_fingerprint": data_fingerprint,
            "config": to_jsonable(config),
            "env": to_jsonable(env),
            "metrics": to_jsonable(output.metrics),
        }
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            for name, rows in output.tables.items():
                with open(staging / f"{name}.jsonl", "w") as fh:
                    for row in rows:
                        fh.write(json.dumps(to_jsonable(row), sort_keys=True) + "\n")
            if output.arrays:
                np.savez_compressed(staging / ARRAYS_FILE, **{k: np.asarray(v) for k, v in output.arrays.items()})
            # run.json last: a folder without it is never mistaken for a finished run
            (staging / RUN_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
            os.chmod(staging, 0o755)
            if final.exists():
                trash = final.with_name(f".{key}.old.{time.time_ns()}")
                os.replace(final, trash)
                os.replace(staging, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Run(final)
