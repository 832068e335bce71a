"""Tables for the preface: profiles, stored runs, models, data and packages (all produced, not typed)."""

from __future__ import annotations

import pandas as pd

from . import experiments
from .envinfo import device_description, models_table, packages_table
from .profiles import DESCRIPTIONS, PROFILES, active_profile
from .store import Store

__all__ = ["profiles_table", "runs_table", "models_table", "packages_table", "device_description",
           "total_minutes"]


def profiles_table() -> pd.DataFrame:
    active = active_profile()
    return pd.DataFrame([{"Profile": f"**{p}**" if p == active else p, "What it runs": DESCRIPTIONS[p]}
                         for p in PROFILES])


def runs_table(profile: str | None = None) -> pd.DataFrame:
    """The runs this render shows: experiment, key, when, how long, on which device."""
    profile = active_profile(profile)
    store, rows = Store(), []
    for name, exp in sorted(experiments.load_all().items()):
        if profile not in exp.configs:
            continue
        run = experiments.lookup(name, profile, store)
        rows.append({
            "Experiment": name,
            "Chapter": exp.chapter,
            "Run key": run.key if run else "not computed yet",
            "Computed": run.created[:16].replace("T", " ") if run else "",
            "Minutes": round(run.wall_seconds / 60, 1) if run else float("nan"),
            "Device": run.env.get("device", "") if run else "",
        })
    return pd.DataFrame(rows)


def total_minutes(profile: str | None = None) -> float:
    """Wall-clock minutes the profile's stored runs took to compute (what a cold render costs)."""
    table = runs_table(profile)
    return float(table["Minutes"].fillna(0).sum()) if len(table) else 0.0
