"""The committed offline CoT run's outputs are what today's decoding code produces.

Regenerates a handful of the stored chains (the shortest, so the test stays a few minutes) with
the offline configuration's model, dtype and decoding loop, and compares them token for token with
the stored text. Loads the 1.5B model (~80 s, ~9 GB of RAM): runs with ANALYSIS_SLOW_TESTS=1
(`make test-all`)."""

import dataclasses
import os

import pytest

SLOW = os.environ.get("ANALYSIS_SLOW_TESTS") == "1"


@pytest.mark.skipif(not SLOW, reason="loads the 1.5B model (~80 s, 9 GB); set ANALYSIS_SLOW_TESTS=1")
def test_stored_chains_are_reproduced(tmp_path, monkeypatch):
    from analysis.cot import prompts
    from analysis.cot.config import CotConfig
    from analysis.cot.generate import LM, JsonlCache, generate
    from analysis.data.scienceqa import sample_questions
    from analysis.experiments import lookup

    import analysis.cot.experiments  # noqa: F401  (registers the experiment)

    run = lookup("cot_scienceqa", "offline")
    assert run is not None, "no stored offline cot_scienceqa run for the current config"
    config = CotConfig(**{f.name: run.config[f.name] for f in dataclasses.fields(CotConfig) if f.name in run.config})
    records = {r["id"]: r for r in run.rows("records")}
    questions = [q for q in sample_questions(config.n_questions, config.seed, config.split, config.source).questions]
    shortest = sorted(questions, key=lambda q: records[q.id]["n_new_tokens"])[:4]
    lm = LM(config.model, device=config.device, dtype=config.dtype)
    texts = [prompts.render(lm.tokenizer, prompts.cot_prompt(q, config.placement), lm.family) for q in shortest]
    gens = generate(lm, texts, max_new_tokens=config.max_new_tokens, settings={"dtype": lm.dtype_name()},
                    batch_size=config.batch_size, cache=JsonlCache(tmp_path / "g.jsonl"))
    assert [g["text"] for g in gens] == [records[q.id]["cot_text"] for q in shortest]
