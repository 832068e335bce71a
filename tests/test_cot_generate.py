"""Batched scoring/generation, the raw-output cache and the early-answering probe, on a tiny
random Llama with SmolLM2's tokenizer (no pretrained weights needed, a few seconds)."""

import numpy as np
import pytest
import torch

from analysis.cot import prompts
from analysis.cot.generate import (LM, JsonlCache, _letter_scores, _probe_batch, _probe_key, generate,
                                   letter_token_ids, probe_scores, score_letters, step_cut_tokens)
from analysis.cot.prompts import PROBE_ANSWER_PREFIX


@pytest.fixture(scope="module")
def lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    from analysis.models import load_tokenizer

    tok = load_tokenizer("smollm2_135m")
    tok.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # sharper logits so greedy choices are not ties
        model.lm_head.weight.mul_(40)
    return LM("smollm2_135m", _model=model, _tok=tok)


TEXTS = ["Question: Which is a mammal?\nOptions:\nA. frog\nB. dog\nC. eel\nD. ant\nAnswer:",
         "Question: 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\n",
         "Short one."]
SETTINGS = {"dtype": "float32", "test": True}


def test_letter_tokens(lm):
    ids = letter_token_ids(lm.tokenizer)
    assert len(ids) == 4 and all(ids)
    assert [lm.tokenizer.decode([i[0]]).strip() for i in ids] == list("ABCD")


def test_batched_scores_equal_single(lm, tmp_path):
    batched = score_letters(lm, TEXTS, settings=SETTINGS, batch_size=3, cache=JsonlCache(tmp_path / "a.jsonl"))
    single = score_letters(lm, TEXTS, settings=SETTINGS, batch_size=1, cache=JsonlCache(tmp_path / "b.jsonl"))
    np.testing.assert_allclose([r["scores"] for r in batched], [r["scores"] for r in single], atol=1e-4)
    assert all(np.exp(r["scores"]).sum() < 1 for r in batched)  # log-probs over the whole vocabulary


def test_generation_cache_resumes_without_model(lm, tmp_path):
    cache = JsonlCache(tmp_path / "gen.jsonl")
    first = generate(lm, TEXTS[:2], max_new_tokens=6, settings=SETTINGS, batch_size=2, cache=cache,
                     probe_cache=JsonlCache(tmp_path / "p.jsonl"))
    assert not any(r["cached"] for r in first)
    # a fresh process: reload from disk, the model must not be touched for cached items
    broken = LM("smollm2_135m", _model=object(), _tok=lm.tokenizer)
    again = generate(broken, TEXTS[:2], max_new_tokens=6, settings=SETTINGS, cache=JsonlCache(tmp_path / "gen.jsonl"))
    assert all(r["cached"] for r in again) and [r["text"] for r in again] == [r["text"] for r in first]
    # new settings or a new prompt pay only for themselves
    more = generate(lm, TEXTS, max_new_tokens=6, settings=SETTINGS, batch_size=2, cache=cache,
                    probe_cache=JsonlCache(tmp_path / "p.jsonl"))
    assert [r["cached"] for r in more] == [True, True, False]
    # a torn last line (interrupted write) is ignored
    with open(tmp_path / "gen.jsonl", "a") as fh:
        fh.write('{"key": "abc", "te')
    assert len(JsonlCache(tmp_path / "gen.jsonl").data) == 3


def test_batched_generation_matches_one_at_a_time(lm, tmp_path):
    batched = generate(lm, TEXTS, max_new_tokens=5, settings=SETTINGS, batch_size=3,
                       cache=JsonlCache(tmp_path / "g1.jsonl"), probe_cache=JsonlCache(tmp_path / "p1.jsonl"))
    single = generate(lm, TEXTS, max_new_tokens=5, settings=SETTINGS, batch_size=1,
                      cache=JsonlCache(tmp_path / "g2.jsonl"), probe_cache=JsonlCache(tmp_path / "p2.jsonl"))
    assert [r["gen_ids"] for r in batched] == [r["gen_ids"] for r in single]


