"""Chapter 3: fine-tuning BERT on AG News, its attention maps, and a few-shot causal-LM baseline.

Modules: ``config`` (frozen configs), ``train`` (Trainer fine-tuning, batched prediction),
``attention`` (eager attention extraction and statistics), ``fewshot`` (log-likelihood label
scoring with contextual calibration), ``metrics``, ``compute`` (experiment bodies), ``figures``,
``chapter`` (what the chapter's cells call) and ``experiments`` (registration).
"""
