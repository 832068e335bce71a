"""Frozen configs for the BERT chapter: one per experiment per profile (offline, full, smoke)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataStatsConfig:
    """Summary statistics of AG News (section 3.2)."""

    source: str = "local"  # local parquet (offline copy) or "hub" (fancyzhx/ag_news, full 120k train)
    tokenizer: str = "minilm_l6"  # same WordPiece vocabulary as bert-base-uncased (md5-identical vocab.txt)
    max_length: int = 128  # the fine-tuning truncation: report how many texts exceed it
    n_validation: int = 800  # held-out part of train, as in FineTuneConfig (counts per split)
    examples_per_class: int = 2  # representative examples (nearest the class's median length)
    limit_train: int | None = None  # smoke: a small stratified subset
    limit_test: int | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """Trainer fine-tuning of an encoder on AG News and evaluation on the official test split (3.3)."""

    model: str = "minilm_l6"  # registry name; full: bert_base_uncased
    source: str = "local"  # where train/test come from
    limit_train: int | None = None  # None = every train row (before the validation hold-out)
    n_validation: int = 800  # stratified hold-out of train for eval_strategy and the learning curve
    limit_test: int | None = None  # None = the official 7,600-row test split
    max_length: int = 128  # truncation (assignment); AG News rarely exceeds it
    learning_rate: float = 2e-5  # assignment
    epochs: float = 1.0  # offline: one pass keeps the cold chapter under 20 min on 2 CPU cores
    batch_size: int = 16  # per device; CPU gains nothing from larger batches, so more steps per epoch
    eval_batch_size: int = 64  # batched, length-sorted evaluation
    eval_steps: int = 125  # eval_strategy="steps": points on the learning curve (with a checkpoint each)
    logging_steps: int = 25  # training-loss points on the learning curve
    weight_decay: float = 0.01  # the usual BERT fine-tuning setting
    warmup_ratio: float = 0.06  # linear warm-up then linear decay (BERT recipe)
    group_by_length: bool = True  # length-grouped batches: less padding per batch
    mixed_precision: bool = True  # bf16 (or fp16) autocast on GPUs that support it; fp32 on CPU
    seed: int = 42  # model head init, data order, hold-out


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Attention of the pre-trained vs the fine-tuned encoder (3.4, 3.5 and the quantified change)."""

    finetune: FineTuneConfig = FineTuneConfig()  # which fine-tuned model to compare
    n_sentences: int = 300  # test sentences for the per-layer/per-head statistics
    max_tokens_shown: int = 24  # chosen sentences: short enough to read a token-by-token map
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    """k-shot prompting of a causal LM, label by log-likelihood, with and without calibration."""

    model: str = "smollm2_135m"  # full: gpt2 (the assignment's choice)
    finetune: FineTuneConfig = FineTuneConfig()  # the encoder it is compared with (same test items)
    k: int = 4  # demonstrations: one per class, k // 4 rounds
    n_items: int = 200  # test items (class-stratified, seeded)
    label_words: tuple[str, ...] = (" World", " Sports", " Business", " Technology")  # one token each in gpt2 and SmolLM2
    max_words: int = 50  # demonstrations and queries cut to this many words: shorter prompts, same topic cue
    content_free: tuple[str, ...] = ("N/A", "", "[MASK]")  # Zhao et al. 2021's content-free inputs
    seed: int = 0
