"""The chain-of-thought experiment: sample, prompt, generate, extract, score, probe."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..data.scienceqa import LETTERS, sample_questions
from ..store import Output
from . import prompts
from .config import CotConfig
from .extract import INVALID, extract, reasoning_supports
from .generate import LM, generate, probe_scores, score_letters
from .scoring import FLIPS, accuracy_by, flip_category, flip_table, mcnemar_exact, paired_bootstrap

# Published anchors (typed from the papers, cited in the chapter)
ANCHORS = {
    "lu2022_unifiedqa_base_cot": 0.7411,  # Lu et al. 2022, Table 3: UnifiedQA-base (CoT)
    "lu2022_unifiedqa_base": 0.7006,  # ... without CoT
}


def seeded_subset(ids: list[str], n: int, seed: int) -> set[str]:
    """``n`` of ``ids`` chosen with ``seed`` (all when n >= len(ids))."""
    if n >= len(ids):
        return set(ids)
    rng = np.random.default_rng(seed + 1)
    return {ids[i] for i in rng.permutation(len(ids))[:n]}


def _direct_prefix(family: str) -> str:
    """The begun assistant turn of the baseline (chat models); seq2seq models get none."""
    return "" if family == "seq2seq" else prompts.DIRECT_ASSISTANT_PREFIX


def _run_model(config: CotConfig, lm, direct_in: list[str], cot_in: list[str], settings: dict, timings: dict):
    """Direct letter scores and CoT generations (with the early-answer probe) for every question, in
    waves of the sample's order; returns ``(direct, gens)``, one dict per question each."""
    direct_prefix = ""  # seq2seq decoder prefix: none, the first decoded token is scored
    # Work in waves of the sample's order (direct, then CoT, for each wave): whatever is cached
    # at any moment is a prefix of the sample, and draw() is prefix-stable (the first k of the
    # 200 are the sample of k), so an interrupted run still yields complete pairs.
    timings["direct_s"] = timings["cot_s"] = 0.0
    n_waves = -(-len(cot_in) // config.wave_size)
    for w in range(n_waves):
        part = slice(w * config.wave_size, (w + 1) * config.wave_size)
        t = time.perf_counter()
        score_letters(lm, direct_in[part], settings=settings, batch_size=config.batch_size,
                      decoder_prefix=direct_prefix, desc=f"direct, wave {w + 1}/{n_waves}")
        timings["direct_s"] += time.perf_counter() - t
        t = time.perf_counter()
        generate(lm, cot_in[part], max_new_tokens=config.max_new_tokens, settings=settings,
                 batch_size=config.batch_size, probe=True, probe_steps=config.probe_steps,
                 desc=f"CoT, wave {w + 1}/{n_waves}")
        timings["cot_s"] += time.perf_counter() - t
    # every item is cached now: these calls only read the cache
    direct = score_letters(lm, direct_in, settings=settings, batch_size=config.batch_size, decoder_prefix=direct_prefix)
    gens = generate(lm, cot_in, max_new_tokens=config.max_new_tokens, settings=settings,
                    batch_size=config.batch_size, probe=True, probe_steps=config.probe_steps)
    return direct, gens


def _record(q, d: dict, g: dict, p: dict | None, probe_steps: int) -> dict:
    """One question's row: metadata, both answers, the extracted chain, the flip, the probe's letters."""
    ex = extract(g["text"], q.choices)
    supports = reasoning_supports(ex.steps, q.choices)
    gold = q.answer_letter
    rec = {
        "id": q.id, "subject": q.subject, "topic": q.topic, "skill": q.skill, "sqa_category": q.category,
        "grade": q.grade, "stem": q.stem, "group": q.group,
        "question": q.question, "hint": q.hint, "choices": list(q.choices), "gold": gold,
        "direct_letter": d["letter"], "direct_scores": [round(s, 4) for s in d["scores"]],
        "direct_correct": d["letter"] == gold,
        "cot_text": g["text"], "cot_letter": ex.letter, "cot_rule": ex.rule, "cot_strict_letter": ex.strict_letter,
        "cot_correct": ex.letter == gold, "format_ok": ex.format_ok, "n_steps": len(ex.steps),
        "n_marked": ex.n_marked,
        "step1": ex.steps[0] if len(ex.steps) > 0 else None,
        "step2": ex.steps[1] if len(ex.steps) > 1 else None,
        "step3": ex.steps[2] if len(ex.steps) > 2 else None,
        "n_answer_letters": ex.n_answer_letters, "n_new_tokens": g["n_new_tokens"], "hit_max": g["hit_max"],
        "reasoning_supports": supports,
        "reasoning_answer_mismatch": bool(supports and ex.letter != INVALID and supports != ex.letter),
    }
    rec["flip"] = flip_category(rec["direct_correct"], rec["cot_correct"])
    rec["in_probe"] = p is not None
    for k in range(probe_steps + 1):
        letter = None
        if p is not None and k in p["scores"]:
            letter = LETTERS[int(np.argmax(p["scores"][k]))]
        rec[f"probe_k{k}"] = letter
        rec[f"probe_agree_k{k}"] = None if letter is None or ex.letter == INVALID else letter == ex.letter
    return rec


def _mark_qualitative_sample(records: list[dict], n_per_category: int, seed: int) -> None:
    """Seeded qualitative sample: ``qual_rank`` 0.. for up to ``n_per_category`` rows per flip category.

    Rows are ranked by a seeded hash of the question id, so the sample of a category changes only
    where its members change (a rerun that moves a few questions between categories keeps the
    other sampled chains, and the labels given to them)."""
    def rank_key(rec: dict) -> str:
        return hashlib.sha256(f"{seed}:{rec['id']}".encode()).hexdigest()

    for rec in records:
        rec["qual_rank"] = None
    for cat in FLIPS:
        members = sorted((r for r in records if r["flip"] == cat), key=rank_key)
        for rank, rec in enumerate(members[:n_per_category]):
            rec["qual_rank"] = rank


def _probe_rows(records: list[dict], probe_steps: int) -> list[dict]:
    """Per number of steps kept: agreement of the early answer with the final one, and its accuracy,
    over every probed item and over the items that have every cut (the same items at every k)."""
    rows = []
    for k in range(probe_steps + 1):
        vals = [r[f"probe_agree_k{k}"] for r in records if r[f"probe_agree_k{k}"] is not None]
        rows.append({"steps_kept": k, "n": len(vals), "agree": float(np.mean(vals)) if vals else float("nan"),
                     "acc_probe": float(np.mean([r[f"probe_k{k}"] == r["gold"] for r in records
                                                 if r[f"probe_agree_k{k}"] is not None])) if vals else float("nan")})
    full_items = [r for r in records if all(r[f"probe_agree_k{k}"] is not None for k in range(probe_steps + 1))]
    for row in rows:
        k = row["steps_kept"]
        row["n_all_cuts"] = len(full_items)
        row["agree_all_cuts"] = float(np.mean([r[f"probe_agree_k{k}"] for r in full_items])) if full_items else float("nan")
    return rows


def _letter_counts(records: list[dict]) -> list[dict]:
    """How often each letter (and INVALID) is gold, the direct answer and the CoT answer."""
    return [{"letter": letter, "gold": sum(r["gold"] == letter for r in records),
             "direct": sum(r["direct_letter"] == letter for r in records),
             "cot": sum(r["cot_letter"] == letter for r in records)} for letter in (*LETTERS, INVALID)]


def _metrics(config: CotConfig, records: list[dict], sample, family: str, settings: dict, probe_rows: list[dict],
             n_probed: int, direct: list[dict], gens: list[dict], probed: list[dict], timings: dict) -> dict:
    """The run's metrics: accuracies, flips and McNemar, format compliance, probe, timings, decoding."""
    dc = [r["direct_correct"] for r in records]
    cc = [r["cot_correct"] for r in records]
    flips = flip_table(dc, cc)
    valid = [r for r in records if r["cot_letter"] != INVALID]
    max_steps = max([r["n_steps"] for r in records] + [7])
    return {
        "n": len(records), "model": config.model, "family": family, "pool_size": sample.pool_size,
        "n_rows_split": sample.n_rows, "excluded": sample.excluded, "data_source": sample.source,
        "n_with_metadata": sum(r["subject"] is not None for r in records),
        "acc_direct": float(np.mean(dc)), "acc_cot": float(np.mean(cc)),
        "acc_cot_valid_only": float(np.mean([r["cot_correct"] for r in valid])) if valid else float("nan"),
        **{f"n_{k}": v for k, v in flips.items()},
        "mcnemar_p": mcnemar_exact(flips["flip_to_correct"], flips["flip_to_incorrect"]),
        "bootstrap": paired_bootstrap(dc, cc, config.n_boot, config.seed),
        "n_format_ok": sum(r["format_ok"] for r in records),
        "format_ok_rate": float(np.mean([r["format_ok"] for r in records])),
        "n_strict": sum(r["cot_rule"] == "strict" for r in records),
        "n_flexible": sum(r["cot_rule"] == "flexible" for r in records),
        "n_invalid": sum(r["cot_rule"] == "invalid" for r in records),
        "n_three_steps": sum(r["n_steps"] == 3 for r in records),
        "n_steps_hist": {str(k): sum(r["n_steps"] == k for r in records) for k in range(0, max_steps + 1)},
        "n_hit_max": sum(r["hit_max"] for r in records),
        "n_conflicting_answers": sum(r["n_answer_letters"] > 1 for r in records),
        "n_reasoning_mismatch": sum(r["reasoning_answer_mismatch"] for r in records),
        "n_reasoning_supports_known": sum(r["reasoning_supports"] is not None for r in records),
        "mean_new_tokens": float(np.mean([r["n_new_tokens"] for r in records])),
        "probe_n": n_probed, "probe": probe_rows,
        "gen_seconds_recorded": float(sum(g["seconds"] for g in gens)),
        "direct_seconds_recorded": float(sum(d["seconds"] for d in direct)),
        "timings": timings,
        "cached": {"direct": sum(d["cached"] for d in direct), "cot": sum(g["cached"] for g in gens),
                   "probe": sum(p["cached"] for p in probed)},
        "anchors": ANCHORS,
        "decoding": {"strategy": "greedy", "max_new_tokens": config.max_new_tokens, "stop": "at the first 'Answer: X' line",
                     "batch_size": config.batch_size, "padding": "left", **settings},
    }


def agreement_vs_chance(a: list[str], b: list[str]) -> dict:
    """Agreement of two letter lists (INVALID and None excluded pairwise) against chance: observed
    agreement, the agreement expected from the two lists' letter frequencies alone (what a probe
    that always said "C" would reach if the final answers were C as often), and Cohen's kappa."""
    pairs = [(x, y) for x, y in zip(a, b) if x in LETTERS and y in LETTERS]
    if not pairs:
        return {"n": 0, "agree": float("nan"), "chance": float("nan"), "kappa": float("nan")}
    n = len(pairs)
    p_o = sum(x == y for x, y in pairs) / n
    p_e = sum((sum(x == L for x, _ in pairs) / n) * (sum(y == L for _, y in pairs) / n) for L in LETTERS)
    kappa = (p_o - p_e) / (1 - p_e) if p_e < 1 else float("nan")
    return {"n": n, "agree": p_o, "chance": p_e, "kappa": kappa}


def _probe_kappa_rows(records: list[dict], probe_steps: int) -> list[dict]:
    """Per cut k: the early answer's agreement with the final answer, against chance (kappa)."""
    rows = []
    for k in range(probe_steps + 1):
        rows.append({"steps_kept": k, **agreement_vs_chance([r[f"probe_k{k}"] for r in records],
                                                            [r["cot_letter"] for r in records])})
    return rows


def _summary(records: list[dict]) -> dict:
    """Format compliance, validity and accuracy of one set of records (one prompt placement)."""
    n = len(records)
    dc = [r["direct_correct"] for r in records]
    cc = [r["cot_correct"] for r in records]
    flips = flip_table(dc, cc)
    return {"n": n, "n_format_ok": sum(r["format_ok"] for r in records),
            "n_invalid": sum(r["cot_letter"] == INVALID for r in records),
            "n_marked_any": sum(r["n_marked"] > 0 for r in records),
            "n_hit_max": sum(r["hit_max"] for r in records),
            "acc_direct": float(np.mean(dc)) if n else float("nan"),
            "acc_cot": float(np.mean(cc)) if n else float("nan"),
            "mean_new_tokens": float(np.mean([r["n_new_tokens"] for r in records])) if n else float("nan"),
            **{f"n_{k}": v for k, v in flips.items()},
            "mcnemar_p": mcnemar_exact(flips["flip_to_correct"], flips["flip_to_incorrect"])}


def _shifts(questions, seed: int) -> list[int]:
    """Per question, how far the option-order control rotates its options (1-3, seeded by its id)."""
    out = []
    for q in questions:
        rng = np.random.default_rng([seed, int(hashlib.sha256(q.id.encode()).hexdigest()[:8], 16)])
        out.append(int(rng.integers(1, 4)))
    return out


def _original_letter(letter: str | None, shift: int) -> str | None:
    """The letter an answer given under rotated options had in the original order."""
    return LETTERS[(LETTERS.index(letter) - shift) % 4] if letter in LETTERS else letter


def _evaluate(config: CotConfig, lm, questions, placement: str, settings: dict, timings: dict, tag: str,
              direct: list[dict] | None = None):
    """Direct answers (unless given), CoT with the probe, and one record per question, for one
    prompt placement on ``questions`` (the variant and the option-order control)."""
    tok, family = lm.tokenizer, lm.family
    t = time.perf_counter()
    if direct is None:
        direct_in = [prompts.render(tok, prompts.direct_prompt(q), family, _direct_prefix(family)) for q in questions]
        direct = score_letters(lm, direct_in, settings=settings, batch_size=config.batch_size,
                               desc=f"direct, {tag}")
    cot_in = [prompts.render(tok, prompts.cot_prompt(q, placement), family) for q in questions]
    gens = generate(lm, cot_in, max_new_tokens=config.max_new_tokens, settings=settings,
                    batch_size=config.batch_size, probe=True, probe_steps=config.probe_steps, desc=f"CoT, {tag}")
    probed = probe_scores(lm, cot_in, gens, settings=settings, probe_steps=config.probe_steps,
                          batch_size=max(1, config.batch_size // 2))
    timings[f"{tag}_s"] = time.perf_counter() - t
    return [_record(q, d, g, p, config.probe_steps) for q, d, g, p in zip(questions, direct, gens, probed)]


VARIANT_FIELDS = ("id", "gold", "direct_letter", "direct_correct", "cot_letter", "cot_correct", "cot_rule",
                  "format_ok", "n_steps", "n_marked", "n_new_tokens", "hit_max", "flip", "cot_text",
                  "probe_k0", "probe_k1", "probe_k2", "probe_k3")


def _variants(config: CotConfig, lm, questions, main_records: list[dict], direct: list[dict], settings: dict,
              timings: dict) -> tuple[dict, dict]:
    """The other placement and the option-order control on the first ``variant_n`` questions.

    Returns (metrics, tables): per placement the summary (on the same questions for both), and
    for the control the accuracies, the letters' spread and whether each answer names the same
    option *content* as in the original order (a letter-biased answer does not follow its option)."""
    n = min(config.variant_n, len(questions))
    subset, main_sub = questions[:n], main_records[:n]
    other = [p for p in prompts.PLACEMENTS if p != config.placement][0]
    var = _evaluate(config, lm, subset, other, settings, timings, f"placement {other}", direct=direct[:n])
    shifts = _shifts(subset, config.seed)
    rotated = [q.rotated(s) for q, s in zip(subset, shifts)]
    ctl = _evaluate(config, lm, rotated, config.placement, settings, timings, "option-order control")
    for rec, s in zip(ctl, shifts):
        rec["shift"] = s
        for field in ("direct_letter", "cot_letter", *(f"probe_k{k}" for k in range(config.probe_steps + 1))):
            rec[f"{field}_original"] = _original_letter(rec[field], s)
    same = {}
    for field in ("direct_letter", "cot_letter", "probe_k0"):
        pairs = [(m[field], c[f"{field}_original"]) for m, c in zip(main_sub, ctl)
                 if m[field] in LETTERS and c[field] in LETTERS]
        same[field] = {"n": len(pairs), "same_option": float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")}
    letters = {name: {L: sum(r[field] == L for r in recs) for L in (*LETTERS, INVALID)}
               for name, recs, field in (("gold", main_sub, "gold"), ("main probe_k0", main_sub, "probe_k0"),
                                         ("control probe_k0", ctl, "probe_k0"), ("main direct", main_sub, "direct_letter"),
                                         ("control direct", ctl, "direct_letter"), ("main cot", main_sub, "cot_letter"),
                                         ("control cot", ctl, "cot_letter"))}
    metrics = {
        "variant_n": n,
        "placements": {config.placement: _summary(main_sub), other: _summary(var)},
        "main_placement": config.placement, "other_placement": other,
        "control": {**_summary(ctl), "same_option": same, "letters": letters,
                    "probe_main": _probe_kappa_rows(main_sub, config.probe_steps),
                    "probe_control": _probe_kappa_rows(ctl, config.probe_steps)},
    }
    tables = {"variant_records": [{k: r.get(k) for k in VARIANT_FIELDS} for r in var],
              "control_records": [{**{k: r.get(k) for k in VARIANT_FIELDS}, "shift": r["shift"],
                                   **{k: v for k, v in r.items() if k.endswith("_original")}} for r in ctl]}
    return metrics, tables


def compute(config: CotConfig) -> Output:
    """Sample the questions, run the model (direct scores, CoT, probe), extract, score; one Output."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    from . import generate as _gen

    _gen.ADAPTIVE_THREADS = config.torch_threads == -1
    if config.torch_threads != 0:
        import torch

        torch.set_num_threads(max(1, config.torch_threads))
    sample = sample_questions(config.n_questions, config.seed, config.split, config.source)
    questions = sample.questions
    lm = LM(config.model, device=config.device, dtype=config.dtype)
    family = lm.family
    settings = {"dtype": lm.dtype_name()}
    timings["sample_s"] = time.perf_counter() - t0

    tok = lm.tokenizer
    direct_user = [prompts.direct_prompt(q) for q in questions]
    direct_in = [prompts.render(tok, u, family, _direct_prefix(family)) for u in direct_user]
    cot_user = [prompts.cot_prompt(q, config.placement) for q in questions]
    cot_in = [prompts.render(tok, u, family) for u in cot_user]
    direct, gens = _run_model(config, lm, direct_in, cot_in, settings, timings)

    probe_ids = seeded_subset([q.id for q in questions], config.probe_n, config.seed)
    pidx = [i for i, q in enumerate(questions) if q.id in probe_ids]
    t = time.perf_counter()
    probed = probe_scores(lm, [cot_in[i] for i in pidx], [gens[i] for i in pidx], settings=settings,
                          probe_steps=config.probe_steps, batch_size=max(1, config.batch_size // 2))
    timings["probe_s"] = time.perf_counter() - t
    probe_by_index = dict(zip(pidx, probed))
    timings["model_load_s"] = lm.load_seconds

    records = [_record(q, d, g, probe_by_index.get(i), config.probe_steps)
               for i, (q, d, g) in enumerate(zip(questions, direct, gens))]
    _mark_qualitative_sample(records, config.n_qualitative, config.seed)
    probe_rows = _probe_rows(records, config.probe_steps)
    for row, kappa in zip(probe_rows, _probe_kappa_rows(records, config.probe_steps)):
        row.update(chance=kappa["chance"], kappa=kappa["kappa"])
    variant_metrics, variant_tables = _variants(config, lm, questions, records, direct, settings, timings)
    metrics = _metrics(config, records, sample, family, settings, probe_rows, len(pidx), direct, gens, probed, timings)
    metrics.update(variant_metrics)
    metrics["n_marked_any"] = sum(r["n_marked"] > 0 for r in records)
    example = questions[0]
    prompt_rows = [
        {"variant": "direct (recorded)", "system": direct_user[0].system, "text": direct_user[0].user},
        {"variant": "direct (model input)", "system": None, "text": direct_in[0]},
        {"variant": "CoT (recorded)", "system": cot_user[0].system, "text": cot_user[0].user},
        {"variant": "CoT (model input)", "system": None, "text": cot_in[0]},
    ]
    selection = [{"reason": k, "count": v} for k, v in sorted(sample.excluded.items())]
    selection.append({"reason": "eligible (text-only, four options)", "count": sample.pool_size})
    return Output(
        metrics=metrics,
        tables={"records": records, "by_subject": accuracy_by(records, "subject"),
                "by_group": accuracy_by(records, "group"), "probe": probe_rows,
                "letters": _letter_counts(records), "prompts": [{"id": example.id, **r} for r in prompt_rows],
                "selection": selection, **variant_tables},
        arrays={"flip_counts": np.array([flip_table([r["direct_correct"] for r in records],
                                                    [r["cot_correct"] for r in records])[k] for k in FLIPS])},
    )
