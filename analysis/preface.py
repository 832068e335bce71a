"""Values and tables of the preface and the reproducibility appendix (all produced, never typed).

The preface's words are in ``index.qmd`` and ``appendices/reproducibility.qmd``; this module
returns what differs by profile or by stored run: the cells of the deviations table, the runs,
models, profiles and package versions, and the Colab link.
"""

from __future__ import annotations

import platform
import re
from typing import NamedTuple

import pandas as pd

from . import experiments
from .envinfo import device_description, device_text, package_versions
from .freeze import record_environment
from .repo import NOTEBOOK, colab_url
from .models import spec
from .profiles import DESCRIPTIONS, PROFILES, active_profile
from .store import Run, Store

__all__ = ["profiles_table", "runs_table", "models_table", "packages_table", "device_description",
           "total_minutes", "deviations", "Deviation", "colab_url", "NOTEBOOK"]


# Task 3.3's Trainer settings as the assignment states them (../shared/ASSIGNMENT.md).
ASSIGNMENT_TRAINER = {"epochs": 3, "batch_size": 16, "learning_rate": 2e-5}
# Source flags of the public lung-field copy's images (Montgomery County, Shenzhen) in a run's records.
PUBLIC_LUNG_SOURCES = {"MCU", "CHN"}


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
            "Ch.": chapter_number(exp.chapter),
            "Run key": run.key if run else "not computed yet",
            "Computed (UTC)": run.created[:10] if run else "",
            "Minutes": round(run.wall_seconds / 60, 1) if run else float("nan"),
            "Device": device_text(run.env.get("device", "")) if run else "",
        })
    return pd.DataFrame(rows)


def chapter_number(path: str) -> str:
    """"chapters/03-bert-attention.qmd" -> "3" (the chapter's number in the book)."""
    match = re.match(r"(?:.*/)?0*(\d+)-", path)
    return match.group(1) if match else path


def total_minutes(profile: str | None = None) -> float:
    """Wall-clock minutes the profile's stored runs took to compute (what a cold render costs)."""
    table = runs_table(profile)
    return float(table["Minutes"].fillna(0).sum()) if len(table) else 0.0


def models_table(profile: str | None = None) -> pd.DataFrame:
    """One row per model the profile's experiments use: chapter, name, where the weights come from, data."""
    profile = active_profile(profile)
    rows = []
    for exp in experiments.load_all().values():
        if profile not in exp.configs:
            continue
        for name in exp.models(exp.configs[profile]):
            model = spec(name)
            rows.append({"Ch.": chapter_number(exp.chapter), "Model": model.title,
                         "Weights from": model.source,
                         "Data": exp.data_description(exp.configs[profile])})
    return pd.DataFrame(rows).drop_duplicates(subset=["Ch.", "Model"]).sort_values("Ch.", kind="stable")


def packages_table(profile: str | None = None) -> pd.DataFrame:
    """Python and the versions of the packages that compute results (envinfo.PACKAGES), with the
    packages the profile's models need (``ModelSpec.packages``)."""
    profile = active_profile(profile)
    model_packages = dict.fromkeys(pkg for exp in experiments.load_all().values() if profile in exp.configs
                                   for m in exp.models(exp.configs[profile]) for pkg in spec(m).packages)
    versions = {"python": platform.python_version(), **package_versions(), **package_versions(tuple(model_packages))}
    record_environment(versions)  # a frozen page showing them executes again in another environment
    return pd.DataFrame([{"Package": k, "Version": v or "not installed"} for k, v in versions.items()])


# --- the deviations table (index.qmd writes its rows; these are its per-profile cells) -----------


class Deviation(NamedTuple):
    """One row's profile-dependent cells: what this render used, and whether it is the assignment's."""

    used: str
    same: str  # "yes", "no", or a short qualifier ("allowed", "same model, in code")


def deviations(profile: str | None = None, store: Store | None = None) -> dict[str, Deviation]:
    """The deviations table's cells by row: ``demo`` (task 1.2), ``sam`` (2.1-2.2), ``lung`` (2.2),
    ``encoder`` (3.3-3.5), ``trainer`` (3.3), ``fewshot`` (3, few-shot), ``agnews`` (3.1-3.2),
    ``cot`` (4.1), ``scienceqa`` (4.2). Read from the profile's configurations, the model registry
    and the stored runs (which lung file, how many training rows)."""
    profile = active_profile(profile)
    store = store or Store()
    cfg = {name: exp.configs.get(profile) for name, exp in experiments.load_all().items()}
    sam_a, sam_p = spec(cfg["sam_auto"].model), spec(cfg["sam_prompts"].model)
    ft, fs, cot = cfg["bert_finetune"], cfg["bert_fewshot"], cfg["cot_scienceqa"]
    encoder, fewshot, cot_model = spec(ft.model), spec(fs.model), spec(cot.model)

    lung_sources = _lung_sources(experiments.lookup("sam_prompts", profile, store))
    ft_run = experiments.lookup("bert_finetune", profile, store)
    rows = ft.limit_train if ft.limit_train is not None else (
        ft_run.metrics["n_train"] + ft_run.metrics["n_validation"] if ft_run else None)
    trainer_same = (ft.epochs == ASSIGNMENT_TRAINER["epochs"] and ft.batch_size == ASSIGNMENT_TRAINER["batch_size"]
                    and ft.learning_rate == ASSIGNMENT_TRAINER["learning_rate"] and ft.limit_train is None)
    trainer = (f"{_num(ft.epochs)} epoch{'' if ft.epochs == 1 else 's'}, batch {ft.batch_size}, "
               f"learning rate {_num(ft.learning_rate)}, "
               f"{'all' if rows is None else f'{rows:,}'} training rows ({ft.n_validation:,} held out)")
    return {
        "demo": Deviation(f"the three modes in code, {sam_a.display}, "
                          f"{cfg['sam_auto'].points_per_side} x {cfg['sam_auto'].points_per_side} point grid",
                          "same model, in code" if sam_a.assignment else "no"),
        "sam": Deviation(sam_p.display, _yes(sam_p.assignment)),
        "lung": Deviation(*(("not computed yet", "?") if lung_sources is None else
                            ("Montgomery + Shenzhen (public copy)", "no") if lung_sources and lung_sources <= PUBLIC_LUNG_SOURCES
                            else ("the course's file", "yes"))),
        "encoder": Deviation(encoder.display, _yes(encoder.assignment)),
        "trainer": Deviation(trainer, _yes(trainer_same)),
        "fewshot": Deviation(fewshot.display, _yes(fewshot.assignment)),
        "agnews": Deviation(_source(ft.source), _yes(ft.source == "hub")),
        "cot": Deviation(cot_model.display,
                         "yes" if cot_model.assignment else "allowed" if cot_model.chat else "no"),
        "scienceqa": Deviation(_source(cot.source), _yes(cot.source == "hub")),
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _source(source: str) -> str:
    """A config's data source ("hub" | "local") as a table cell."""
    return "the hub" if source == "hub" else "a local copy"


def _lung_sources(run: Run | None) -> set[str] | None:
    """The per-image source flags the SAM prompt run stored (its ``records`` table), or None."""
    if run is None:
        return None
    return set(run.table("records")["source"].astype(str))


def _num(x: float) -> str:
    """1.0 -> "1", 2e-05 -> "2e-5"."""
    text = f"{x:g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


# the Colab link: ``colab_url`` and ``NOTEBOOK`` come from analysis.repo (the git remote), imported above

