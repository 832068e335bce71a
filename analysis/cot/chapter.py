"""What chapter 4 shows: numbers, tables and a few result-dependent words read from the stored
run (the narrative is in chapters/04-chain-of-thought.qmd and appendices/cot-outputs.qmd)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import spec
from ..report import MISSING, Literal, Markdown, escape_md, no_shortcodes, num, pct
from .compute import ANCHORS, _direct_prefix
from .extract import INVALID
from .scoring import FLIP_TITLES, FLIPS, mcnemar_exact


def load(profile: str | None = None):
    import analysis.cot.experiments  # noqa: F401  (registers the experiment)
    from ..experiments import get_or_run

    return get_or_run("cot_scienceqa", profile)


def model_spec(run):
    """The registry entry of the run's model (``.display``, ``.cite``, ``.chat``, ``.family`` ...)."""
    return spec(run.config["model"])


def model_line(run) -> str:
    """Markdown for an ``output: asis`` cell: the model's name, citation, source and size note."""
    s = model_spec(run)
    cite = f" [{s.cite}]" if s.cite else ""
    return f"**{s.display}**{cite}: {s.source}" + (f"; {s.note}." if s.note else ".")


def model_kind(run) -> str:
    """What kind of instruction-tuned model it is, from its capabilities: 'chat model' (reads prompts
    through a chat template), 'sequence-to-sequence model' or 'language model'."""
    s = model_spec(run)
    if s.chat:
        return "chat model"
    return "sequence-to-sequence model" if s.family == "seq2seq" else "language model"


def direct_prefix(run) -> str:
    """The text that begins the model's answer before the A-D scores are read ('' for seq2seq)."""
    return _direct_prefix(model_spec(run).family)


def direct_input(run) -> str:
    """How the baseline prompt reaches the model, from its capabilities (a phrase for prose)."""
    s, prefix = model_spec(run), direct_prefix(run)
    begun = f", then an answer begun with “{prefix}”" if prefix else ""
    if s.chat:
        return f"as the user turn of its chat template (with the template's default system turn){begun}"
    return f"as one text{begun}"


def cot_input(run) -> str:
    """Where the CoT instruction goes, from the model's capabilities (a phrase for prose)."""
    if model_spec(run).chat:
        return "the instruction as the system turn and the question block as the user turn"
    return "the instruction, a blank line and the question block as one text"


def device(run) -> str:
    from ..envinfo import device_text

    return device_text(run.env.get("device", ""))


def n_flip(run, name: str) -> int:
    return int(run.metrics[f"n_{name}"])


def selection_table(run) -> pd.DataFrame:
    df = run.table("selection").rename(columns={"reason": "test-split problems", "count": "count"})
    total = pd.DataFrame([{"test-split problems": "all problems in the split", "count": run.metrics["n_rows_split"]}])
    sampled = pd.DataFrame([{"test-split problems": "sampled (seeded)", "count": run.metrics["n"]}])
    return pd.concat([total, df, sampled], ignore_index=True)


PROMPT_WIDTH = 76  # characters per printed prompt line: a code block of this width fits the A4 PDF page


def prompt_text(run, variant: str, part: str = "user", width: int = PROMPT_WIDTH) -> str:
    """One of: 'direct (recorded)', 'direct (model input)', 'CoT (recorded)', 'CoT (model input)';
    ``part="system"`` gives the recorded system text (the CoT instruction). Lines longer than
    ``width`` are wrapped, the continuation indented by four spaces (no prompt line starts with
    spaces, so an indented line is always a continuation). Printed by a cell: ``no_shortcodes``."""
    rows = {r["variant"]: r for r in run.rows("prompts")}
    text = rows[variant].get("system") or "" if part == "system" else rows[variant]["text"]
    return no_shortcodes(wrap_lines(text, width))


def wrap_lines(text: str, width: int = PROMPT_WIDTH) -> str:
    """``text`` with each line longer than ``width`` broken at spaces (or inside a word longer
    than the line) into lines of at most ``width`` characters, continuations indented by four."""
    out = []
    for line in str(text).split("\n"):
        out += textwrap.wrap(line, width, subsequent_indent="    ", drop_whitespace=True,
                             break_on_hyphens=False) or [""]
    return "\n".join(out)