CHAINS = ["Reasoning: dogs are mammals.\nReasoning: frogs are amphibians.\nReasoning: so dog.\nAnswer: B",
          "Reasoning: two plus two.\nAnswer: B",
          "I think B."]


def _brute(lm, text, gen_ids, cut):
    tok = lm.tokenizer
    ids = tok.encode(text, add_special_tokens=False) + gen_ids[:cut] + tok.encode(PROBE_ANSWER_PREFIX, add_special_tokens=False)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[:, -1]
    return _letter_scores(logits, letter_token_ids(tok))[0]


def test_step_cuts(lm):
    tok = lm.tokenizer
    ids = tok.encode(CHAINS[0], add_special_tokens=False)
    cuts = step_cut_tokens(tok, ids, 3)
    assert cuts[0] == 0
    assert tok.decode(ids[:cuts[1]]) == "Reasoning: dogs are mammals.\n"
    assert tok.decode(ids[:cuts[3]]).endswith("so dog.\n")
    assert step_cut_tokens(tok, tok.encode(CHAINS[1], add_special_tokens=False), 3)[2:] == [None, None]


def test_probe_fresh_forward_equals_brute_force(lm, tmp_path):
    tok = lm.tokenizer
    gens = [{"gen_ids": tok.encode(c, add_special_tokens=False), "text": c} for c in CHAINS]
    out = probe_scores(lm, TEXTS, gens, settings=SETTINGS, batch_size=3, cache=JsonlCache(tmp_path / "p.jsonl"))
    assert sorted(out[0]["scores"]) == [0, 1, 2, 3] and sorted(out[1]["scores"]) == [0, 1]
    for text, g, o in zip(TEXTS, gens, out):
        for k, scores in o["scores"].items():
            np.testing.assert_allclose(scores, _brute(lm, text, g["gen_ids"], o["cuts"][k]), atol=1e-4)


def test_probe_on_generation_layout_equals_brute_force(lm, tmp_path):
    """The in-generation path: one padded prompt length, left pads, generations padded at the end,
    and a KV cache that lacks the last token (as ``generate`` returns it)."""
    tok = lm.tokenizer
    prompts_ids = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    gens = [tok.encode(c, add_special_tokens=False) for c in CHAINS]
    P, G = max(map(len, prompts_ids)), max(map(len, gens)) + 1
    pad = tok.pad_token_id
    rows, masks = [], []
    for p, g in zip(prompts_ids, gens):
        rows.append([pad] * (P - len(p)) + p + g + [pad] * (G - len(g)))
        masks.append([0] * (P - len(p)) + [1] * (len(p) + G))
    ids, mask = torch.tensor(rows)[:, :-1], torch.tensor(masks)[:, :-1]
    with torch.no_grad():
        out = lm.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                       use_cache=True)
    kv = getattr(out, "cache", None) or out.past_key_values
    cache = JsonlCache(tmp_path / "p.jsonl")
    items = [dict(text=t, gen_ids=g, row=r, pad=P - len(p), prompt_len=P)
             for r, (t, g, p) in enumerate(zip(TEXTS, gens, prompts_ids))]
    _probe_batch(lm, items, kv, SETTINGS, 3, cache)
    for it in items:
        rec = cache.get(_probe_key(lm, it["text"], it["gen_ids"], SETTINGS, 3))
        assert rec["scores"]
        for k, scores in rec["scores"].items():
            np.testing.assert_allclose(scores, _brute(lm, it["text"], it["gen_ids"], rec["cuts"][int(k)]), atol=1e-4)


