"""Batched greedy generation and letter scoring with an on-disk raw-output cache.

Three kinds of model calls, each cached per (model, exact text the model reads, settings) in an
append-only jsonl file under ``cache_dir()/cot/`` (one line per item, written as each batch
finishes, so an interrupted run loses at most one batch and a later run pays only for new items):

- ``score_letters``: next-token log-probabilities of A-D after a text (the direct answer);
- ``generate``: greedy generation, stopped at the ``Answer: X`` line (the chain of thought),
  continuous batching of length-sorted texts (a finished row's place goes to the next text at
  once); when asked, the early-answering probe runs on the same batch reusing generation's KV
  cache (``probe``);
- ``probe``: for a chain of thought cut after k reasoning steps, the A-D scores after
  ``Answer:``. The prompt + chain's KV cache is computed once per item (or taken from generation)
  and every cut point reuses it: only the few suffix tokens are new.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import cache_dir
from ..progress import progress
from ..store import canonical_json
from .decode import _cache_of, greedy_generate_slots
from .extract import chain_steps
from .prompts import PROBE_ANSWER_PREFIX

LETTERS = "ABCD"
STOP_RULE = "answer-line-v1"  # stop a row once its new text contains "Answer: <A-D>"
CUT_RULE = "chain-steps-v2"  # where the probe cuts a chain (extract.chain_steps); part of the probe's cache key
_STOP_RX = re.compile(r"answer\s*:\s*\(?\s*[A-D](?![A-Za-z])", re.IGNORECASE)


# ----------------------------------------------------------------------------- cache
class JsonlCache:
    """Append-only ``key -> record`` store in one jsonl file (a torn last line is ignored)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path) as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by an interrupted write
                    self.data[rec["key"]] = rec

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put_many(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            for rec in records:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                self.data[rec["key"]] = rec
            fh.flush()
            os.fsync(fh.fileno())


def cache_key(model: str, text: str, settings: dict) -> str:
    """Key of one cached model output: ``model`` is ``LM.cache_id`` (name and weights), so outputs of
    re-pinned or replaced weights are never reused."""
    return hashlib.sha256(canonical_json({"model": model, "text": text, "settings": settings}).encode()).hexdigest()


def default_cache(kind: str) -> JsonlCache:
    return JsonlCache(cache_dir() / "cot" / f"{kind}.jsonl")


# ----------------------------------------------------------------------------- model
@dataclass
class LM:
    """A registry model loaded on first use (a fully cached run never loads it)."""

    name: str
    device: str | None = None
    dtype: str | None = None  # "float32", "bfloat16", ...; None: the registry's choice (models.load)
    _model: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)
    load_seconds: float = 0.0

    @property
    def family(self) -> str:
        from ..models import spec

        return spec(self.name).family

    @property
    def cache_id(self) -> str:
        """The model's name and what identifies its weights (``models.weights_id``): cache keys use it."""
        from ..models import weights_id

        return f"{self.name}@{weights_id(self.name)}"

    @property
    def tokenizer(self):
        if self._tok is None:
            from ..models import load_tokenizer

            tok = load_tokenizer(self.name)
            tok.padding_side = "left"  # decoder-only batches: the last position is the next token
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._tok = tok
        return self._tok

    @property
    def model(self):
        if self._model is None:
            from ..models import load

            started = time.perf_counter()
            self._model = load(self.name, device=self.device, dtype=self.dtype)
            self.load_seconds = time.perf_counter() - started
        return self._model

    def dtype_name(self) -> str:
        from ..models import pick_device, pick_dtype, hf_source

        if self.dtype is not None:
            return self.dtype
        device = pick_device(self.device)
        try:
            gguf = hf_source(self.name).gguf_file
        except Exception:
            gguf = None
        return "float32" if gguf else str(pick_dtype(device)).replace("torch.", "")


def letter_token_ids(tokenizer) -> list[list[int]]:
    """For A-D, the single tokens that spell the letter, with and without a leading space."""
    out = []
    for letter in LETTERS:
        ids = set()
        for variant in (letter, " " + letter):
            toks = tokenizer.encode(variant, add_special_tokens=False)
            toks = [t for t in toks if tokenizer.decode([t]).strip()]  # drop a lone-space token (T5's "▁")
            if len(toks) == 1:
                ids.add(toks[0])
        if not ids:
            raise RuntimeError(f"tokenizer has no single token for {letter!r}")
        out.append(sorted(ids))
    return out


