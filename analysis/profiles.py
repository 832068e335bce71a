"""Quarto project profiles, as the package sees them.

Quarto sets ``QUARTO_PROFILE`` (comma-separated, e.g. ``"full,latex"``) in the kernel during a
render; the CLI sets it from ``--profile``. Exactly one of the experiment profiles ``PROFILES`` may
be active. Other Quarto profiles (output variants that pick no experiments) must be declared in
``EXTRA_PROFILES``: every other name is an error, so a typo (``smok``, ``Smoke``) never silently
means ``offline``.
"""

from __future__ import annotations

import difflib
import os

from .errors import ConfigError

PROFILES = ("offline", "full", "smoke")
DEFAULT_PROFILE = "offline"  # matches `profile: default:` in _quarto.yml
PROFILE_ENV = "QUARTO_PROFILE"

# Quarto profiles that choose no experiment configuration (declared here, the one place).
EXTRA_PROFILES = {
    "latex": "an output variant (PDF through LaTeX); combine with an experiment profile, e.g. full,latex",
}

DESCRIPTIONS = {
    "offline": "no network, CPU is enough: real pretrained models shipped by PyPI packages, local data",
    "full": "the assignment's models (SAM ViT-H, bert-base-uncased, gpt2, flan-t5-base) and hub data; GPU advised",
    "smoke": "tests and CI: the small offline models on a handful of items; numbers mean nothing",
}


def _unknown(name: str, source: str) -> ConfigError:
    known = (*PROFILES, *EXTRA_PROFILES)
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(
        f"unknown profile {name!r} (from {source}); {hint}experiment profiles are {', '.join(PROFILES)}"
        f"{'; other declared Quarto profiles: ' + ', '.join(EXTRA_PROFILES) if EXTRA_PROFILES else ''} "
        "(a new Quarto profile must be added to EXTRA_PROFILES in analysis/profiles.py)"
    )


def active_profile(explicit: str | None = None) -> str:
    """The experiment profile in force: ``explicit``, else from ``$QUARTO_PROFILE``, else the default.

    Unknown names are an error, whether given explicitly or through ``$QUARTO_PROFILE``.
    """
    if explicit is not None:
        if explicit not in PROFILES:
            raise _unknown(explicit, "the explicit profile argument")
        return explicit
    raw = os.environ.get(PROFILE_ENV, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in PROFILES and name not in EXTRA_PROFILES:
            raise _unknown(name, f"{PROFILE_ENV}={raw!r}")
    known = list(dict.fromkeys(n for n in names if n in PROFILES))
    if len(known) > 1:
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
