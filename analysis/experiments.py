"""Experiment registry and ``get_or_run``: the one entry point chapters and the CLI use.

An experiment is a named computation with one frozen config dataclass per profile. Its modules
register it on import; ``EXPERIMENT_MODULES`` lists them so the CLI can find them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .envinfo import run_environment
from .errors import AnalysisError, ConfigError, ResultMissing
from .profiles import active_profile
from .store import Output, Run, Store, run_key

# Modules that define experiments (each calls ``register`` at import).
EXPERIMENT_MODULES: tuple[str, ...] = (
    "analysis.sam.experiments",
    "analysis.bert.experiments",
    "analysis.cot.experiments",
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named computation.

    ``configs`` maps each profile to its frozen config; ``compute(config) -> Output`` does the work;
    ``code_version`` is bumped by hand whenever a change alters results (stored runs of the old
    version then stop matching); ``data_fingerprint(config)`` identifies the input data;
    ``models(config)`` names the registry models the run uses and ``data_description(config)`` says
    which data it reads (both for the preface's environment table).
    """

    name: str
    title: str
    chapter: str
    configs: Mapping[str, Any]
    compute: Callable[[Any], Output]
    code_version: str
    data_fingerprint: Callable[[Any], str]
    models: Callable[[Any], list[str]] = lambda config: []
    data_description: Callable[[Any], str] = lambda config: ""
    source_modules: tuple[str, ...] = ()
    cost: Mapping[str, str] = dataclasses.field(default_factory=dict)  # profile -> rough cost, for messages

    def config(self, profile: str | None = None) -> Any:
        name = active_profile(profile)
        if name not in self.configs:
            raise ConfigError(f"experiment {self.name!r} has no config for profile {name!r}")
        return self.configs[name]

    def modules(self) -> list[str]:
        """The modules whose code computes this experiment's results."""
        return sorted({self.compute.__module__, *self.source_modules})

    def source_hash(self) -> str:
        """Hash of the source files that compute results, as text (recorded by every run; older runs
        recorded only this)."""
        return legacy_source_hash(_module_source(m) for m in self.modules())

    def source_digests(self) -> dict[str, str]:
        """Per module, a digest of its code without comments and docstrings (recorded by every run,
        to name the modules whose code changed since; ``code_changes``)."""
        return {m: code_digest(_module_source(m)) for m in self.modules()}

    def key(self, config: Any, profile: str) -> str:
        return run_key(self.name, profile, config, self.code_version, self.data_fingerprint(config))


def _module_source(name: str) -> str:
    """A module's source text ("" for code without a source file, e.g. given with ``python -c``)."""
    try:
        return inspect.getsource(importlib.import_module(name))
    except (TypeError, OSError):
        return ""


def legacy_source_hash(texts) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def code_digest(source: str) -> str:
    """Digest of a module's code: its syntax tree without docstrings, so that comments, docstrings
    and formatting do not count as a change."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()[:16]


def _module_path(module: str) -> str:
    return module.replace(".", "/") + ".py"


def _recorded_digests_from_git(experiment: "Experiment", recorded_hash: str) -> dict[str, str] | None:
    """For a run recorded before per-module digests: the digests of the code it was computed with,
    found in git history as the commit whose module texts hash to the run's ``source_hash``."""
    import subprocess

    from .paths import PROJECT_ROOT

    paths = [_module_path(m) for m in experiment.modules()]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commits = git("log", "--format=%H", "--", *paths)
    for commit in (commits or "").split():
        texts = [git("show", f"{commit}:{p}") for p in paths]
        if any(t is None for t in texts):
            continue
        if legacy_source_hash(texts) == recorded_hash:
            return {m: code_digest(t) for m, t in zip(experiment.modules(), texts)}
    return None


def code_changes(experiment: "Experiment", run: Run) -> list[str] | None:
    """The modules whose code changed since ``run`` was computed ([] when none; comments and
    docstrings do not count), or None when the run's code cannot be found (an old run whose code is in
    no commit)."""
    now = experiment.source_digests()
    recorded = run.meta.get("source_digests") or None
    if recorded is None:
        if run.meta.get("source_hash") == experiment.source_hash():
            return []
        recorded = _recorded_digests_from_git(experiment, run.meta.get("source_hash", ""))
        if recorded is None:
            return None
    return sorted(_module_path(m) for m in set(now) | set(recorded) if now.get(m) != recorded.get(m))


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    for profile, config in experiment.configs.items():
        if not (dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen):
            raise TypeError(f"{experiment.name}/{profile}: configs must be frozen dataclasses")
    _REGISTRY[experiment.name] = experiment
    return experiment


def load_all() -> dict[str, Experiment]:
    """Import every experiment module and return the book's experiments (name -> Experiment):
    those the package defines. Experiments registered elsewhere (tests' toy experiments) stay
    reachable by ``get`` but are not the book's."""
    for module_name in EXPERIMENT_MODULES:
        importlib.import_module(module_name)
    return {name: exp for name, exp in _REGISTRY.items() if exp.compute.__module__.split(".")[0] == "analysis"}


