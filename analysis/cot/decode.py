"""Greedy decoding with continuous batching in a preallocated ("slot") KV cache.

Why a second decoding loop (``generate.greedy_generate_stream`` is the first, kept as the
reference the benchmark and the tests compare with): on a 2-core CPU a decoding step of the 1.5B
chat model is bound by arithmetic at the batch sizes that fill it, so what is left to win is the
work around the matmuls. This loop

- keeps one KV buffer per layer, ``[slots, kv_heads, capacity, head_dim]``, written in place: a
  step writes one column for every row, where the reference loop concatenates (copies) every
  layer's whole cache at every step and again whenever a row leaves or joins;
- gives a finished row's *slot* to the next prompt at once (no reshuffle of the other rows' cache)
  and compacts the batch only when the queue is empty (the tail);
- computes the key/values of the prompts' shared prefix once (the chat template's system turn with
  the assignment's instruction: 75 of ~122 prompt tokens for every chain-of-thought prompt) and
  copies them into each new row, so a new row's prefill runs only its own question.

The tokens a row reads are exactly those of its prompt (prefix + suffix), at the same positions, so
the greedy output is the reference loop's up to the floating-point order of the batched matmuls
(``bench/bench_cot_throughput.py`` measures both and compares their outputs).

Layout: all rows share the column counter ``n`` (the next column to write); row ``j`` occupies
columns ``[start_j, n)``: its prompt right-aligned at admission, then its generated tokens. The
attention mask is 1 on those columns and 0 elsewhere; position ids count the row's own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable


def _cache_of(out):
    """The KV cache a model call returned (``cache`` in transformers 5, ``past_key_values`` before)."""
    for name in ("cache", "past_key_values"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise RuntimeError("model output carries no KV cache")


@dataclass
class _Counter:
    n: int = 0


def _slot_layer_class():
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """One layer's preallocated keys/values; ``update`` writes the step's columns in place."""

        def __init__(self, counter: _Counter, keys, values):
            super().__init__()
            self.counter, self.keys, self.values = counter, keys, values
            self.is_initialized = True
            self.device = keys.device

        def update(self, key_states, value_states, *args, **kwargs):
            n, q = self.counter.n, key_states.shape[-2]
            self.keys[:, :, n:n + q] = key_states
            self.values[:, :, n:n + q] = value_states
            return self.keys[:, :, :n + q], self.values[:, :, :n + q]

        def get_seq_length(self) -> int:
            return self.counter.n

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.counter.n + query_length, 0

    return SlotLayer


class SlotCache:
    """KV buffers of ``slots`` rows x ``capacity`` columns for every layer, and the shared counter."""

    def __init__(self, model, slots: int, capacity: int):
        import torch
        from transformers.cache_utils import Cache

        cfg = model.config
        heads = cfg.num_key_value_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dtype = next(model.parameters()).dtype
        self.counter = _Counter(0)
        layer_cls = _slot_layer_class()
        shape = (slots, heads, capacity, head_dim)
        self.cache = Cache(layers=[layer_cls(self.counter, torch.zeros(shape, dtype=dtype, device=model.device),
                                             torch.zeros(shape, dtype=dtype, device=model.device))
                                   for _ in range(cfg.num_hidden_layers)])
        self.capacity = capacity

    @property
    def layers(self):
        return self.cache.layers

    def view(self):
        """The filled columns ``[:, :, :n]`` of every layer, in the layout the probe reads
        (``generate._probe_batch``: ``kv.layers[i].keys``)."""
        n = self.counter.n
        return SimpleNamespace(layers=[SimpleNamespace(keys=lay.keys[:, :, :n], values=lay.values[:, :, :n])
                                       for lay in self.layers])

    def place(self, slot: int, src_layers, src_cols, dst_start: int) -> None:
        """Copy columns ``src_cols`` (a slice) of row 0 of ``src_layers`` into ``slot`` at ``dst_start``."""
        width = src_cols.stop - src_cols.start
        for dst, src in zip(self.layers, src_layers):
            dst.keys[slot, :, dst_start:dst_start + width] = src[0][:, src_cols]
            dst.values[slot, :, dst_start:dst_start + width] = src[1][:, src_cols]

    def shift_left(self, cols: int) -> None:
        """Drop the first ``cols`` columns (padding for every row) and move the rest left."""
        n = self.counter.n
        for lay in self.layers:
            lay.keys[:, :, :n - cols] = lay.keys[:, :, cols:n].clone()
            lay.values[:, :, :n - cols] = lay.values[:, :, cols:n].clone()
        self.counter.n = n - cols

    def keep_rows(self, idx) -> None:
        """Keep only the rows ``idx`` (a LongTensor), in that order (the batch shrinks in the tail)."""
        for lay in self.layers:
            lay.keys = lay.keys.index_select(0, idx)
            lay.values = lay.values.index_select(0, idx)


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the longest token prefix shared by every prompt, leaving each at least one token."""
    if not prompts:
        return 0
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def greedy_generate_slots(model, tok, prompts: list[list[int]], budgets: list[int], batch_size: int,
                          eos: set[int], stop: Callable[[list[int]], bool], on_finish=None,
                          prefill_chunk: int = 16, share_prefix: bool = True, slack: int = 160,
                          stats: dict | None = None, heads: list[list[int]] | None = None) -> list[list[int]]:
    """Greedy decoding of every prompt with continuous batching in a ``SlotCache``.

    ``prompts``: token ids per item (admitted in this order); ``budgets``: new tokens allowed per
    item; ``eos``: ids that end a reply (not recorded); ``stop(ids)``: whether a row's generated ids
    are complete (the Answer line). ``on_finish(kv, [(row, item, ids, pad, prompt_len)])`` is called
    before finished rows' slots are reused, as in ``generate.greedy_generate_stream``: ``kv`` holds,
    per row, ``pad`` unused columns, the prompt (to column ``prompt_len``) and every generated token
    but the last. ``slack``: columns beyond the longest row before the cache shifts left;
    ``stats`` (a dict) receives counts of steps, prefilled tokens, shifts and shrinks. ``heads``:
    per item, tokens generated earlier that end its prompt (a chain continued under a larger
    budget): ``stop`` sees them before the new tokens.
    Returns the generated ids per item.
    """
    import torch

    device = model.device
    n_items = len(prompts)
    gen: list[list[int]] = [[] for _ in range(n_items)]
    if n_items == 0:
        return gen
    slots = max(1, min(batch_size, n_items))
    shared = common_prefix(prompts) if share_prefix and n_items > 1 else 0
    longest_prompt = max(len(p) for p in prompts)
    capacity = longest_prompt + max(budgets) + max(1, slack)  # a whole row + slack before a shift
    counts = stats if stats is not None else {}
    counts.update(steps=0, prefill_tokens=0, shared_prefix=0, shifts=0, shrinks=0)
    sc = SlotCache(model, slots, capacity)
    mask = torch.zeros((slots, capacity), dtype=torch.long, device=device)
    next_tok = torch.zeros(slots, dtype=torch.long, device=device)
    next_pos = torch.zeros(slots, dtype=torch.long, device=device)
    item_of: list[int | None] = [None] * slots
    start_of = [0] * slots  # first column of the row's prompt
    plen_of = [0] * slots
    queue = list(range(n_items))
    sc.counter.n = longest_prompt  # every prompt fits left of the first decoding column

    prefix_kv = None
    if shared:
        ids = torch.tensor([prompts[0][:shared]], device=device)
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        counts["shared_prefix"] = shared
        counts["prefill_tokens"] += shared
        prefix_kv = [(lay.keys, lay.values) for lay in _cache_of(out).layers]

    def admit(free: list[int]) -> list[int]:
        """Prefill the next prompts into the ``free`` slots (in chunks) and place their KV at ``n``."""
        from transformers import DynamicCache

        take = queue[:len(free)]
        del queue[:len(take)]
        free = free[:len(take)]
        n = sc.counter.n
        for c0 in range(0, len(take), prefill_chunk):
            items, targets = take[c0:c0 + prefill_chunk], free[c0:c0 + prefill_chunk]
            suffixes = [prompts[i][shared:] for i in items]
            width = max(map(len, suffixes))
            b = len(items)
            ids = torch.full((b, width), tok.pad_token_id if tok.pad_token_id is not None else 0, dtype=torch.long)
            att = torch.zeros((b, shared + width), dtype=torch.long)
            att[:, :shared] = 1
            pos = torch.zeros((b, width), dtype=torch.long)
            for r, s in enumerate(suffixes):
                ids[r, width - len(s):] = torch.tensor(s)
                att[r, shared + width - len(s):] = 1
                pos[r, width - len(s):] = torch.arange(shared, shared + len(s))
            cache = DynamicCache()
            if prefix_kv is not None:
                for li, (k, v) in enumerate(prefix_kv):
                    cache.update(k.expand(b, -1, -1, -1).contiguous(), v.expand(b, -1, -1, -1).contiguous(), li)
            with torch.inference_mode():
                out = model(input_ids=ids.to(device), attention_mask=att.to(device), position_ids=pos.to(device),
                            cache=cache, use_cache=True, logits_to_keep=1)
            kv = _cache_of(out)
            counts["prefill_tokens"] += sum(map(len, suffixes))
            first = out.logits[:, -1].argmax(-1)
            for r, (item, slot) in enumerate(zip(items, targets)):
                total = len(prompts[item])
                start = n - total
                rows = [(lay.keys[r:r + 1], lay.values[r:r + 1]) for lay in kv.layers]
                if shared:
                    sc.place(slot, [(k[0], v[0]) for k, v in rows], slice(0, shared), start)
                pad = width - len(suffixes[r])
                sc.place(slot, [(k[0], v[0]) for k, v in rows], slice(shared + pad, shared + width), start + shared)
                mask[slot].zero_()
                mask[slot, start:n] = 1
                next_tok[slot] = first[r]
                next_pos[slot] = total
                item_of[slot], start_of[slot], plen_of[slot] = item, start, total
        return free

    def record(rows: list[int]) -> list[int]:
        """Append each row's pending token (or end it at an end token); the rows that finished."""
        finished = []
        for j in rows:
            item = item_of[j]
            t = int(next_tok[j])
            if t in eos:
                finished.append(j)
                continue
            gen[item].append(t)
            # a continued chain's head is prepended only where there is one (a list copy per row per step)
            if len(gen[item]) >= budgets[item] or stop(heads[item] + gen[item] if heads and heads[item] else gen[item]):
                finished.append(j)
        return finished

    def release(rows: list[int]) -> None:
        if on_finish is not None:
            on_finish(sc.view(), [(j, item_of[j], gen[item_of[j]], start_of[j], start_of[j] + plen_of[j])
                                  for j in rows])
        for j in rows:
            item_of[j] = None
            mask[j].zero_()

    # every active row holds one token not yet recorded (from its prefill or the last step)
    finished = record(admit(list(range(slots))))
    while True:
        while finished:  # freed slots take waiting prompts at once; their first tokens are recorded too
            release(finished)
            finished = record(admit(finished)) if queue else []
        keep = [j for j, i in enumerate(item_of) if i is not None]
        if not keep:
            break
        if len(keep) < len(item_of):  # the queue is empty: the batch shrinks to its active rows
            idx = torch.tensor(keep, device=device)
            sc.keep_rows(idx)
            counts["shrinks"] += 1
            mask, next_tok, next_pos = mask[idx], next_tok[idx], next_pos[idx]
            item_of = [item_of[j] for j in keep]
            start_of = [start_of[j] for j in keep]
            plen_of = [plen_of[j] for j in keep]
        n = sc.counter.n
        if n + 1 >= sc.capacity:  # out of columns: drop those that are padding for every row
            # keep room for the longest prompt left of the counter (later admissions need it)
            cut = min(min(s for s, i in zip(start_of, item_of) if i is not None), n - longest_prompt)
            sc.shift_left(cut)
            counts["shifts"] += 1
            mask[:, :n - cut] = mask[:, cut:n].clone()
            mask[:, n - cut:] = 0
            start_of = [s - cut for s in start_of]
            n = sc.counter.n
        mask[:, n] = 1
        with torch.inference_mode():
            out = model(input_ids=next_tok[:, None], attention_mask=mask[:, :n + 1],
                        position_ids=next_pos[:, None], cache=sc.cache, use_cache=True, logits_to_keep=1)
        sc.counter.n = n + 1
        counts["steps"] += 1
        next_tok = out.logits[:, -1].argmax(-1)
        next_pos = next_pos + 1
        finished = record(list(range(len(item_of))))
    return gen