def accuracies(run):
    m = run.metrics
    return m["acc_direct"], m["acc_cot"]


def change_verb(run) -> str:
    """'raised', 'lowered' or 'did not change' (CoT accuracy against the direct accuracy)."""
    d, c = accuracies(run)
    if np.isclose(d, c):
        return "did not change"
    return "raised" if c > d else "lowered"


def significance(p: float, alpha: float = 0.05) -> str:
    """'significant' or 'not significant' at level ``alpha`` (for 'p = 0.3, not significant')."""
    return "significant" if p < alpha else "not significant"


def p_text(p: float) -> str:
    """A p-value for prose, three significant digits: 0.0123 -> '0.0123', 3.6e-15 -> '3.55e-15'."""
    return MISSING if p is None or p != p else f"{p:.3g}"


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
        {"condition": "Lu et al. 2022, fine-tuned UnifiedQA-base without CoT (all test)",
         "accuracy": ANCHORS["lu2022_unifiedqa_base"], "95% CI": "", "n": None},
        {"condition": "Lu et al. 2022, fine-tuned UnifiedQA-base with CoT (all test)",
         "accuracy": ANCHORS["lu2022_unifiedqa_base_cot"], "95% CI": "", "n": None},
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
        ("at least one `Reasoning:` marker", m.get("n_marked_any", float("nan"))),
        ("three or more steps (markers, list items or paragraphs)",
         sum(v for k, v in m["n_steps_hist"].items() if int(k) >= 3)),
        ("stopped by the token budget", m["n_hit_max"]),
        ("more than one letter named as the answer", m["n_conflicting_answers"]),
    ]
    return pd.DataFrame([{"CoT outputs": a, "count": b, "share": pct(b / n if n else float("nan"))} for a, b in rows])


def top_letter(run, condition: str) -> dict:
    """The most frequent predicted letter of ``condition`` ("direct" or "cot"), INVALID aside:
    ``{"letter", "share"`` (of all questions), ``"gold"`` (share of questions with that gold
    letter)``}``; letter "none" and gold share missing when the condition predicted no letter."""
    df = run.table("letters").set_index("letter")
    df = df[df.index != INVALID]
    n = run.metrics["n"]
    if not n or df[condition].max() == 0:
        return {"letter": "none", "share": pct(0.0), "gold": MISSING}
    letter = df[condition].idxmax()
    return {"letter": letter, "share": pct(df.loc[letter, condition] / n), "gold": pct(df.loc[letter, "gold"] / n)}


def by_group_table(run, top: int = 10) -> pd.DataFrame:
    df = run.table("by_group").sort_values("n", ascending=False).head(top)
    out = df[["group", "n", "acc_direct", "acc_cot", *FLIPS]].copy()
    out["acc_direct"] = out["acc_direct"].map(pct)
    out["acc_cot"] = out["acc_cot"].map(pct)
    out["group"] = out["group"].map(_group_name)
    out.columns = ["group", "n", "acc. without CoT", "acc. with CoT", "FC", "FI", "CC", "II"]
    return out


def _category_rows(run, cat: str) -> pd.DataFrame:
    df = run.table()
    return df[df["flip"] == cat]


def category_summary(run) -> pd.DataFrame:
    """Per flip category: what the chains look like (format, length, consistency, early answer)."""
    rows = []
    for cat in FLIPS:
        d = _category_rows(run, cat)
        n = len(d)
        known = d[d["reasoning_supports"].notna()]
        k0 = d["probe_agree_k0"].dropna()
        rows.append({
            "category": FLIP_TITLES[cat].split(" (")[0], "n": n,
            "format ok": pct(d["format_ok"].mean()) if n else MISSING,
            "INVALID": int((d["cot_letter"] == INVALID).sum()),
            "mean tokens": f"{d['n_new_tokens'].mean():.0f}" if n else MISSING,
            "names an option": int(len(known)),
            "names the answer": int((known["reasoning_supports"] == known["cot_letter"]).sum()),
            "fixed before reasoning": pct(k0.mean()) if len(k0) else MISSING,
            "same letter": int((d["direct_letter"] == d["cot_letter"]).sum()),
            "other letter": int(((d["direct_letter"] != d["cot_letter"]) & (d["cot_letter"] != INVALID)).sum()),
        })
    return pd.DataFrame(rows)