def _letter_scores(logits_last, letter_ids) -> np.ndarray:
    """[B, V] logits -> [B, 4] log-probabilities (max over each letter's spellings)."""
    import torch

    logp = torch.log_softmax(logits_last.float(), dim=-1)
    cols = [logp[:, ids].max(dim=-1).values for ids in letter_ids]
    return torch.stack(cols, dim=-1).cpu().numpy()


ADAPTIVE_THREADS = False  # set by compute when CotConfig.torch_threads == -1


def adapt_threads() -> int:
    """With ``ADAPTIVE_THREADS``: all cores while the machine is otherwise idle, one thread while
    other jobs run (on a shared 2-core machine two threads then wait on each other at every small
    op: decoding measured 2-3x slower than with one). Called before each batch."""
    import torch

    if ADAPTIVE_THREADS:
        mine = torch.get_num_threads()
        others = os.getloadavg()[0] - mine  # the 1-minute load includes our own threads
        torch.set_num_threads((os.cpu_count() or 1) if others < 0.5 else 1)
    return torch.get_num_threads()


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


def _positions(mask):
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


# ----------------------------------------------------------------------------- direct scores
def score_letters(lm: LM, texts: list[str], *, settings: dict, batch_size: int = 8,
                  cache: JsonlCache | None = None, decoder_prefix: str = "", desc: str = "direct") -> list[dict]:
    """A-D next-token log-probs after each text: ``{"scores": [4 floats], "letter", "cached"}``."""
    import torch

    cache = cache or default_cache("direct")
    settings = {**settings, "kind": "letter-scores", "decoder_prefix": decoder_prefix}
    keys = [cache_key(lm.cache_id, t, settings) for t in texts]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    if todo:
        tok, model = lm.tokenizer, lm.model
        letter_ids = letter_token_ids(tok)
        todo.sort(key=lambda i: len(texts[i]))
        bar = progress(total=len(todo), desc=f"{desc} ({lm.name})", unit="q")
        for chunk in _batches(todo, batch_size):
            adapt_threads()
            started = time.perf_counter()
            batch = [texts[i] for i in chunk]
            with torch.inference_mode():
                if lm.family == "seq2seq":
                    enc = tok(batch, return_tensors="pt", padding=True).to(model.device)
                    dec = _decoder_ids(model, tok, [decoder_prefix] * len(batch))
                    logits = model(**enc, decoder_input_ids=dec["ids"], decoder_attention_mask=dec["mask"]).logits
                    last = logits[torch.arange(len(batch)), dec["last"]]
                else:
                    enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                    logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                   position_ids=_positions(enc.attention_mask), logits_to_keep=1).logits
                    last = logits[:, -1]
            scores = _letter_scores(last, letter_ids)
            per_item = (time.perf_counter() - started) / len(chunk)
            cache.put_many([
                {"key": keys[i], "model": lm.name, "scores": s.tolist(), "seconds": per_item}
                for i, s in zip(chunk, scores)
            ])
            bar.update(len(chunk))
        bar.close()
    out = []
    for i, k in enumerate(keys):
        rec = cache.get(k)
        out.append({"scores": rec["scores"], "letter": LETTERS[int(np.argmax(rec["scores"]))],
                    "cached": i not in todo, "seconds": rec["seconds"]})
    return out


def _decoder_ids(model, tok, prefixes: list[str]):
    """Seq2seq decoder inputs: start token + each prefix, right-padded; index of each last token."""
    import torch

    start = model.config.decoder_start_token_id
    seqs = [[start] + tok.encode(p, add_special_tokens=False) if p else [start] for p in prefixes]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        mask[r, :len(s)] = 1
    last = torch.tensor([len(s) - 1 for s in seqs])
    return {"ids": ids.to(model.device), "mask": mask.to(model.device), "last": last.to(model.device)}


