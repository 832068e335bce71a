"""Errors that tell the user which file is wrong, what is wrong with it and how to fix it.

Every message is one line, ``<file or name>: <problem> (fix: <fix>)``; the CLI prints it without a
traceback and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class AnalysisError(RuntimeError):
    """Base class: a problem the user can fix (data, models, configuration, result store)."""


class DataError(AnalysisError, ValueError):
    """A data file is missing or malformed."""

    def __init__(self, path: Path | str, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), _one_line(problem), _one_line(fix)
        super().__init__(f"{path}: {self.problem} (fix: {self.fix})")


class ModelUnavailable(AnalysisError):
    """A model's weights cannot be found, downloaded or verified."""

    def __init__(self, name: str, problem: str, fix: str):
        self.name, self.problem, self.fix = name, _one_line(problem), _one_line(fix)
        super().__init__(f"model {name!r}: {self.problem} (fix: {self.fix})")


class StoreError(AnalysisError):
    """A stored run (or the store's folder) is damaged, locked, read-only or out of space."""

    def __init__(self, path: Path | str, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), _one_line(problem), _one_line(fix)
        super().__init__(f"{path}: {self.problem} (fix: {self.fix})")


class ConfigError(AnalysisError, ValueError):
    """A profile or experiment configuration that cannot work."""


class ResultMissing(AnalysisError):
    """A chapter asked for a run that is not stored, while Quarto renders (renders never compute)."""

    def __init__(self, experiment: str, profile: str, key: str, fix: str):
        self.experiment, self.profile, self.key, self.fix = experiment, profile, key, _one_line(fix)
        super().__init__(f"{experiment} [{profile}] {key}: not in the result store; a render reads results and "
                         f"never computes them (fix: {self.fix})")