def category_fact(run, cat: str, what: str):
    """One number of ``category_summary`` for prose, by flip name and column."""
    row = category_summary(run).iloc[list(FLIPS).index(cat)]
    value = row[what]
    return value.item() if hasattr(value, "item") else value  # numpy scalar -> plain number


def probe_table(run) -> pd.DataFrame:
    df = run.table("probe")
    out = {"steps kept": df["steps_kept"], "items": df["n"],
           "early = final": df["agree"].map(pct)}
    if "chance" in df:
        out["chance"] = df["chance"].map(pct)
        out["kappa"] = df["kappa"].map(lambda v: num(v, 2))
    out["early answer correct"] = df["acc_probe"].map(pct)
    out["early = final, items with all cuts"] = df["agree_all_cuts"].map(pct)
    return pd.DataFrame(out)


def probe_row(run, k: int) -> dict:
    """The probe table's row for ``k`` steps kept (agree, chance, kappa, n; NaN where absent)."""
    rows = {r["steps_kept"]: r for r in run.rows("probe")}
    row = rows.get(k, {})
    return {f: (float("nan") if row.get(f) is None else row[f]) for f in ("agree", "chance", "kappa", "n")}


PLACEMENT_TITLES = {"system": "instruction as the system turn", "user": "instruction at the start of the user turn"}


def placements(run) -> dict:
    """Per placement of the CoT instruction, its summary on the first ``variant_n`` questions."""
    return run.metrics.get("placements") or {}


def placement_table(run) -> pd.DataFrame:
    """Format compliance, validity and accuracy of both placements on the same questions."""
    rows = []
    main = run.metrics.get("main_placement")
    for name, sm in placements(run).items():
        n = sm["n"]
        rows.append({"placement": PLACEMENT_TITLES.get(name, name) + (" (main run)" if name == main else ""),
                     "n": n, "format ok": sm["n_format_ok"], "uses `Reasoning:`": sm["n_marked_any"],
                     "INVALID": sm["n_invalid"], "budget hit": sm["n_hit_max"],
                     "acc. without CoT": pct(sm["acc_direct"]), "acc. with CoT": pct(sm["acc_cot"]),
                     "FC / FI": f"{sm['n_flip_to_correct']} / {sm['n_flip_to_incorrect']}",
                     "McNemar p": p_text(sm["mcnemar_p"])})
    return pd.DataFrame(rows)


def placement(run, name: str, field: str):
    """One number of one placement's summary ("main" / "other" name the run's two placements)."""
    m = run.metrics
    key = m.get("main_placement") if name == "main" else m.get("other_placement") if name == "other" else name
    return placements(run).get(key, {}).get(field, float("nan"))


def kappa_words(kappa: float) -> str:
    """Landis and Koch's (1977) words for a kappa: 'slight agreement', 'fair agreement', ...,
    'almost perfect agreement'; 'no agreement beyond chance' at or below 0."""
    if not np.isfinite(kappa):
        return MISSING
    if kappa <= 0:
        return "no agreement beyond chance"
    for limit, word in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= limit:
            return f"{word} agreement"
    return "almost perfect agreement"


def placement_choice(run) -> str:
    """Which placement the rule prefers (higher CoT accuracy on the shared questions; on a tie,
    fewer INVALID outputs; then more outputs in the asked format), and whether the main run uses it."""
    pl = placements(run)
    if len(pl) < 2:
        return MISSING
    best = max(pl, key=lambda k: (pl[k]["acc_cot"], -pl[k]["n_invalid"], pl[k]["n_format_ok"]))
    main = run.metrics.get("main_placement")
    verdict = "the main run uses it" if best == main else \
        f"the main run uses the other one ({PLACEMENT_TITLES.get(main, main)}), computed before this comparison"
    return f"{PLACEMENT_TITLES.get(best, best)}; {verdict}"


