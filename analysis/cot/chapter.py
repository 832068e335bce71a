"""What chapter 4 shows: small tables and texts built from the stored run (nothing computed
inline in the chapter, nothing typed by hand)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ..models import spec
from ..report import pct
from .compute import ANCHORS
from .extract import INVALID
from .scoring import FLIP_TITLES, FLIPS, mcnemar_exact


def load(profile: str | None = None):
    import analysis.cot.experiments  # noqa: F401  (registers the experiment)
    from ..experiments import get_or_run

    return get_or_run("cot_scienceqa", profile)


def model_title(run) -> str:
    s = spec(run.config["model"])
    return f"{s.title}"


def model_source(run) -> str:
    s = spec(run.config["model"])
    return f"{s.source}; {s.note}" if s.note else s.source


def n_flip(run, name: str) -> int:
    return int(run.metrics[f"n_{name}"])


def selection_table(run) -> pd.DataFrame:
    df = run.table("selection").rename(columns={"reason": "test-split problems", "count": "count"})
    total = pd.DataFrame([{"test-split problems": "all problems in the split", "count": run.metrics["n_rows_split"]}])
    sampled = pd.DataFrame([{"test-split problems": "sampled (seeded)", "count": run.metrics["n"]}])
    return pd.concat([total, df, sampled], ignore_index=True)


def prompt_text(run, variant: str) -> str:
    """One of: 'direct (recorded)', 'direct (model input)', 'CoT (recorded)', 'CoT (model input)'."""
    rows = {r["variant"]: r["text"] for r in run.rows("prompts")}
    return rows[variant]


def accuracy_table(run) -> pd.DataFrame:
    m = run.metrics
    ci = m["bootstrap"]
    rows = [
        {"condition": "without CoT (A-D scores)", "accuracy": m["acc_direct"],
         "95% CI": f"{pct(ci['direct'][0])} – {pct(ci['direct'][1])}", "n": m["n"]},
        {"condition": "with CoT (INVALID = wrong)", "accuracy": m["acc_cot"],
         "95% CI": f"{pct(ci['cot'][0])} – {pct(ci['cot'][1])}", "n": m["n"]},
        {"condition": "with CoT, valid answers only", "accuracy": m["acc_cot_valid_only"], "95% CI": "",
         "n": m["n"] - m["n_invalid"]},
        {"condition": "difference (CoT − direct)", "accuracy": m["acc_cot"] - m["acc_direct"],
         "95% CI": f"{pct(ci['difference'][0])} – {pct(ci['difference'][1])}", "n": m["n"]},
        {"condition": "chance (4 options)", "accuracy": 0.25, "95% CI": "", "n": None},
        {"condition": "Lu et al. 2022, UnifiedQA-base without CoT (all test)", "accuracy": ANCHORS["lu2022_unifiedqa_base"],
         "95% CI": "", "n": None},
        {"condition": "Lu et al. 2022, UnifiedQA-base with CoT (all test)", "accuracy": ANCHORS["lu2022_unifiedqa_base_cot"],
         "95% CI": "", "n": None},
    ]
    df = pd.DataFrame(rows)
    df["accuracy"] = df["accuracy"].map(pct)
    df["n"] = df["n"].map(lambda x: "" if x is None or x != x else str(int(x)))
    return df


def flip_counts_table(run) -> pd.DataFrame:
    n = run.metrics["n"]
    return pd.DataFrame([{"category": FLIP_TITLES[k], "count": n_flip(run, k),
                          "share": pct(n_flip(run, k) / n if n else float("nan"))} for k in FLIPS])


def format_table(run) -> pd.DataFrame:
    m = run.metrics
    n = m["n"]
    rows = [
        ("exactly three `Reasoning:` lines, then `Answer: X` (the asked format)", m["n_format_ok"]),
        ("answer read by the strict rule (an `Answer: X` line)", m["n_strict"]),
        ("answer read only by the flexible rule", m["n_flexible"]),
        ("INVALID (no answer found)", m["n_invalid"]),
        ("exactly three reasoning steps (any answer form)", m["n_three_steps"]),
        ("stopped by the token budget", m["n_hit_max"]),
        ("more than one letter named as the answer", m["n_conflicting_answers"]),
    ]
    return pd.DataFrame([{"CoT outputs": a, "count": b, "share": pct(b / n if n else float("nan"))} for a, b in rows])


def steps_hist(run) -> pd.DataFrame:
    h = run.metrics["n_steps_hist"]
    return pd.DataFrame([{"reasoning steps": k, "outputs": v} for k, v in h.items() if v])


def by_subject_table(run) -> pd.DataFrame:
    df = run.table("by_subject")
    return _group_df(df, "subject")


def by_group_table(run, top: int = 12) -> pd.DataFrame:
    df = run.table("by_group").sort_values("n", ascending=False).head(top)
    return _group_df(df, "group")


def _group_df(df, key):
    out = df[[key, "n", "acc_direct", "acc_cot", *FLIPS]].copy()
    out["acc_direct"] = out["acc_direct"].map(pct)
    out["acc_cot"] = out["acc_cot"].map(pct)
    out.columns = [key, "n", "acc. without CoT", "acc. with CoT", "→ correct", "→ incorrect", "both right", "both wrong"]
    return out


def category_summary(run) -> pd.DataFrame:
    """Per flip category: what the chains look like (format, length, consistency, early answer)."""
    df = run.table()
    rows = []
    for cat in FLIPS:
        d = df[df["flip"] == cat]
        n = len(d)
        known = d[d["reasoning_supports"].notna()]
        k0 = d["probe_agree_k0"].dropna()
        rows.append({
            "category": FLIP_TITLES[cat].split(" (")[0], "n": n,
            "format followed": pct(d["format_ok"].mean()) if n else "n/a",
            "INVALID": int((d["cot_letter"] == INVALID).sum()),
            "mean tokens": f"{d['n_new_tokens'].mean():.0f}" if n else "n/a",
            "reasoning names an option": len(known),
            "...and it is the answer": int((known["reasoning_supports"] == known["cot_letter"]).sum()),
            "answer fixed before reasoning (k=0 agrees)": pct(k0.mean()) if len(k0) else "n/a",
            "same letter both times": int((d["direct_letter"] == d["cot_letter"]).sum()),
            "most common group": (d["group"].value_counts().index[0] if n else "n/a"),
        })
    return pd.DataFrame(rows)


def category_fact(run, cat: str, what: str):
    """One number of ``category_summary`` for prose, by flip name and column."""
    row = category_summary(run).iloc[list(FLIPS).index(cat)]
    return row[what]


def probe_table(run) -> pd.DataFrame:
    df = run.table("probe")
    out = pd.DataFrame({
        "reasoning steps kept": df["steps_kept"], "items": df["n"],
        "early answer = final CoT answer": df["agree"].map(pct),
        "early answer correct": df["acc_probe"].map(pct),
        "agreement, items with all cuts": df["agree_all_cuts"].map(pct),
    })
    return out


def probe_agree(run, k: int) -> float:
    rows = {r["steps_kept"]: r for r in run.rows("probe")}
    value = rows[k]["agree"] if k in rows else None
    return float("nan") if value is None else value


def probe_direct_agreement(run) -> float:
    """Share of probed questions whose zero-step early answer equals the direct answer."""
    rows = [r for r in run.rows("records") if r.get("probe_k0")]
    return float(np.mean([r["probe_k0"] == r["direct_letter"] for r in rows])) if rows else float("nan")


def probe_n(run, k: int) -> int:
    rows = {r["steps_kept"]: r for r in run.rows("probe")}
    return int(rows[k]["n"]) if k in rows else 0


def _str(x) -> str | None:
    """A stored text field, or None (pandas turns missing values into NaN)."""
    return x if isinstance(x, str) and x else None


def _md_escape(text) -> str:
    text = "" if text is None else str(text)
    return html.escape(text).replace("\n", " ⏎ ").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def examples_md(run, category: str, limit: int | None = None):
    """The seeded qualitative sample of one flip category as Markdown blocks."""
    from IPython.display import Markdown

    df = run.table()
    d = df[(df["flip"] == category) & df["qual_rank"].notna()].sort_values("qual_rank")
    if limit is not None:
        d = d.head(limit)
    if d.empty:
        return Markdown("*No question fell in this category.*")
    blocks = []
    for _, r in d.iterrows():
        opts = "; ".join(f"**{l}.** {_md_escape(c)}" for l, c in zip("ABCD", r["choices"]))
        where = f" ({_md_escape(r['topic'])})" if _str(r["topic"]) else ""
        steps = [s for s in (r["step1"], r["step2"], r["step3"]) if isinstance(s, str)]
        chain = " → ".join(f"*{_md_escape(s)}*" for s in steps) if steps else "(no `Reasoning:` lines)"
        raw = "" if steps else f" Raw output: «{_md_escape(r['cot_text'][:400])}»"
        flag = " ⚠ the reasoning's last step names another option." if r["reasoning_answer_mismatch"] else ""
        probe = ""
        if r["in_probe"]:
            probe = " Early answers after 0/1/2/3 steps: " + "/".join(
                _str(r.get(f"probe_k{k}")) or "–" for k in range(4)) + "."
        blocks.append(
            f"- **{_md_escape(r['id'])}**{where}: {_md_escape(r['question'])}"
            + (f" *Context:* {_md_escape(r['hint'])}" if _str(r["hint"]) else "")
            + f"  \n  {opts}  \n  gold **{r['gold']}**, without CoT **{r['direct_letter']}**, "
            f"with CoT **{r['cot_letter']}** ({r['cot_rule']}).{flag}{probe}  \n  Reasoning: {chain}{raw}"
        )
    return Markdown("\n".join(blocks))


def mismatch_examples(run, limit: int = 5):
    """Chains whose reasoning names one option while the answer names another."""
    from IPython.display import Markdown

    df = run.table()
    d = df[df["reasoning_answer_mismatch"]].head(limit)
    if d.empty:
        return Markdown("*No chain was flagged.*")
    lines = []
    for _, r in d.iterrows():
        steps = " → ".join(_md_escape(s) for s in (r["step1"], r["step2"], r["step3"]) if isinstance(s, str))
        lines.append(f"- **{_md_escape(r['id'])}**: reasoning points to **{r['reasoning_supports']}**, "
                     f"answer **{r['cot_letter']}**, gold **{r['gold']}**. *{steps}*")
    return Markdown("\n".join(lines))


def timing_line(run) -> str:
    m = run.metrics
    return (f"{m['gen_seconds_recorded'] / 60:.1f} min of CoT generation (with the probe) and "
            f"{m['direct_seconds_recorded'] / 60:.1f} min of direct scoring when first computed "
            f"({m['gen_seconds_recorded'] / max(m['n'], 1):.1f} s per question)")


def letter_bias(run) -> tuple[str, float, str, float]:
    """The letter each condition predicts most often and its share."""
    df = run.table("letters").set_index("letter")
    n = run.metrics["n"]
    d, c = df["direct"].idxmax(), df["cot"].idxmax()
    return d, df.loc[d, "direct"] / n, c, df.loc[c, "cot"] / n


def mcnemar_sentence(run) -> str:
    m = run.metrics
    b, c = m["n_flip_to_correct"], m["n_flip_to_incorrect"]
    p = m["mcnemar_p"]
    verdict = "not significant at the 5% level" if p >= 0.05 else "significant at the 5% level"
    return f"{b} vs {c} discordant questions, exact two-sided p = {p:.3g} ({verdict})"


def patterns_sentence(run, min_n: int = 5) -> str:
    """Where the flips fall: the largest group's share of them, and the groups (>= ``min_n``
    questions) where CoT gained and lost the most questions on balance."""
    df = run.table("by_group")
    df = df.assign(flips=df["flip_to_correct"] + df["flip_to_incorrect"],
                   net=df["flip_to_correct"] - df["flip_to_incorrect"])
    n_flips = int(df["flips"].sum())
    if n_flips == 0:
        return "No answer changed between the two conditions, so there is no pattern to find"
    top = df.sort_values(["n", "group"], ascending=[False, True]).iloc[0]
    n_all = int(df["n"].sum())
    first = (f"The largest group (*{_group_name(top['group'])}*, {int(top['n'])} of {n_all} questions) "
             f"holds {int(top['flips'])} of the {n_flips} flips")
    if abs(top["flips"] / n_flips - top["n"] / n_all) < 0.1:
        first += ", about its share of the sample"
    parts = [first]
    big = df[df["n"] >= min_n]
    if big.empty:
        return first
    best = big.sort_values(["net", "n"], ascending=[False, False]).iloc[0]
    worst = big.sort_values(["net", "n"], ascending=[True, False]).iloc[0]
    if best["net"] > 0:
        parts.append(f"among groups of at least {min_n} questions CoT had its largest net gain on *{_group_name(best['group'])}* "
                     f"({int(best['flip_to_correct'])} flips to correct, {int(best['flip_to_incorrect'])} to incorrect, "
                     f"of {int(best['n'])}, {_p(best)})")
    if worst["net"] < 0:
        parts.append(f"the largest net loss was on *{_group_name(worst['group'])}* ({int(worst['flip_to_correct'])} to correct, "
                     f"{int(worst['flip_to_incorrect'])} to incorrect, of {int(worst['n'])}, {_p(worst)})")
    return "; ".join(parts)


def _p(row) -> str:
    return f"McNemar p = {mcnemar_exact(int(row['flip_to_correct']), int(row['flip_to_incorrect'])):.2g}"


def _group_name(group: str) -> str:
    return group.removeprefix("stem: ")


def data_note(run) -> str:
    m = run.metrics
    return f"{m['n_with_metadata']} of {m['n']}"


def accuracies(run):
    m = run.metrics
    return m["acc_direct"], m["acc_cot"]


def direction(run) -> str:
    d, c = accuracies(run)
    if np.isclose(d, c):
        return "left accuracy unchanged"
    return "raised accuracy" if c > d else "lowered accuracy"


ASSIGNMENT_N = 200  # the assignment's sample size


def sample_note(run) -> str:
    """A sentence when the stored run covers fewer questions than the assignment's 200."""
    n = run.metrics["n"]
    if run.profile == "smoke":
        return (f"This is the smoke profile: {n} questions and a 135M model stand in for the real run, "
                "so the numbers below mean nothing.")
    if n >= ASSIGNMENT_N:
        return ""
    return (f"**This run covers {n} of the assignment's {ASSIGNMENT_N} questions**: the first {n} of the seeded "
            f"sample of {ASSIGNMENT_N} (the draw is prefix-stable, so they are exactly those questions). The "
            "1.5B model on the shared 2-core CPU could not finish all of them in the time available; "
            "`python -m analysis run cot_scienceqa` completes the run and pays only for the missing questions "
            "(raw outputs are cached).")