def test_prompts_format():
    from analysis.data.scienceqa import Question

    q = Question("1", "Which is hot?", "It is summer.", ("sun", "ice", "snow", "sleet"), 0)
    cot = prompts.cot_prompt(q)
    assert cot.system == prompts.COT_INSTRUCTION and "Context: It is summer." in cot.user
    assert "(A) sun\n(B) ice\n(C) snow\n(D) sleet" in cot.user
    assert "Reasoning: <step 1>" in cot.text and "Answer: <final letter>" in cot.text
    assert prompts.direct_prompt(q).user.endswith("\n" + prompts.DIRECT_ANSWER_CUE)
    assert "Context" not in prompts.direct_prompt(Question("2", "Q?", "", ("a", "b", "c", "d"), 1)).user


def test_greedy_loop_matches_transformers_generate(lm):
    """The row-dropping greedy loop gives what transformers' greedy generate gives, row by row."""
    from analysis.cot.generate import greedy_generate_stream

    tok = lm.tokenizer
    ours = greedy_generate_stream(lm, [tok.encode(t, add_special_tokens=False) for t in TEXTS], 7, len(TEXTS))
    for text, mine in zip(TEXTS, ours):
        one = tok([text], return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            ref = lm.model.generate(**one, do_sample=False, max_new_tokens=7, pad_token_id=tok.pad_token_id,
                                    eos_token_id=tok.eos_token_id)
        ref_ids = ref[0, one.input_ids.shape[1]:].tolist()
        if tok.eos_token_id in ref_ids:
            ref_ids = ref_ids[:ref_ids.index(tok.eos_token_id)]
        assert mine == ref_ids


def test_generation_probe_matches_fresh_probe(lm, tmp_path):
    """Early answers computed inside generation (on its KV cache) equal a fresh computation."""
    pcache = JsonlCache(tmp_path / "p.jsonl")
    gens = generate(lm, TEXTS, max_new_tokens=6, settings=SETTINGS, batch_size=3, probe=True,
                    cache=JsonlCache(tmp_path / "g.jsonl"), probe_cache=pcache)
    inline = probe_scores(lm, TEXTS, gens, settings=SETTINGS, cache=pcache)
    assert all(r["cached"] for r in inline)
    fresh = probe_scores(lm, TEXTS, gens, settings=SETTINGS, cache=JsonlCache(tmp_path / "fresh.jsonl"))
    for a, b in zip(inline, fresh):
        assert a["scores"].keys() == b["scores"].keys()
        for k in a["scores"]:
            np.testing.assert_allclose(a["scores"][k], b["scores"][k], atol=1e-4)


def test_seq2seq_path_runs(tmp_path):
    """The full profile's seq2seq path (flan-t5): plain prompt, decoder-start letter scores,
    generate, and early answering; a tiny random T5 with SmolLM2's tokenizer stands in."""
    from transformers import T5Config, T5ForConditionalGeneration

    from analysis.models import load_tokenizer

    tok = load_tokenizer("smollm2_135m")
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
    t5 = LM("flan_t5_base", _model=T5ForConditionalGeneration(config).eval(), _tok=tok)
    assert t5.family == "seq2seq"
    texts = [prompts.render(tok, prompts.Prompt(user=t), "seq2seq") for t in TEXTS]
    assert texts == TEXTS  # seq2seq models get the plain prompt
    direct = score_letters(t5, texts, settings=SETTINGS, batch_size=2, cache=JsonlCache(tmp_path / "d.jsonl"))
    assert all(len(r["scores"]) == 4 and r["letter"] in "ABCD" for r in direct)
    gens = generate(t5, texts, max_new_tokens=5, settings=SETTINGS, batch_size=2, probe=True,
                    cache=JsonlCache(tmp_path / "g.jsonl"), probe_cache=JsonlCache(tmp_path / "p.jsonl"))
    assert all(r["n_new_tokens"] <= 5 for r in gens)
    chains = [{"gen_ids": [], "text": c} for c in CHAINS]
    probed = probe_scores(t5, texts, chains, settings=SETTINGS, cache=JsonlCache(tmp_path / "p2.jsonl"))
    # a chain without markers is one step of prose ("I think B."): cut before and after it
    assert sorted(probed[0]["scores"]) == [0, 1, 2, 3] and sorted(probed[2]["scores"]) == [0, 1]


MORE_TEXTS = TEXTS + ["Question: Which is a liquid?\nOptions:\nA. milk\nB. rock\nC. wood\nD. ice\n",
                      "Q: Pick the bird.\nA. owl\nB. cat\nC. cod\nD. bee\nThink first."]


def test_continuous_batching_matches_one_at_a_time(lm):
    """Rows finish at different steps, waiting prompts take their places (KV caches merged with
    left padding, common padding trimmed): every row still decodes as if alone."""
    from analysis.cot.generate import greedy_generate_stream

    tok = lm.tokenizer
    prompts_ids = [tok.encode(t, add_special_tokens=False) for t in MORE_TEXTS]
    budgets = [3, 11, 5, 14, 2]
    admitted = []

    def on_finish(kv, finished):
        admitted.append((kv.layers[0].keys.shape[0], [item for _, item, _, _, _ in finished]))

    streamed = greedy_generate_stream(lm, prompts_ids, budgets, 2, on_finish)
    alone = [greedy_generate_stream(lm, [p], [b], 1)[0] for p, b in zip(prompts_ids, budgets)]
    assert streamed == alone
    assert [len(g) for g in streamed] == budgets  # the random model emits no end token within these budgets
    # the batch stayed full while prompts were waiting: the first finish frees a row for item 2
    assert admitted[0] == (2, [0]) and admitted[1][0] == 2


@pytest.mark.parametrize("loop", ["stream", "slots"])
def test_probe_inside_continuous_batch_equals_brute_force(lm, tmp_path, loop):
    """The early answer at zero steps, read from the batch's cache with each row's own first column
    and prompt length (merged left-padded caches, or the slot cache with its shared prefix), equals
    a fresh forward pass of prompt + "Answer:"."""
    from analysis.cot.generate import greedy_generate_stream

    tok = lm.tokenizer
    texts = MORE_TEXTS if loop == "stream" else [SHARED + t for t in MORE_TEXTS]
    prompts_ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    cache = JsonlCache(tmp_path / "p.jsonl")
    done = {}

    def on_finish(kv, finished):
        items = [dict(text=texts[item], gen_ids=ids, row=row, pad=pad, prompt_len=plen)
                 for row, item, ids, pad, plen in finished]
        _probe_batch(lm, items, kv, SETTINGS, 3, cache)
        done.update({item: list(ids) for _, item, ids, _, _ in finished})

    if loop == "stream":
        greedy_generate_stream(lm, prompts_ids, [4, 9, 2, 7, 3], 2, on_finish)
    else:
        _slots(lm, prompts_ids, [4, 9, 2, 7, 3], 2, on_finish)
    for item, text in enumerate(texts):
        rec = cache.get(_probe_key(lm, text, done[item], SETTINGS, 3))
        np.testing.assert_allclose(rec["scores"]["0"], _brute(lm, text, done[item], 0), atol=1e-4)


# ---- chains without newlines (flan-t5's tokenizer has no newline token)
ONE_LINE = "Reasoning: dogs are mammals. Reasoning: frogs are amphibians. Reasoning: so dog. Answer: B"


def _brute_suffix(lm, text, gen_ids, cut):
    from analysis.cot.generate import probe_suffix

    tok = lm.tokenizer
    suffix = probe_suffix(tok, gen_ids, cut)
    ids = tok.encode(text, add_special_tokens=False) + gen_ids[:cut] + tok.encode(suffix, add_special_tokens=False)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[:, -1]
    return _letter_scores(logits, letter_token_ids(tok))[0]


def test_step_cuts_one_line_chain(lm):
    tok = lm.tokenizer
    ids = tok.encode(ONE_LINE, add_special_tokens=False)
    cuts = step_cut_tokens(tok, ids, 3)
    assert None not in cuts
    texts = [tok.decode(ids[:c]) for c in cuts]
    assert texts[1].rstrip() == "Reasoning: dogs are mammals."
    assert texts[2].rstrip().endswith("frogs are amphibians.") and "so dog" not in texts[2]
    assert texts[3].rstrip().endswith("so dog.") and "Answer" not in texts[3]
    # unchanged for newline-separated chains (the offline model's outputs)
    multi = tok.encode(CHAINS[0], add_special_tokens=False)
    assert tok.decode(multi[:step_cut_tokens(tok, multi, 3)[1]]) == "Reasoning: dogs are mammals.\n"


def test_probe_one_line_chain_equals_brute_force(lm, tmp_path):
    tok = lm.tokenizer
    gens = [{"gen_ids": tok.encode(c, add_special_tokens=False), "text": c} for c in (ONE_LINE, CHAINS[0])]
    out = probe_scores(lm, TEXTS[:2], gens, settings=SETTINGS, batch_size=2, cache=JsonlCache(tmp_path / "p.jsonl"))
    for text, g, o in zip(TEXTS, gens, out):
        assert sorted(o["scores"]) == [0, 1, 2, 3]
        for k, scores in o["scores"].items():
            np.testing.assert_allclose(scores, _brute_suffix(lm, text, g["gen_ids"], o["cuts"][k]), atol=1e-4)


def test_newline_free_tokenizer_chain_cuts_and_seq2seq_probe(tmp_path):
    """A T5 tokenizer (no newline token: the multi-line format comes back on one line) with a tiny
    random T5: steps are found, no probe prefix holds a later step or the final answer, and every
    cut is scored."""
    from transformers import T5Config, T5ForConditionalGeneration

    from analysis.cot.generate import seq2seq_probe_prefixes
    from fixtures.standins import t5_tokenizer

    tok = t5_tokenizer()
    chain = tok.decode(tok.encode(CHAINS[0]), skip_special_tokens=True)  # what flan-t5 would emit
    assert "\n" not in chain and chain.count("Reasoning:") == 3
    cuts, prefixes = seq2seq_probe_prefixes(chain, 3)
    assert None not in cuts and len(prefixes) == 4
    assert prefixes[1].startswith("Reasoning: dogs are mammals.") and prefixes[1].count("Reasoning:") == 1
    assert all(p.endswith(" Answer:") and p.count("Answer:") == 1 for p in prefixes[1:])
    assert prefixes[0] == PROBE_ANSWER_PREFIX
    # decoder-only cuts on the same newline-free ids
    ids = tok.encode(chain, add_special_tokens=False)
    dcuts = step_cut_tokens(tok, ids, 3)
    assert None not in dcuts and "Answer" not in tok.decode(ids[:dcuts[3]])
    assert tok.decode(ids[:dcuts[1]]).count("Reasoning") == 1
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    t5 = LM("flan_t5_base", _model=T5ForConditionalGeneration(config).eval(), _tok=tok)
    out = probe_scores(t5, [TEXTS[0]], [{"gen_ids": ids, "text": chain}], settings=SETTINGS,
                       cache=JsonlCache(tmp_path / "p.jsonl"))
    assert sorted(out[0]["scores"]) == [0, 1, 2, 3]


# ---- the slot loop (analysis.cot.decode): the reference loop's outputs, the probe's layout
SHARED = "<|im_start|>system\nYou are a careful reasoning assistant.<|im_end|>\n<|im_start|>user\n"


def _slots(lm, prompts_ids, budgets, batch, on_finish=None, share_prefix=True, chunk=16, **kw):
    from analysis.cot.decode import greedy_generate_slots
    from analysis.cot.generate import _answer_line_done, _eos_ids

    return greedy_generate_slots(lm.model, lm.tokenizer, prompts_ids, budgets, batch, _eos_ids(lm),
                                 _answer_line_done(lm.tokenizer), on_finish, prefill_chunk=chunk,
                                 share_prefix=share_prefix, **kw)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_slot_loop_matches_reference_loop(lm, share_prefix):
    """Slots reused by waiting prompts, the shared prefix computed once, the batch shrinking in the
    tail and a capacity small enough to force left shifts: every row decodes as it does alone in
    the reference loop (float32: exact)."""
    from analysis.cot.generate import greedy_generate_stream

    tok = lm.tokenizer
    texts = [SHARED + t for t in MORE_TEXTS]
    prompts_ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    budgets = [3, 5, 14, 2, 31]  # the longest admitted last: the counter passes the capacity
    admitted = []

    def on_finish(kv, finished):
        admitted.append([item for _, item, _, _, _ in finished])

    stats = {}
    ours = _slots(lm, prompts_ids, budgets, 2, on_finish, share_prefix=share_prefix, chunk=1, slack=2, stats=stats)
    alone = [greedy_generate_stream(lm, [p], [b], 1)[0] for p, b in zip(prompts_ids, budgets)]
    assert ours == alone
    assert stats["shifts"] >= 1 and stats["shrinks"] >= 1
    assert (stats["shared_prefix"] > 0) == share_prefix
    assert [len(g) for g in ours] == budgets
    assert sorted(i for batch in admitted for i in batch) == list(range(5))


def test_slot_loop_shares_only_a_real_prefix():
    from analysis.cot.decode import common_prefix

    assert common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix([[1, 2], [1, 2]]) == 1  # each prompt keeps one token of its own
    assert common_prefix([[7], [8, 9]]) == 0


def test_cached_generation_reused_under_another_budget(lm, tmp_path):
    """The budget is not part of the cache key: a shorter budget cuts a cached chain, a longer one
    reuses chains that ended by themselves and regenerates only those the old budget stopped."""
    cache = JsonlCache(tmp_path / "g.jsonl")
    short = generate(lm, TEXTS, max_new_tokens=5, settings=SETTINGS, batch_size=2, cache=cache)
    assert all(g["hit_max"] and g["n_new_tokens"] == 5 for g in short)
    longer = generate(lm, TEXTS, max_new_tokens=9, settings=SETTINGS, batch_size=2, cache=cache)
    assert not any(g["cached"] for g in longer)  # all three had hit the smaller budget
    again = generate(lm, TEXTS, max_new_tokens=3, settings=SETTINGS, batch_size=2, cache=cache)
    assert all(g["cached"] for g in again)
    assert [g["gen_ids"] for g in again] == [g["gen_ids"][:3] for g in longer]


def test_larger_budget_continues_cut_chains(lm, tmp_path):
    """A chain cut by a smaller budget is continued, not regenerated: the result equals a fresh
    generation under the larger budget, and the probe sees the whole chain."""
    cache, fresh = JsonlCache(tmp_path / "g.jsonl"), JsonlCache(tmp_path / "f.jsonl")
    generate(lm, MORE_TEXTS, max_new_tokens=4, settings=SETTINGS, batch_size=2, cache=cache, probe=True,
             probe_cache=JsonlCache(tmp_path / "p.jsonl"))
    continued = generate(lm, MORE_TEXTS, max_new_tokens=11, settings=SETTINGS, batch_size=2, cache=cache, probe=True,
                         probe_cache=JsonlCache(tmp_path / "p.jsonl"))
    direct = generate(lm, MORE_TEXTS, max_new_tokens=11, settings=SETTINGS, batch_size=2, cache=fresh)
    assert [g["gen_ids"] for g in continued] == [g["gen_ids"] for g in direct]
    probe_cache = JsonlCache(tmp_path / "p.jsonl")
    for text, g in zip(MORE_TEXTS, continued):
        rec = probe_cache.get(_probe_key(lm, text, g["gen_ids"], SETTINGS, 3))
        np.testing.assert_allclose(rec["scores"]["0"], _brute(lm, text, g["gen_ids"], 0), atol=1e-4)
