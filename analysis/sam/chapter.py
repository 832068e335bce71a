"""What the two SAM chapters call: runs, tables (DataFrames), figures and prose numbers.

Everything reads stored runs (``get_or_run``); nothing here computes masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..experiments import get_or_run
from ..models import ModelSpec, spec
from ..paths import PROJECT_ROOT
from ..report import Literal
from . import figures
from . import prompts as P
from .metrics import summarize

DEMO_DIR = PROJECT_ROOT / "figures" / "demo"
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg")


def prompts_run(profile: str | None = None):
    return get_or_run("sam_prompts", profile)


def auto_run(profile: str | None = None):
    return get_or_run("sam_auto", profile)


def model_spec(run) -> ModelSpec:
    """The registry entry of the model a run used (its capabilities: ``box_only``, ``points_trained``...)."""
    return spec(run.config["model"])


def model_short(run) -> str:
    """The model's name for sentences: "LiteMedSAM", "SAM ViT-H"."""
    return model_spec(run).display


def prompt_kinds(run) -> str:
    """The prompt kinds the run's decoder was trained with, for a sentence: "box", "point, box and mask"."""
    kinds = list(model_spec(run).prompts)
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]


# --- result-dependent words: each judges numbers it is given, so the verdict follows the run -------

def change(before: float, after: float, up: str = "lifts", down: str = "lowers", tol: float = 0.0005) -> str:
    """The verb for a change from ``before`` to ``after`` (equal within ``tol``: "leaves unchanged")."""
    if np.isnan(before) or np.isnan(after):
        return "changes"
    return up if after > before + tol else down if after < before - tol else "leaves unchanged"


def compare(a: float, b: float, more: str = "more", less: str = "less", same: str = "as much",
            tol: float = 0.0005) -> str:
    """``more`` if a > b, ``less`` if a < b, ``same`` when equal within ``tol``."""
    if np.isnan(a) or np.isnan(b):
        return "cannot be compared with"
    return more if a > b + tol else less if a < b - tol else same


# The bar a lung mask must clear in chapter 1's verdict (stated there): mean F1 of at least 0.9.
USABLE_F1 = 0.9


def meets(value: float, bar: float = USABLE_F1) -> str:
    """ "clears" or "misses" the bar (NaN: "cannot be judged against")."""
    if value is None or np.isnan(value):
        return "cannot be judged against"
    return "clears" if value >= bar else "misses"


def _ci(lo, hi) -> str:
    """A 95% interval as one unbreakable token, so a narrow table column wraps before it, not inside."""
    return "—" if lo is None or hi is None or np.isnan(lo) else f"[{lo:.3f}–{hi:.3f}]"


def mean_iou(run, name: str) -> float:
    """Mean IoU (Jaccard) of a strategy over images, from the stored per-image F1: IoU = F1 / (2 - F1)."""
    df = run.table("records")
    f1 = df[df["strategy"] == name]["f1"].to_numpy(dtype=float)
    return float(np.mean(f1 / (2 - f1))) if len(f1) else float("nan")


