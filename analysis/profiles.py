"""Quarto project profiles, as the package sees them.

Quarto sets ``QUARTO_PROFILE`` (comma-separated, e.g. ``"full,latex"``) in the kernel during a
render; the CLI sets it from ``--profile``. Exactly one of the experiment profiles below may be
active; other names (output variants such as ``latex``) are ignored here.
"""

from __future__ import annotations

import os

from .errors import ConfigError

PROFILES = ("offline", "full", "smoke")
DEFAULT_PROFILE = "offline"  # matches `profile: default:` in _quarto.yml
PROFILE_ENV = "QUARTO_PROFILE"

DESCRIPTIONS = {
    "offline": "no network, CPU is enough: real pretrained models shipped by PyPI packages, local data",
    "full": "the assignment's models (SAM ViT-H, bert-base-uncased, gpt2, flan-t5-base) and hub data; GPU advised",
    "smoke": "tests and CI: the small offline models on a handful of items; numbers mean nothing",
}


def active_profile(explicit: str | None = None) -> str:
    """The experiment profile in force: ``explicit``, else from ``$QUARTO_PROFILE``, else the default."""
    raw = explicit if explicit is not None else os.environ.get(PROFILE_ENV, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    known = [n for n in names if n in PROFILES]
    if explicit is not None and not known:
        raise ConfigError(f"unknown profile {explicit!r}; choose one of {', '.join(PROFILES)}")
    if len(set(known)) > 1:
        raise ConfigError(
            f"{PROFILE_ENV}={raw!r} activates several experiment profiles {known}; "
            f"activate exactly one of {', '.join(PROFILES)}"
        )
    return known[0] if known else DEFAULT_PROFILE


def pick(configs: dict, profile: str | None = None):
    """``configs[profile]`` for the active profile, with a clear error for a missing entry."""
    name = active_profile(profile)
    try:
        return configs[name]
    except KeyError:
        raise ConfigError(f"no configuration for profile {name!r}; known: {sorted(configs)}") from None