def control(run) -> dict:
    return run.metrics.get("control") or {}


def control_fact(run, what: str, k: int = 0):
    """Numbers of the option-order control: ``same_<field>`` (share of answers that name the same
    option as in the original order), ``agree_main``/``kappa_main``/``chance_main`` and the same for
    ``_control`` (early answer after k steps vs final answer), ``top_k0_<run>`` (the most frequent
    zero-step letter and its share)."""
    c = control(run)
    if not c:
        return float("nan")
    if what.startswith("same_"):
        return c["same_option"][what.removeprefix("same_")]["same_option"]
    if what.startswith(("agree_", "kappa_", "chance_", "n_")):
        field, which = what.split("_", 1)
        rows = {r["steps_kept"]: r for r in c[f"probe_{which}"]}
        value = rows.get(k, {}).get(field)
        return float("nan") if value is None else value
    if what.startswith("top_k0_"):
        counts = c["letters"][f"{what.removeprefix('top_k0_')} probe_k0"]
        valid = {L: v for L, v in counts.items() if L != INVALID}
        total = sum(valid.values())
        letter = max(valid, key=valid.get) if total else "none"
        return {"letter": letter, "share": pct(valid.get(letter, 0) / total) if total else MISSING}
    raise KeyError(what)


def control_table(run) -> pd.DataFrame:
    """Original order against options rotated, on the same questions."""
    c = control(run)
    if not c:
        return pd.DataFrame()
    main = placements(run).get(run.metrics.get("main_placement"), {})
    rows = [("accuracy without CoT", pct(main.get("acc_direct")), pct(c["acc_direct"])),
            ("accuracy with CoT", pct(main.get("acc_cot")), pct(c["acc_cot"])),
            ("INVALID", main.get("n_invalid"), c["n_invalid"])]
    top_m, top_c = control_fact(run, "top_k0_main"), control_fact(run, "top_k0_control")
    rows.append(("most frequent zero-step letter", f"{top_m['letter']} ({top_m['share']})",
                 f"{top_c['letter']} ({top_c['share']})"))
    for k in range(len(c["probe_main"])):
        rows.append((f"early = final after {k} steps (kappa)",
                     f"{pct(control_fact(run, 'agree_main', k))} ({num(control_fact(run, 'kappa_main', k), 2)})",
                     f"{pct(control_fact(run, 'agree_control', k))} ({num(control_fact(run, 'kappa_control', k), 2)})"))
    return pd.DataFrame(rows, columns=["measure (first questions)", "original order", "options rotated"])


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


def group_counts(run, category: str, top: int = 3) -> Markdown:
    """The groups (topic or stem) holding most questions of ``category``, with counts:
    '“Select the liquid.” (4 of its 40 questions); ...', or 'none' for an empty category."""
    df = run.table()
    d = df[df["flip"] == category]
    if d.empty:
        return Markdown("none")
    counts = d["group"].value_counts().head(top)
    sizes = df["group"].value_counts()
    return Markdown("; ".join(f"“{escape_md(_group_name(g))}” ({int(k)} of its {int(sizes[g])} questions)"
                              for g, k in counts.items()))


def _groups(run) -> pd.DataFrame:
    df = run.table("by_group")
    return df.assign(flips=df["flip_to_correct"] + df["flip_to_incorrect"],
                     net=df["flip_to_correct"] - df["flip_to_incorrect"])


def largest_group(run) -> dict:
    """The largest group: ``name``, ``n``, ``share`` (of the questions, as text), ``flips`` (its
    flips in either direction), ``n_flips`` (all flips of the run), ``flip_share`` (its share of
    them, as text; missing when no answer flipped)."""
    df = _groups(run)
    top = df.sort_values(["n", "group"], ascending=[False, True]).iloc[0]
    n_all, n_flips = int(df["n"].sum()), int(df["flips"].sum())
    return {"name": _group_name(top["group"]), "n": int(top["n"]), "share": pct(top["n"] / n_all),
            "flips": int(top["flips"]), "n_flips": n_flips,
            "flip_share": pct(top["flips"] / n_flips) if n_flips else MISSING}