def strategy_table(run, multimask: bool = False):
    """One row per strategy: kind of prompt, oracle or not, n, mean F1 (single-mask output), std
    (ddof=1), 95% CI; with ``multimask``, also the mean F1 of the multimask output the model scores
    highest (``top score``) and of the best of its three chosen with the ground truth (``best of 3``)."""
    import pandas as pd

    s = run.table("summary")
    table = pd.DataFrame({
        "strategy": s["label"],
        "prompts from": np.where(s["oracle"], "truth", "atlas"),
        "n": s["n"], "mean F1": s["mean"], "SD": s["std"],
        "95% CI": [_ci(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
    })
    if multimask:
        table["top score"] = s["mm_top_mean"].to_numpy()
        table["best of 3"] = s["mm_oracle_mean"].to_numpy()
    return table


def best_strategy(run, oracle: bool | None = None) -> dict:
    s = run.rows("summary")
    if oracle is not None:
        s = [r for r in s if r["oracle"] == oracle]
    return max(s, key=lambda r: -1 if r["mean"] is None else r["mean"]) if s else {"label": "n/a", "mean": float("nan")}


def strategy(run, name: str) -> dict:
    return next((r for r in run.rows("summary") if r["strategy"] == name),
                {"label": name, "mean": float("nan"), "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0})


def multimask_table(run):
    """Single-mask output vs multimask (highest predicted IoU) vs oracle best of three, mean F1."""
    import pandas as pd

    s = run.table("summary")
    return pd.DataFrame({"strategy": s["label"], "single mask": s["mean"],
                         "multimask, top score": s["mm_top_mean"],
                         "multimask, best of 3": s["mm_oracle_mean"]})


def _group_label(col, value):
    if col == "source":
        return {"MCU": "Montgomery", "CHN": "Shenzhen"}.get(value, str(value))
    return {1: "tuberculosis", 0: "normal"}.get(value, "unknown")


def breakdown_table(run, strategies=("point_per_lung", "box_per_lung", "box_both", "atlas_box_per_lung")):
    """Mean F1 with 95% bootstrap CI by data source and by TB status, for a few strategies."""
    import pandas as pd

    df = run.table("records")
    strategies = [s for s in strategies if (df["strategy"] == s).any()]
    out = []
    for col in ("source", "tb"):
        for value in sorted(df[col].unique(), key=str):
            row = {}
            for s in strategies:
                g = df[(df["strategy"] == s) & (df[col] == value)]["f1"]
                summ = summarize(g.values, seed=0)
                row["group"] = f"{_group_label(col, value)} (n = {len(g)})"
                row[P.STRATEGIES[s].label] = f"{summ['mean']:.3f} {_ci(summ['ci_low'], summ['ci_high'])}"
            out.append(row)
    return pd.DataFrame(out)


def group_gap(run, strategy_name: str, col: str, a, b) -> float:
    """Mean F1 of group a minus group b (NaN if either is empty)."""
    df = run.table("records")
    d = df[df["strategy"] == strategy_name]
    ga, gb = d[d[col] == a]["f1"], d[d[col] == b]["f1"]
    return float(ga.mean() - gb.mean()) if len(ga) and len(gb) else float("nan")


def curve_summary(run):
    """Robustness curves: per level, mean F1 and 95% bootstrap CI over the curve images.

    The points curve's k=3 comes from the ``points3_neg`` strategy on the same images.
    """
    import pandas as pd

    c = run.table("curves")
    if c.empty:
        return pd.DataFrame(columns=["curve", "level", "n", "mean", "ci_low", "ci_high"])
    rec = run.table("records")
    imgs = set(c["image"])
    extra = []
    base = rec[(rec["strategy"] == "box_per_lung") & rec["image"].isin(imgs)]
    extra += [{"curve": "jitter", "level": 0.0, "image": r.image, "f1": r.f1} for r in base.itertuples()]
    p3 = rec[(rec["strategy"] == "points3_neg") & rec["image"].isin(imgs)]
    if 3 not in set(c[c["curve"] == "points"]["level"]):
        extra += [{"curve": "points", "level": 3, "image": r.image, "f1": r.f1} for r in p3.itertuples()]
    c = pd.concat([c, pd.DataFrame(extra)], ignore_index=True)
    rows = []
    for (curve, level), g in c.groupby(["curve", "level"]):
        s = summarize(g["f1"].values, seed=0)
        rows.append({"curve": curve, "level": float(level), "n": s["n"], "mean": s["mean"],
                     "ci_low": s["ci_low"], "ci_high": s["ci_high"]})
    return pd.DataFrame(rows).sort_values(["curve", "level"]).reset_index(drop=True)


def curve_value(run, curve: str, level: float) -> float:
    d = curve_summary(run)
    d = d[(d["curve"] == curve) & np.isclose(d["level"], level)]
    return float(d["mean"].iloc[0]) if len(d) else float("nan")


def auto_table(auto):
    """Automatic mode: the tuned rule vs the two oracle choices among the generator's masks."""
    import pandas as pd

    m = auto.metrics
    rows = []
    for key, label in (("f1_rule", "rule tuned on train (atlas overlap + area), union of kept masks"),
                       ("f1_oracle_best", "truth-aided: the best single mask"),
                       ("f1_oracle_union", "truth-aided: union of the masks mostly inside the lungs")):
        rows.append({"masks kept": label, "n": m["n_eval_images"], "mean F1": m[f"{key}_mean"],
                     "SD": m[f"{key}_std"], "95% CI": _ci(m[f"{key}_ci_low"], m[f"{key}_ci_high"])})
    return pd.DataFrame(rows)


def demo_table(auto):
    import pandas as pd

    d = auto.table("demo")
    return pd.DataFrame({"image": d["name"], "source": [_group_label("source", v) for v in d["source"]],
                         "status": [_group_label("tb", v) for v in d["tb"]],
                         "point F1": d["f1_point"], "box F1": d["f1_box"], "auto masks": d["n_auto_masks"],
                         "auto rule F1": d["f1_auto_rule"]})


def example(run, role: str) -> dict:
    """The row of an example image (role: example, typical, worst)."""
    ex = next((r for r in run.rows("examples") if r["role"] == role), None)
    if ex is None:
        return {"name": "n/a", "source": "n/a", "tb": -1, "f1": float("nan")}
    rec = next((r for r in run.rows("records") if r["image"] == ex["image"] and r["strategy"] == run.config["main_strategy"]), {})
    return {**ex, "name": Literal(ex["name"]),  # a file name from the data: shown as written
            "f1": rec.get("f1", float("nan")), "pred_frac": rec.get("pred_frac"), "gt_frac": rec.get("gt_frac")}


def status_label(tb: int) -> str:
    return _group_label("tb", tb)


def source_label(src: str) -> str:
    return _group_label("source", src)


def screenshot_paths() -> list[Path]:
    if not DEMO_DIR.is_dir():
        return []
    return sorted(p for p in DEMO_DIR.iterdir() if p.suffix.lower() in SCREENSHOT_SUFFIXES)


def screenshots_figure():
    """The group's demo screenshots as one figure, or None (nothing shown) when there are none."""
    paths = screenshot_paths()
    return figures.screenshots(paths) if paths else None


def transform_table():
    """The 2.1 transform on the two file formats: input and output shape, dtype and value range."""
    import pandas as pd

    from ..data.lung import to_bool_mask, to_rgb

    rng = np.random.default_rng(0)
    course = rng.uniform(0, 1, (2, 256, 256, 1)).astype(np.float32)  # the course file's layout
    shared = (course * 255).round().astype(np.uint8)  # the shared copy's layout
    mask = (rng.uniform(0, 1, (2, 256, 256, 1)) > 0.5).astype(np.float32)
    rows = []
    for what, x, fn in (("course image (float 0..1)", course[0], to_rgb), ("shared image (uint8)", shared[0], to_rgb),
                        ("image batch", course, to_rgb), ("mask (float 0/1)", mask[0], to_bool_mask)):
        y = fn(x)
        rows.append({"input": what, "in shape": str(x.shape), "in dtype": str(x.dtype),
                     "out shape": str(y.shape), "out dtype": str(y.dtype),
                     "out range": f"{int(y.min())}..{int(y.max())}"})
    return pd.DataFrame(rows)


def has_sources(run) -> bool:
    """Whether the run's data carry source flags (Montgomery/Shenzhen): the shared copy does, the course's file not."""
    sources = set(run.table("records")["source"].astype(str))
    return bool(sources) and sources <= {"MCU", "CHN"}


def source_count(run, source: str) -> int:
    """Validation images of one source (MCU, CHN) under the main strategy."""
    rec = run.table("records")
    rec = rec[rec["strategy"] == run.config["main_strategy"]]
    return int((rec["source"].astype(str) == source).sum())


def data_name(run) -> str:
    """Which lung file the run read, from the per-image source flags it stored."""
    if has_sources(run):
        return "the Montgomery + Shenzhen copy of the lung-field data"
    return "the course's lung-field file"


def transform_code() -> str:
    """The source of the 2.1 transforms, as a markdown code block."""
    import inspect

    from ..data import lung

    src = "\n\n".join(inspect.getsource(f) for f in (lung.to_rgb, lung.to_uint8_gray, lung.to_bool_mask))
    return f"```python\n{src}```"


def bench_results() -> dict | None:
    """bench/results/sam.json if the benchmark has been run, else None; ``model`` is the registry
    name of the model it measured (``model_display`` adds its name for sentences)."""
    import json

    path = PROJECT_ROOT / "bench" / "results" / "sam.json"
    if not path.exists():
        return None
    bench = json.loads(path.read_text())
    return dict(bench, model_display=spec(bench["model"]).display)


def bench_profile(bench: dict) -> str:
    """The profile whose SAM model the benchmark measured ("offline", "full"; "no" if none is)."""
    from ..experiments import get

    configs = get("sam_prompts").configs
    return next((p for p in ("offline", "full") if configs[p].model == bench["model"]), "no")


def bench_is_this_model(bench: dict | None, run) -> bool:
    """Whether the benchmark measured the model of ``run`` (else the chapter says whose it is)."""
    return bool(bench) and bench["model"] == run.config["model"]


def strategy_on_curve(run, name: str) -> float:
    """Mean F1 of a strategy on the robustness curves' images only (to compare with a curve level)."""
    rec = run.table("records")
    imgs = set(run.table("curves")["image"]) if not run.table("curves").empty else set()
    f1 = rec[(rec["strategy"] == name) & rec["image"].isin(imgs)]["f1"]
    return float(f1.mean()) if len(f1) else float("nan")


def image_result(run, role: str) -> dict:
    """One example image of 2.2 (role: typical, worst) with its numbers for the text: F1 under the main
    strategy, lung and predicted area (fractions), the area verdict (``area``), the best strategy's
    label and F1, and the F1 of one point per lung and of the atlas boxes."""
    ex = example(run, role)
    if ex.get("gt_frac") is None:
        return dict(ex, area="n/a", best="n/a", best_f1=float("nan"), point_f1=float("nan"), atlas_f1=float("nan"))
    rec = run.table("records")
    d = rec[rec["image"] == ex["image"]].set_index("strategy")["f1"]
    over = ex["pred_frac"] - ex["gt_frac"]
    best = d.idxmax()
    return dict(ex, area="over-segments" if over > 0.01 else "under-segments" if over < -0.01 else "matches the lung area",
                best=P.STRATEGIES[best].label, best_f1=float(d[best]),
                point_f1=float(d.get("point_per_lung", np.nan)), atlas_f1=float(d.get("atlas_box_per_lung", np.nan)))


def multimask_gap(run) -> dict:
    """The strategy with the largest gap between the best of three masks (ground truth) and the top-scored
    one (``label``, ``gap``), and how many strategies' top-scored output beats their single mask."""
    s = run.table("summary").set_index("strategy")
    if not len(s):
        return {"label": "n/a", "gap": float("nan"), "better": 0, "n": 0}
    gaps = s["mm_oracle_mean"] - s["mm_top_mean"]
    return {"label": s.loc[gaps.idxmax(), "label"], "gap": float(gaps.max()),
            "better": int((s["mm_top_mean"] > s["mean"]).sum()), "n": len(s)}


def empty_masks(run) -> int:
    """Evaluated images whose ground-truth lung mask is empty (their F1 would be 1 by convention)."""
    rec = run.table("records")
    rec = rec[rec["strategy"] == run.config["main_strategy"]]
    return int((rec["gt_frac"] == 0).sum())


def worst_f1(run, name: str) -> float:
    """The lowest per-image F1 of a strategy on the validation split."""
    return float(strategy(run, name).get("min", float("nan")))


def generator_defaults() -> tuple[float, float]:
    """SamAutomaticMaskGenerator's default (pred_iou_thresh, stability_score_thresh), read from its signature."""
    import inspect

    from segment_anything import SamAutomaticMaskGenerator

    p = inspect.signature(SamAutomaticMaskGenerator).parameters
    return p["pred_iou_thresh"].default, p["stability_score_thresh"].default


# --- the HTML book's prompt explorer (chapter 1; analysis.sam.explorer computes its data) ---------

REF_LABELS = {"box_both": "box around both lungs", "box_per_lung": "box, lung {k}",
              "point_per_lung": "one point, lung {k}", "points3_neg": "3 points + 1 negative, larger lung"}


def explorer_run(profile: str | None = None):
    return get_or_run("sam_explorer", profile)


def _image_label(im: dict) -> str:
    source = {"MCU": "Montgomery", "CHN": "Shenzhen"}.get(im["source"], im["source"])
    finding = {0: "normal", 1: "TB"}.get(im["tb"], "finding unknown")
    return f"{im['name']} ({source}, {finding}{', demo' if im['demo'] else ''})"


def explorer_megabytes(run) -> float:
    """What the explorer loads: embeddings and images (web) plus the ONNX decoder, in MB."""
    return (run.metrics["web_bytes"] + run.metrics["onnx_bytes"]) / 1e6


def explorer_data(run) -> dict:
    """The widget's inline data: images (labels, sizes, coordinate scale), the book's reference
    prompts with the package's F1 and predicted IoU per output, and where the binary files are
    (``assets``, relative to the site's ``lab/``)."""
    images = [dict(im, label=_image_label(im)) for im in run.rows("images")]
    refs = []
    for r in run.rows("records"):
        strategy, k = r["prompt"].split(":")
        refs.append({"n": r["n"], "prompt": r["prompt"], "label": REF_LABELS[strategy].format(k=int(k) + 1),
                     "points": r["points"], "labels": r["labels"], "box": r["box"],
                     "f1": r["f1"], "iou": r["iou_pred"]})
    auto = run.config["auto"]
    return {"model": model_short(run), "assets": f"runs/{run.profile}/sam_explorer/{run.key}/",
            "decoder_mb": run.metrics["onnx_bytes"] / 1e6, "images": images, "refs": refs,
            "auto_grid": f"{auto['points_per_side']} x {auto['points_per_side']} point grid",
            "tolerance_pixels": run.metrics["onnx_f16_diff_pixels_max"]}


def explorer_widget(run) -> str:
    """The prompt explorer as an HTML-only block (``analysis.lab.widget``); the chapter introduces it."""
    from .. import lab

    return lab.widget("sam", explorer_data(run), label=f"{model_short(run)} prompt explorer",
                      attrs={"data-lab-assets": f"{run.profile}/sam_explorer/{run.key}",
                             "data-lab-decoder": f"{run.profile}/sam_explorer/{run.key}", "data-lab-ort": "1"})