# ----------------------------------------------------------------------------- generation
class _AnswerLineStop:
    """Per-row stop once the new text holds an ``Answer: X`` line (rows finish independently)."""

    def __init__(self, tokenizer, prompt_len: int):
        self.tok, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        # an "Answer: X" that just appeared lies in the last few tokens: decode those first, and the
        # whole new text only to confirm (decoding every row's whole text at every step is
        # quadratic in the length; greedy_generate_stream checks the same way)
        new = input_ids[:, self.prompt_len:]
        tails = self.tok.batch_decode(new[:, -12:], skip_special_tokens=True)
        done = [bool(_STOP_RX.search(t)) and bool(_STOP_RX.search(self.tok.decode(row, skip_special_tokens=True)))
                for t, row in zip(tails, new)]
        return torch.tensor(done, device=input_ids.device)


def _stopping(tok, prompt_len):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __init__(self):
            self.inner = _AnswerLineStop(tok, prompt_len)

        def __call__(self, input_ids, scores, **kwargs):
            return self.inner(input_ids, scores)

    return StoppingCriteriaList([Stop()])


def _clean_gen_ids(ids: list[int], tok) -> list[int]:
    """Generated ids up to (not including) the first end-of-sequence or pad token."""
    stops = {t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None}
    out = []
    for t in ids:
        if t in stops:
            break
        out.append(int(t))
    return out


def step_cut_tokens(tok, gen_ids: list[int], max_steps: int = 3) -> list[int | None]:
    """Token counts of the generation that end after its k-th step (``extract.chain_steps``: the
    whole chain, marked or not), k = 0..max_steps.

    k = 0 is 0 tokens (no reasoning). A step on its own line is cut after its newline; a step
    followed on the same line by the next marker (outputs without newlines, e.g. a tokenizer with
    no newline token) is cut at the last token boundary before that marker, provided the cut
    holds the whole step. None where the chain has fewer than k steps, or the k-th step runs to the
    end of the text (no newline or marker after it: the cut would split an unfinished step).
    """
    text = tok.decode(gen_ids, skip_special_tokens=True)
    steps = chain_steps(text)
    cuts: list[int | None] = [0]
    prefix_len = [len(tok.decode(gen_ids[:i], skip_special_tokens=True)) for i in range(len(gen_ids) + 1)]
    for k in range(1, max_steps + 1):
        if k > len(steps):
            cuts.append(None)
            continue
        end_char = steps[k - 1][2]
        if text[:end_char].endswith("\n"):
            cuts.append(next((i for i, n in enumerate(prefix_len) if n >= end_char), None))
            continue
        step_end = len(text[:end_char].rstrip())
        if end_char >= len(text.rstrip()) or step_end == 0:
            cuts.append(None)  # runs to the end of the output: unfinished
            continue
        fits = [i for i, n in enumerate(prefix_len) if step_end <= n <= end_char]
        cuts.append(fits[-1] if fits else None)
    return cuts


def probe_suffix(tok, gen_ids: list[int], cut: int) -> str:
    """What the probe appends after a cut: ``"Answer:"`` after a newline (or at k = 0), else
    ``" Answer:"`` (a one-line chain, where the answer marker follows a space)."""
    if cut == 0:
        return PROBE_ANSWER_PREFIX
    before = tok.decode(gen_ids[:cut], skip_special_tokens=True)
    return PROBE_ANSWER_PREFIX if before[-1:].isspace() else " " + PROBE_ANSWER_PREFIX


def _eos_ids(lm: LM) -> set[int]:
    """Token ids that end a reply: the tokenizer's eos/pad, the generation config's eos, <|im_end|>."""
    tok = lm.tokenizer
    ids = {t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None}
    gen_eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tok.unk_token_id and im_end >= 0:
        ids.add(im_end)
    return ids


@dataclass
class _Row:
    """One active row of the continuous batch: its item, and where its tokens sit in the KV cache."""
    item: int
    pad: int  # left pads before the prompt in the cache
    prompt_len: int  # cache index where the generation starts (pads + prompt)


def _map_cache(fn, *caches):
    """A new KV cache whose every layer holds ``fn`` of the keys (and of the values) of ``caches``."""
    from transformers import DynamicCache

    new = DynamicCache()
    for li, layers in enumerate(zip(*(c.layers for c in caches))):
        new.update(fn(*(x.keys for x in layers)), fn(*(x.values for x in layers)), li)
    return new


