"""Segment Anything on lung X-rays (assignment parts 1 and 2).

- ``model``: ``load_sam(name)`` for LiteMedSAM (offline) and SAM ViT-H/ViT-B (full), all as
  ``segment_anything.modeling.Sam`` so the same ``SamPredictor`` code drives them;
- ``engine``: embed each image once (disk cache keyed by model and image hash), batch prompts;
- ``prompts``: the prompt-strategy registry (oracle and ground-truth-free prompts);
- ``metrics``: per-image F1, bootstrap intervals;
- ``evaluate``: the experiments' compute functions; ``experiments``: their registration;
- ``figures`` and ``chapter``: what the two chapters show.
"""
