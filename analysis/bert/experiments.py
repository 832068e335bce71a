"""Registers the BERT chapter's experiments: data statistics, fine-tuning, attention, few-shot."""

from __future__ import annotations

from ..data import agnews
from ..experiments import Experiment, register
from .compute import compute_attention, compute_data_stats, compute_fewshot, compute_finetune
from .config import AttentionConfig, DataStatsConfig, FewShotConfig, FineTuneConfig

CHAPTER = "03-bert-attention"
SOURCES = ("analysis.data.agnews", "analysis.bert.train", "analysis.bert.attention", "analysis.bert.fewshot",
           "analysis.bert.metrics", "analysis.bert.config")

# ---- fine-tuning: offline = MiniLM-L6 on the local 8,794 train rows; full = bert-base-uncased on 120k
FT_OFFLINE = FineTuneConfig()
FT_FULL = FineTuneConfig(
    model="bert_base_uncased", source="hub", n_validation=5000, epochs=3.0,
    batch_size=16,  # the assignment's snippet: 3 epochs, lr 2e-5, batch 16 (~21.6k steps; the fast GPU loop)
    eval_batch_size=256, eval_steps=2000, logging_steps=200,
)
FT_SMOKE = FineTuneConfig(limit_train=96, n_validation=32, limit_test=64, eval_steps=4, logging_steps=1)  # 4 steps, 1 checkpoint

DATA = {"offline": DataStatsConfig(),  # counts with the fine-tuned model's own tokenizer in every profile
        "full": DataStatsConfig(source="hub", n_validation=5000, tokenizer="bert_base_uncased"),
        "smoke": DataStatsConfig(limit_train=96, n_validation=32, limit_test=64)}
FINETUNE = {"offline": FT_OFFLINE, "full": FT_FULL, "smoke": FT_SMOKE}
ATTENTION = {"offline": AttentionConfig(finetune=FT_OFFLINE), "full": AttentionConfig(finetune=FT_FULL),
             "smoke": AttentionConfig(finetune=FT_SMOKE, n_sentences=16)}
FEWSHOT = {"offline": FewShotConfig(finetune=FT_OFFLINE),
           "full": FewShotConfig(model="gpt2", finetune=FT_FULL, n_items=1000),
           "smoke": FewShotConfig(finetune=FT_SMOKE, n_items=8)}


def _models(cfg) -> list[str]:
    if isinstance(cfg, DataStatsConfig):
        return [cfg.tokenizer]
    if isinstance(cfg, FewShotConfig):
        return [cfg.model, cfg.finetune.model]
    return [getattr(cfg, "finetune", cfg).model]


def _fingerprint(cfg) -> str:
    """The data's fingerprint, and the hub models' pinned commits (``models.identities``: empty
    for the offline models, so offline keys are unchanged)."""
    from ..models import identities

    source = getattr(cfg, "source", None) or cfg.finetune.source
    pinned = identities(_models(cfg))
    return f"{agnews.fingerprint(source)}|{pinned}" if pinned else agnews.fingerprint(source)


def _data_text(cfg) -> str:
    ft = getattr(cfg, "finetune", cfg)
    if getattr(ft, "source", "local") == "hub":
        return "AG News (hub fancyzhx/ag_news): 120,000 train, 7,600 test"
    return "AG News: 8,794 of the 120,000 train rows (local copy), official 7,600-row test split"


register(Experiment(
    name="agnews_stats", title="AG News: samples per class and split, text and token lengths", chapter=CHAPTER,
    configs=DATA, compute=compute_data_stats, code_version="1", data_fingerprint=_fingerprint,
    models=lambda c: [c.tokenizer], data_description=_data_text, source_modules=SOURCES,
    cost={"full": "under a minute (tokenizer statistics)"},
))
register(Experiment(
    name="bert_finetune", title="Fine-tuning a BERT encoder on AG News (Trainer API)", chapter=CHAPTER,
    configs=FINETUNE, compute=compute_finetune, code_version="1", data_fingerprint=_fingerprint,
    models=lambda c: [c.model], data_description=_data_text, source_modules=SOURCES,
    cost={"full": "the longest part: fine-tuning bert-base-uncased on 115k rows, roughly 40-60 min on a T4"},
))
register(Experiment(
    name="bert_attention", title="Attention before and after fine-tuning", chapter=CHAPTER,
    # 2: also stores every layer's maps of the chosen sentences (chosen_{pre,ft}_all); the rest is unchanged
    configs=ATTENTION, compute=compute_attention, code_version="2", data_fingerprint=_fingerprint,
    models=lambda c: [c.finetune.model], data_description=_data_text, source_modules=SOURCES,
    cost={"full": "1-2 min after fine-tuning"},
))
register(Experiment(
    name="bert_fewshot", title="Few-shot prompting of a causal LM vs the fine-tuned encoder", chapter=CHAPTER,
    configs=FEWSHOT, compute=compute_fewshot, code_version="1", data_fingerprint=_fingerprint,
    models=lambda c: [c.model, c.finetune.model], data_description=_data_text, source_modules=SOURCES,
    cost={"full": "a few minutes (gpt2 few-shot on 1,000 items)"},
))