def net_extremes(run, min_n: int = 5) -> tuple[dict, dict, int]:
    """The groups of at least ``min_n`` questions (fewer if no group is that large) with the highest
    and the lowest net change (flips to correct minus flips to incorrect); each ``{"name", "n", "fc",
    "fi", "net" (signed text), "p" (exact McNemar p of its flips, text)}``, and the size limit used."""
    df = _groups(run)
    min_n = min(min_n, int(df["n"].max()))
    big = df[df["n"] >= min_n]

    def row(r) -> dict:
        fc, fi = int(r["flip_to_correct"]), int(r["flip_to_incorrect"])
        return {"name": _group_name(r["group"]), "n": int(r["n"]), "fc": fc, "fi": fi, "net": f"{fc - fi:+d}",
                "p": f"{mcnemar_exact(fc, fi):.2g}"}

    best = big.sort_values(["net", "n", "group"], ascending=[False, False, True]).iloc[0]
    worst = big.sort_values(["net", "n", "group"], ascending=[True, False, True]).iloc[0]
    return row(best), row(worst), min_n


def _group_name(group: str) -> Literal:
    """A group's name for the prose: a topic or question stem from the data, shown as written."""
    return Literal(group.removeprefix("stem: "))


def data_note(run) -> str:
    m = run.metrics
    return f"{m['n_with_metadata']} of {m['n']}"


def _str(x) -> str | None:
    """A stored text field, or None (pandas turns missing values into NaN)."""
    return x if isinstance(x, str) and x else None


def _md_escape(text) -> str:
    """A stored text (question, option, model output, note) as inline Markdown that prints as itself
    in every format (``report.escape_md``), line breaks as ⏎."""
    return escape_md("" if text is None else text, newlines=" ⏎ ", long_words=30)


PDF_STEP_CHARS = 320  # the PDF's excerpt of a chain: each of its first three steps cut here


def chain_markdown(text: str, full: bool = True) -> str:
    """A stored output's chain of thought (``extract.chain_steps``) as inline markdown, steps
    separated by arrows; ``full=False`` keeps the first three steps, each cut at PDF_STEP_CHARS
    characters, and says what was left out (the PDF's excerpt; the HTML shows every step)."""
    from .extract import chain_steps

    steps = [st for st, _, _ in chain_steps(text or "")]
    if not steps:
        return f"(no reasoning before the answer) Raw output: «{_md_escape(text)}»"
    shown = steps if full else steps[:3]
    parts = []
    for st in shown:
        cut = not full and len(st) > PDF_STEP_CHARS
        parts.append(f"*{_md_escape(st[:PDF_STEP_CHARS].rstrip() if cut else st)}*" + (" […]" if cut else ""))
    out = " → ".join(parts)
    left = len(steps) - len(shown)
    if left:
        out += f" (+{left} more step{'s' if left > 1 else ''}; all of them in the HTML book)"
    return out


