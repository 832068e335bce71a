"""Where things live: data (read-only input), results (committed), caches and artifacts (ignored).

Every location can be moved with an environment variable, so CI, tests and users on Colab can
point the package elsewhere without editing code.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR_ENV = "ANALYSIS_DATA_DIR"
RESULTS_DIR_ENV = "ANALYSIS_RESULTS_DIR"
CACHE_DIR_ENV = "ANALYSIS_CACHE_DIR"
ARTIFACTS_DIR_ENV = "ANALYSIS_ARTIFACTS_DIR"
STANDINS_ENV = "ANALYSIS_MODEL_STANDINS"  # local models in place of hub ids and SAM checkpoints (analysis.models)


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser().resolve() if value else None


def data_dir() -> Path:
    """The data directory: ``$ANALYSIS_DATA_DIR``, else ``./data``, else ``../shared/data``.

    ``../shared/data`` is where this project's development machines keep their read-only copies;
    a student group puts (or downloads) files into ``./data`` instead.
    """
    explicit = _env_path(DATA_DIR_ENV)
    if explicit is not None:
        return explicit
    for candidate in (PROJECT_ROOT / "data", PROJECT_ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return PROJECT_ROOT / "data"


def results_dir() -> Path:
    """The result store's root (``results/``, committed for the offline and full profiles)."""
    return _env_path(RESULTS_DIR_ENV) or PROJECT_ROOT / "results"


def _folder(var: str, default: Path) -> Path:
    """``$var`` or ``default``, created when missing; a clear error when it cannot be a folder."""
    path = _env_path(var) or default
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder (or one above it) should be, no permission
        from .errors import ConfigError

        where = f"${var}" if _env_path(var) else "the default"
        raise ConfigError(f"{path} ({where}) cannot be used as a folder: "
                          f"{'it, or a folder above it, is a file' if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or exc}. "
                          f"Fix: set {var} to a folder you can write (or unset it for {default})") from None
    return path


def cache_dir() -> Path:
    """Recomputable caches (embeddings, raw generations, joined model files, downloads)."""
    return _folder(CACHE_DIR_ENV, PROJECT_ROOT / ".cache")


def artifacts_dir() -> Path:
    """Large outputs kept out of git (fine-tuned weights, checkpoints)."""
    return _folder(ARTIFACTS_DIR_ENV, PROJECT_ROOT / "artifacts")


def standins_dir() -> Path | None:
    """``$ANALYSIS_MODEL_STANDINS`` as a folder, or None (see ``analysis.models``)."""
    return _env_path(STANDINS_ENV)
