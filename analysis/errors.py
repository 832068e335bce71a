"""Errors that tell the user which file is wrong, what is wrong with it and how to fix it."""

from __future__ import annotations

from pathlib import Path


class AnalysisError(RuntimeError):
    """Base class: a problem the user can fix (data, models, configuration)."""


class DataError(AnalysisError, ValueError):
    """A data file is missing or malformed."""

    def __init__(self, path: Path | str, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}\n  fix: {fix}")


class ModelUnavailable(AnalysisError):
    """A model's weights cannot be found, downloaded or verified."""

    def __init__(self, name: str, problem: str, fix: str):
        self.name, self.problem, self.fix = name, problem, fix
        super().__init__(f"model {name!r}: {problem}\n  fix: {fix}")


class ConfigError(AnalysisError, ValueError):
    """A profile or experiment configuration that cannot work."""