def examples_text(run, category: str, limit: int | None = None, full: bool = True) -> str:
    """Markdown of the sampled questions of a category: one list item per question, with the whole
    chain (``full``) or the PDF's excerpt of it, and our label."""
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
        chain, raw = chain_markdown(r["cot_text"], full), ""
        flag = " ⚠ the reasoning's last step names another option." if r["reasoning_answer_mismatch"] else ""
        probe = ""
        if r["in_probe"]:
            cuts = range(int(run.config["probe_steps"]) + 1)
            probe = f" Early answers after {'/'.join(map(str, cuts))} steps: " + "/".join(
                _str(r.get(f"probe_k{k}")) or "–" for k in cuts) + "."
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
        listing, excerpt = examples_text(run, cat), examples_text(run, cat, full=False)
        # HTML: a collapsed callout with every chain whole; PDF: the plain list with the first three
        # steps of each chain (a Typst callout does not break across pages)
        parts.append(f"## {title} {{#sec-cot-out-{cat.replace('_', '-')}}}\n\n"
                     f"{k} of the {n} questions of this category, drawn with seed {run.config['seed']}.\n\n"
                     f"::::: {{.content-visible when-format=\"html\"}}\n"
                     f"::: {{.callout-note collapse=\"true\" appearance=\"minimal\"}}\n"
                     f"## The {k} sampled chains\n\n{listing}\n:::\n:::::\n\n"
                     f"::::: {{.content-visible unless-format=\"html\"}}\n{excerpt}\n:::::\n")
    return "\n".join(parts)



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
    fix = ('one JSON object per line: {"id", "text_sha", "label", "note"} (a truncated last line: complete '
           'or delete it)')
    try:  # opened even when absent: a render then notes the file, and re-executes once it exists
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except UnicodeDecodeError as exc:
        line_no = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(path, f"line {line_no} is not UTF-8 text (byte {exc.object[exc.start]:#04x})",
                        "save the file as UTF-8 (an editor's 'encoding' setting), then render again") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            labels[(str(rec["id"]), rec["text_sha"])] = rec
            rec["label"]  # noqa: B018  (checked here, where the line is known)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problem = (f"lacks the field {exc.args[0]!r}" if isinstance(exc, KeyError) else
                       "is not a JSON object" if isinstance(exc, TypeError) else f"is not valid JSON ({exc.msg})")
            raise DataError(path, f"line {n} {problem}", fix) from None
    found = [labels.get((i, s)) for i, s in zip(d["id"], d["sha"])]
    d["label"] = [r["label"] if r else None for r in found]
    d["note"] = [r.get("note") if r else None for r in found]
    bad = [(i, r["label"]) for (i, f), r in zip(zip(d["id"], d["flip"]), found) if r and r["label"] not in LABELS[f]]
    if bad:
        raise DataError(path, f"labels not defined for their category: {bad[:5]}",
                        "use one of each category's labels: " + "; ".join(f"{c}: {', '.join(v)}" for c, v in LABELS.items()))
    return d.drop(columns=["cot_text", "sha"]).sort_values(["flip", "qual_rank"])


def label_counts(run, category: str) -> dict:
    """``{"n": sampled, "read": labelled, label: count, ...}`` for one flip category."""
    d = annotations(run)
    d = d[d["flip"] == category]
    out = {"n": len(d), "read": int(d["label"].notna().sum())}
    for label in LABELS[category]:
        out[label] = int((d["label"] == label).sum())
    return out


def label_count(run, category: str, label: str | None = None) -> int:
    """How many sampled chains of ``category`` carry ``label`` (None: how many were labelled at all)."""
    c = label_counts(run, category)
    return c["read"] if label is None else c[label]


def top_label(run, category: str) -> str:
    """The most frequent label of a category's labelled chains, with its count: 'misleading (9 of
    20 read)'; tied labels together: 'useful and flawed (9 each of 20 read)'; 'none read' where no
    chain of the category has been labelled."""
    c = label_counts(run, category)
    if not c["read"]:
        return "none read"
    best = max(c[lab] for lab in LABELS[category])
    tied = [lab.replace("_", "-") for lab in LABELS[category] if c[lab] == best]
    each = " each" if len(tied) > 1 else ""
    return f"{' and '.join(tied)} ({best}{each} of {c['read']} read)"


# ----------------------------------------------------------------------------- HTML lab: the browser
def _opt(x):
    """A stored optional field as JSON: None for missing (pandas gives NaN, the store null)."""
    if x is None or (isinstance(x, float) and x != x):
        return None
    return x.item() if hasattr(x, "item") else x


def _all_steps(rec: dict) -> list[str]:
    """Every step of a stored output's chain of thought (``extract.chain_steps`` of the raw text)."""
    from .extract import chain_steps

    return [st for st, _, _ in chain_steps(rec["cot_text"] or "")]


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
    for an ``output: asis`` cell; absent from the PDF, which keeps the tables and Appendix A).
    What it offers is said in the chapter, above the cell."""
    from ..lab import widget

    data = cot_browser_data(run)
    return widget("cot", data, label="Chain-of-thought browser: every question with both answers",
                  note=f"**Browse all {data['n']} questions.**")