def _pad_left(kv, mask, rows: list[_Row], width: int):
    """Left-pad a batch's KV cache (zeros) and mask (0) to ``width`` positions; shifts the rows."""
    import torch

    add = width - mask.shape[1]
    if add == 0:
        return kv, mask
    for r in rows:
        r.pad += add
        r.prompt_len += add
    kv = _map_cache(lambda t: torch.cat([t.new_zeros(t.shape[:2] + (add, t.shape[3])), t], dim=2), kv)
    return kv, torch.cat([mask.new_zeros((mask.shape[0], add)), mask], dim=1)


def _trim_left(kv, mask, rows: list[_Row]):
    """Drop the cache positions that are padding for every row (a finished long row leaves them)."""
    cut = min(r.pad for r in rows)
    if cut == 0:
        return kv, mask
    for r in rows:
        r.pad -= cut
        r.prompt_len -= cut
    return _map_cache(lambda t: t[:, :, cut:], kv), mask[:, cut:]


def _prefill(lm: LM, prompts: list[list[int]], items: list[int]):
    """Run the prompts of ``items`` as one left-padded batch: (kv, mask, next token, next position, rows)."""
    import torch
    from transformers import DynamicCache

    device = lm.model.device
    width = max(len(prompts[i]) for i in items)
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for r, i in enumerate(items):
        ids[r, width - len(prompts[i]):] = torch.tensor(prompts[i])
        mask[r, width - len(prompts[i]):] = 1
    mask = mask.to(device)
    pos = _positions(mask)
    with torch.inference_mode():
        out = lm.model(input_ids=ids.to(device), attention_mask=mask, position_ids=pos, cache=DynamicCache(),
                       use_cache=True, logits_to_keep=1)
    rows = [_Row(i, width - len(prompts[i]), width) for i in items]
    return _cache_of(out), mask, out.logits[:, -1].argmax(-1), pos[:, -1] + 1, rows


def greedy_generate_stream(lm: LM, prompts: list[list[int]], max_new_tokens: int | list[int], batch_size: int,
                           on_finish=None) -> list[list[int]]:
    """Greedy decoding with continuous batching: up to ``batch_size`` rows decode together, a row
    leaves as soon as it is finished and a waiting prompt takes its place (its prefill is merged
    into the batch's KV cache with left padding), so the batch stays full until the queue is empty.

    ``prompts``: token ids per item (no padding), admitted in the given order; ``max_new_tokens``:
    one budget, or one per item. A row finishes at an end-of-sequence token, at its ``Answer: X``
    line, or at its budget. On CPU a decoding step costs about the same for 8 rows as for 16
    (``bench/bench_cot_decode.py``), so full batches cut the cost per token.
    ``on_finish(kv, [(row, item, ids, pad, prompt_len)])`` is called before finished rows leave the
    cache, which then holds, per row, ``pad`` zeros, the prompt and all generated tokens but the last.
    Returns the generated ids per item (end token excluded).
    """
    import torch

    model, tok = lm.model, lm.tokenizer
    eos = _eos_ids(lm)
    stop = _answer_line_done(tok)
    device = model.device
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    queue = list(range(len(prompts)))
    gen: list[list[int]] = [[] for _ in prompts]
    rows: list[_Row] = []
    kv = mask = next_tok = next_pos = None
    while queue or rows:
        if queue and len(rows) < batch_size:
            take, queue = queue[:batch_size - len(rows)], queue[batch_size - len(rows):]
            new_kv, new_mask, new_tok, new_pos, new_rows = _prefill(lm, prompts, take)
            if rows:
                width = max(mask.shape[1], new_mask.shape[1])
                kv, mask = _pad_left(kv, mask, rows, width)
                new_kv, new_mask = _pad_left(new_kv, new_mask, new_rows, width)
                kv = _map_cache(lambda a, b: torch.cat([a, b]), kv, new_kv)
                mask = torch.cat([mask, new_mask])
                next_tok, next_pos = torch.cat([next_tok, new_tok]), torch.cat([next_pos, new_pos])
                rows = rows + new_rows
            else:
                kv, mask, next_tok, next_pos, rows = new_kv, new_mask, new_tok, new_pos, new_rows
        # every active row holds exactly one token not yet recorded: record it, or finish the row
        finished = []
        for j, row in enumerate(rows):
            t = int(next_tok[j])
            if t in eos:
                finished.append(j)
                continue
            g = gen[row.item]
            g.append(t)
            if len(g) >= budgets[row.item] or stop(g):
                finished.append(j)
        if finished:
            if on_finish is not None:
                on_finish(kv, [(j, rows[j].item, gen[rows[j].item], rows[j].pad, rows[j].prompt_len)
                               for j in finished])
            gone = set(finished)
            keep = [j for j in range(len(rows)) if j not in gone]
            rows = [rows[j] for j in keep]
            if not rows:
                kv = mask = next_tok = next_pos = None
                continue
            idx = torch.tensor(keep, device=device)
            kv.batch_select_indices(idx)
            next_tok, next_pos, mask = next_tok[idx], next_pos[idx], mask[idx]
            kv, mask = _trim_left(kv, mask, rows)
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        with torch.inference_mode():
            out = model(input_ids=next_tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                        cache=kv, use_cache=True)
        kv = _cache_of(out)
        next_tok = out.logits[:, -1].argmax(-1)
        next_pos = next_pos + 1
    return gen