def get(name: str) -> Experiment:
    if name not in _REGISTRY:
        load_all()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _experiment_for_config(config: Any) -> Experiment:
    if not _REGISTRY:
        load_all()
    for experiment in _REGISTRY.values():
        if any(type(c) is type(config) for c in experiment.configs.values()):
            return experiment
    raise ConfigError(f"no registered experiment takes a {type(config).__name__}")


def in_render() -> bool:
    """True while Quarto executes a chapter (Quarto sets ``QUARTO_EXECUTE_INFO``; the book check
    does not): runs are then read from the store and never computed."""
    return bool(os.environ.get("QUARTO_EXECUTE_INFO"))


def compute_command(name: str, profile: str) -> str:
    """How to compute a missing run of ``name`` under ``profile`` (outside Quarto)."""
    if profile == "full":
        return (f"compute the full profile on a GPU with notebooks/colab_full.ipynb and unpack its results archive "
                f"here, or run `python -m analysis run {name} --profile full` on a GPU machine with internet")
    return f"python -m analysis run {name} --profile {profile}"


def stored_with_recorded_fingerprint(store: Store, experiment: Experiment, config: Any, profile: str) -> Run | None:
    """The stored run of this config and code version whose key matches the data fingerprint it
    recorded: what a render uses when the data files are not at hand (a teammate without the data
    folder). None when no stored run fits."""
    for run in reversed(store.runs(profile, experiment.name)):
        fingerprint = run.meta.get("data_fingerprint")
        if fingerprint and run.key == run_key(experiment.name, profile, config, experiment.code_version, fingerprint):
            return run.check_key()
    return None


def resolve(experiment: Experiment, config: Any, profile: str, store: Store) -> tuple[str, str, Run | None]:
    """``(key, data fingerprint, stored run or None)`` for a config.

    The fingerprint is computed from the data files (which validates them). When they cannot be read,
    a stored run that recorded its fingerprint stands in: results need no data to be shown. Without
    such a run, the data error stands.
    """
    try:
        fingerprint = experiment.data_fingerprint(config)  # loaders validate before they hash
    except AnalysisError:
        run = stored_with_recorded_fingerprint(store, experiment, config, profile)
        if run is None:
            raise
        return run.key, run.meta["data_fingerprint"], run
    key = run_key(experiment.name, profile, config, experiment.code_version, fingerprint)
    run = store.load(profile, experiment.name, key)
    return key, fingerprint, run.check_key() if run is not None else None


def get_or_run(
    target: str | Any,
    profile: str | None = None,
    *,
    force: bool = False,
    store: Store | None = None,
) -> Run:
    """The stored run for ``target`` (an experiment name or a config), computing it if missing.

    With a name, the active profile's config is used. ``force`` recomputes and replaces the run.
    While Quarto renders (``in_render``), nothing is computed: a missing run raises
    :class:`ResultMissing` with the command that computes it. Before computing: the data
    fingerprint (which validates the data) and a writable store with free space are checked, and the
    key's lock is taken, so a second process asking for the same run waits for the first and then
    reuses its result.
    """
    profile = active_profile(profile)
    if isinstance(target, str):
        experiment = get(target)
        config = experiment.config(profile)
    else:
        experiment, config = _experiment_for_config(target), target
    store = store or Store()
    if force:  # the stored run (even a damaged one) is not read: it is replaced; the data must be at hand
        fingerprint = experiment.data_fingerprint(config)
        key = run_key(experiment.name, profile, config, experiment.code_version, fingerprint)
    else:
        key, fingerprint, run = resolve(experiment, config, profile, store)
        if run is not None:
            return run.verify()  # every file against its checksum: a damaged run is an error, never reused
    if in_render():
        raise ResultMissing(experiment.name, profile, key, compute_command(experiment.name, profile))
    store.check_writable(profile, experiment.name)
    lock = store.lock(profile, experiment.name, key)
    lock.acquire(wait=True, on_wait=lambda who: print(
        f"{experiment.name} [{profile}] {key}: {who} is computing this run; waiting for it", file=sys.stderr))
    try:
        if lock.waited and not force and (run := store.load(profile, experiment.name, key)) is not None:
            return run.verify()
        started = time.perf_counter()
        output = experiment.compute(config)
        wall = time.perf_counter() - started
        if experiment.data_fingerprint(config) != fingerprint:  # cheap: hashes are memoised on size+mtime
            raise ConfigError(
                f"{experiment.name} [{profile}]: the input data changed while the run computed (fingerprint "
                f"{fingerprint} before, another after), so the result cannot be stored under either key "
                "(fix: leave the data directory alone during a run and run it again)")
        return store.save(
            experiment=experiment.name,
            profile=profile,
            key=key,
            config=config,
            output=output,
            code_version=experiment.code_version,
            source_hash=experiment.source_hash(),
            source_digests=experiment.source_digests(),
            data_fingerprint=fingerprint,
            env=run_environment(config),
            wall_seconds=wall,
            replace=force,
        )
    finally:
        lock.release()


def lookup(name: str, profile: str | None = None, store: Store | None = None) -> Run | None:
    """The stored run for the profile's config, or None (never computes)."""
    profile = active_profile(profile)
    experiment = get(name)
    return resolve(experiment, experiment.config(profile), profile, store or Store())[2]