def _hf_generate(lm: LM, enc, max_new_tokens: int) -> list[list[int]]:
    """Seq2seq models: transformers' generate (greedy, stopped at the Answer line)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    with torch.inference_mode():
        out = model.generate(
            **enc, do_sample=False, max_new_tokens=max_new_tokens, num_beams=1,
            temperature=None, top_p=None, top_k=None, repetition_penalty=1.0,
            stopping_criteria=_stopping(tok, 1), pad_token_id=tok.pad_token_id,
            return_dict_in_generate=True,
        )
    return [_clean_gen_ids(row[1:].tolist(), tok) for row in out.sequences]


def _answer_line_done(tok):
    """``stop(ids)``: whether generated ids hold an ``Answer: X`` line (the last few tokens are
    decoded first; the whole text only to confirm, so the check stays linear in the length)."""
    def stop(ids: list[int]) -> bool:
        return bool(_STOP_RX.search(tok.decode(ids[-12:], skip_special_tokens=True))) \
            and bool(_STOP_RX.search(tok.decode(ids, skip_special_tokens=True)))
    return stop


def _within_budget(rec: dict | None, budget: int, tok) -> dict | None:
    """A cached generation as it would be under ``budget`` new tokens, or None if it cannot tell.

    Greedy decoding does not depend on the budget until the budget stops it: a generation that
    ended by itself after n tokens is the answer for any budget >= n, and its first ``budget``
    tokens (cut there) for a smaller one; one that was stopped by its budget answers smaller
    budgets only. So a larger budget regenerates only the items that hit the smaller one."""
    if rec is None:
        return None
    ids, hit, n = rec["gen_ids"], rec["hit_max"], rec["n_new_tokens"]
    if n < budget and hit:
        return None  # stopped early by a smaller budget: the rest is unknown
    if n <= budget:
        return rec
    cut = ids[:budget]
    return {**rec, "gen_ids": cut, "text": tok.decode(cut, skip_special_tokens=True), "n_new_tokens": budget,
            "hit_max": True}


def generate(lm: LM, texts: list[str], *, max_new_tokens: int, settings: dict, batch_size: int = 8,
             cache: JsonlCache | None = None, probe: bool = False, probe_steps: int = 3,
             probe_cache: JsonlCache | None = None, desc: str = "CoT", loop: str = "slots") -> list[dict]:
    """Greedy generation for each text (cached): ``{"text", "gen_ids", "n_new_tokens", ...}``.

    Decoder-only models decode with continuous batching: ``batch_size`` rows, each replaced by a
    waiting text as soon as it finishes; ``loop="slots"`` (``decode.greedy_generate_slots``: one
    preallocated KV cache, the shared prompt prefix computed once) or ``"stream"`` (the reference
    loop, ``greedy_generate_stream``). With ``probe``, the early-answering scores of each new
    generation are computed on the batch's KV cache right away and stored in ``probe_cache``
    (see ``probe_scores``). The cache key does not hold the budget: an item generated under one
    budget is reused under another where greedy decoding gives the same tokens (``_within_budget``);
    a chain a smaller budget cut is continued from where it stopped (its prompt and tokens so far are
    prefilled, then decoding goes on), not generated again from the start.
    """
    cache = cache or default_cache("generations")
    probe_cache = probe_cache or default_cache("probe")
    gen_settings = {**settings, "kind": "generate", "decoding": "greedy", "stop": STOP_RULE}
    keys = [cache_key(lm.cache_id, t, gen_settings) for t in texts]
    tok_for_cut = lm.tokenizer if any(cache.get(k) is not None for k in keys) else None
    found = [_within_budget(cache.get(k), max_new_tokens, tok_for_cut) for k in keys]
    todo = [i for i, rec in enumerate(found) if rec is None]
    # chains cut by a smaller budget: continue them (decoder-only models)
    head = {i: cache.get(keys[i])["gen_ids"] for i in todo
            if cache.get(keys[i]) is not None and lm.family != "seq2seq"}
    if todo:
        tok, model = lm.tokenizer, lm.model
        todo.sort(key=lambda i: len(texts[i]))  # similar lengths together: little padding
        bar = progress(total=len(todo), desc=f"{desc} ({lm.name})", unit="q")

        def record(i, ids, seconds):
            return {"key": keys[i], "model": lm.name, "gen_ids": ids, "text": tok.decode(ids, skip_special_tokens=True),
                    "n_new_tokens": len(ids), "hit_max": len(ids) >= max_new_tokens, "budget": max_new_tokens,
                    "seconds": seconds}

        if lm.family == "seq2seq":
            for chunk in _batches(todo, batch_size):
                adapt_threads()
                started = time.perf_counter()
                enc = tok([texts[i] for i in chunk], return_tensors="pt", padding=True).to(model.device)
                gen = _hf_generate(lm, enc, max_new_tokens)
                per_item = (time.perf_counter() - started) / len(chunk)
                cache.put_many([record(i, ids, per_item) for i, ids in zip(chunk, gen)])
                bar.update(len(chunk))
        else:
            adapt_threads()
            last = [time.perf_counter()]

            def on_finish(kv, finished):
                # the KV cache still holds the finished rows: probe them before they are dropped,
                # then store them at once (an interrupted run keeps every finished row); a
                # continued chain is its cached head + the new tokens, its prompt the original one
                finished = [(row, item, head.get(todo[item], []) + ids, pad, plen - len(head.get(todo[item], [])))
                            for row, item, ids, pad, plen in finished]
                if probe:
                    items = [dict(text=texts[todo[item]], gen_ids=ids, row=row, pad=pad, prompt_len=plen)
                             for row, item, ids, pad, plen in finished]
                    _probe_batch(lm, items, kv, settings, probe_steps, probe_cache)
                now = time.perf_counter()
                per_item = (now - last[0]) / len(finished)  # wall time shared by the rows finishing now
                last[0] = now
                cache.put_many([record(todo[item], ids, per_item) for _, item, ids, _, _ in finished])
                bar.update(len(finished))
                adapt_threads()

            prompts_ids = [tok.encode(texts[i], add_special_tokens=False) + head.get(i, []) for i in todo]
            budgets = [max_new_tokens - len(head.get(i, [])) for i in todo]
            if loop == "stream":
                greedy_generate_stream(lm, prompts_ids, budgets, batch_size, on_finish)
            else:
                greedy_generate_slots(model, tok, prompts_ids, budgets, batch_size, _eos_ids(lm),
                                      _answer_line_done(tok), on_finish, heads=[head.get(i, []) for i in todo])
        bar.close()
        found = [_within_budget(cache.get(k), max_new_tokens, tok) for k in keys]
    out_rows = []
    for i, rec in enumerate(found):
        out_rows.append({**{f: rec[f] for f in ("text", "gen_ids", "n_new_tokens", "hit_max", "seconds")},
                         "cached": i not in todo})
    return out_rows


# ----------------------------------------------------------------------------- early answering
def _probe_key(lm: LM, text: str, gen_ids: list[int], settings: dict, probe_steps: int) -> str:
    return cache_key(lm.cache_id, text, {**settings, "kind": "probe", "gen_ids": gen_ids,
                                     "suffix": PROBE_ANSWER_PREFIX, "steps": probe_steps, "cuts": CUT_RULE})


def _probe_batch(lm: LM, items: list[dict], kv, settings: dict, probe_steps: int, cache: JsonlCache) -> None:
    """Early-answering scores for a batch whose KV cache ``kv`` covers each row's padded
    ``prompt + generation`` (row ``r``: ``pad`` left pads, ``prompt_len`` padded prompt length).

    For each cut k, the row's cache is sliced to the cut (pads dropped), the cuts are re-batched
    with left padding, and only the suffix ``"Answer:"`` is run through the model.
    """
    import torch
    from transformers import DynamicCache

    tok, model = lm.tokenizer, lm.model
    letter_ids = letter_token_ids(tok)
    layers = kv.layers
    cached_len = layers[0].keys.shape[2]
    jobs = []  # (item index, k, row, start, end, suffix text)
    cuts_all = []
    for n, it in enumerate(items):
        cuts = step_cut_tokens(tok, it["gen_ids"], probe_steps)
        cuts_all.append(cuts)
        for k, c in enumerate(cuts):
            if c is None:
                continue
            end = it["prompt_len"] + c
            if end > cached_len:
                continue  # the cut falls on the last token, which generation never fed back
            jobs.append((n, k, it["row"], it["pad"], end, probe_suffix(tok, it["gen_ids"], c)))
    results: dict[int, dict] = {n: {} for n in range(len(items))}
    # rows of one batch share the suffix; newline-separated chains all take "Answer:"
    by_suffix: dict[str, list[int]] = {}
    for j, job in enumerate(jobs):
        by_suffix.setdefault(job[5], []).append(j)
    for suffix_text, job_ids in by_suffix.items():
        suffix = tok.encode(suffix_text, add_special_tokens=False)
        for group in _batches(job_ids, 16):
            sel = [jobs[j][:5] for j in group]
            lengths = [end - start for _, _, _, start, end in sel]
            width = max(lengths)
            new = DynamicCache()
            for li, layer in enumerate(layers):
                ks, vs = [], []
                for (_, _, row, start, end), length in zip(sel, lengths):
                    k_ = layer.keys[row:row + 1, :, start:end]
                    v_ = layer.values[row:row + 1, :, start:end]
                    padw = width - length
                    if padw:
                        k_ = torch.cat([k_.new_zeros(k_.shape[:2] + (padw, k_.shape[3])), k_], dim=2)
                        v_ = torch.cat([v_.new_zeros(v_.shape[:2] + (padw, v_.shape[3])), v_], dim=2)
                    ks.append(k_)
                    vs.append(v_)
                new.update(torch.cat(ks), torch.cat(vs), li)
            b, s = len(sel), len(suffix)
            mask = torch.zeros((b, width + s), dtype=torch.long)
            for r, length in enumerate(lengths):
                mask[r, width - length:] = 1
            pos = torch.tensor(lengths).unsqueeze(1) + torch.arange(s).unsqueeze(0)
            ids = torch.tensor([suffix] * b)
            with torch.inference_mode():
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                               position_ids=pos.to(model.device), cache=new, logits_to_keep=1).logits
            scores = _letter_scores(logits[:, -1], letter_ids)
            for (n, k, _, _, _), sc in zip(sel, scores):
                results[n][k] = sc.tolist()
    records = []
    for n, it in enumerate(items):
        records.append({
            "key": _probe_key(lm, it["text"], it["gen_ids"], settings, probe_steps), "model": lm.name,
            "cuts": cuts_all[n], "scores": {str(k): v for k, v in sorted(results[n].items())},
        })
    cache.put_many(records)


def probe_scores(lm: LM, texts: list[str], gens: list[dict], *, settings: dict, probe_steps: int = 3,
                 batch_size: int = 4, cache: JsonlCache | None = None, desc: str = "probe") -> list[dict]:
    """Early-answering A-D scores after 0..probe_steps reasoning steps, per item (cached).

    Items generation already probed come from the cache; for the others the prompt + chain is run
    once per item (its KV cache is then shared by every cut). Returns ``{"cuts", "scores": {k: [4]}}``.
    """
    import torch

    cache = cache or default_cache("probe")
    keys = [_probe_key(lm, t, g["gen_ids"], settings, probe_steps) for t, g in zip(texts, gens)]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    if todo:
        tok, model = lm.tokenizer, lm.model
        if lm.family == "seq2seq":
            _probe_seq2seq(lm, [texts[i] for i in todo], [gens[i] for i in todo], keys=[keys[i] for i in todo],
                           probe_steps=probe_steps, cache=cache)
        else:
            todo.sort(key=lambda i: len(texts[i]) + len(gens[i]["gen_ids"]))
            bar = progress(total=len(todo), desc=f"{desc} ({lm.name})", unit="q")
            for chunk in _batches(todo, batch_size):
                prompt_ids = [tok.encode(texts[i], add_special_tokens=False) for i in chunk]
                full = [p + gens[i]["gen_ids"] for p, i in zip(prompt_ids, chunk)]
                width = max(map(len, full))
                ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for r, seq in enumerate(full):
                    ids[r, width - len(seq):] = torch.tensor(seq)
                    mask[r, width - len(seq):] = 1
                with torch.inference_mode():
                    out = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                position_ids=_positions(mask).to(model.device), use_cache=True, logits_to_keep=1)
                items = []
                for r, i in enumerate(chunk):
                    pad = width - len(full[r])
                    # the "padded prompt length" of this row: pads + its own prompt
                    items.append(dict(text=texts[i], gen_ids=gens[i]["gen_ids"], row=r, pad=pad,
                                      prompt_len=pad + len(prompt_ids[r])))
                # each row has its own prompt length; the whole sequence was fed, so the cache covers every token
                _probe_batch(lm, items, _cache_of(out), settings, probe_steps, cache)
                bar.update(len(chunk))
            bar.close()
    return [{"cuts": cache.get(k)["cuts"], "scores": {int(kk): v for kk, v in cache.get(k)["scores"].items()},
             "cached": i not in todo} for i, k in enumerate(keys)]


def seq2seq_probe_prefixes(chain: str, probe_steps: int) -> tuple[list[int | None], list[str]]:
    """Decoder prefixes of the seq2seq probe: ``"Answer:"`` after the chain cut after 0..probe_steps
    steps, and the cuts (characters of ``chain``; None where it has fewer steps).

    A step on its own line keeps the multi-line format (``...step\\nAnswer:``); a step followed
    on its line by the next marker (a chain without newlines, as flan-t5 writes it) is cut before
    that marker and ``" Answer:"`` follows, so no cut holds a later step or the final answer."""
    steps = chain_steps(chain)
    cuts, prefixes = [0], [PROBE_ANSWER_PREFIX]
    for k in range(1, probe_steps + 1):
        if k > len(steps):
            cuts.append(None)
            continue
        end = steps[k - 1][2]
        cuts.append(end)
        if chain[:end].endswith("\n"):
            prefixes.append(chain[:end].rstrip("\n") + "\n" + PROBE_ANSWER_PREFIX)
        else:
            prefixes.append(chain[:end].rstrip() + " " + PROBE_ANSWER_PREFIX)
    return cuts, prefixes


def _probe_seq2seq(lm: LM, texts, gens, *, keys, probe_steps, cache):
    """Seq2seq early answering: decoder prefix = the cut chain + "Answer:" (no KV reuse; small model)."""
    import torch

    tok, model = lm.tokenizer, lm.model
    letter_ids = letter_token_ids(tok)
    records = []
    for text, g, key in zip(texts, gens, keys):
        cuts, prefixes = seq2seq_probe_prefixes(g["text"], probe_steps)
        enc = tok([text] * len(prefixes), return_tensors="pt", padding=True).to(model.device)
        dec = _decoder_ids(model, tok, prefixes)
        with torch.inference_mode():
            logits = model(**enc, decoder_input_ids=dec["ids"], decoder_attention_mask=dec["mask"]).logits
        sc = _letter_scores(logits[torch.arange(len(prefixes)), dec["last"]], letter_ids)
        ks = [k for k, c in enumerate(cuts) if c is not None]
        records.append({"key": key, "model": lm.name, "cuts": cuts,
                        "scores": {str(k): s.tolist() for k, s in zip(ks, sc)}})
    cache.put_many(records)
