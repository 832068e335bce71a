"""Experiments behind the book: data loaders, model registry, result store and one module per chapter.

Chapters narrate; this package computes. A chapter cell asks its chapter module
(``analysis.<part>.chapter``) for a stored run's numbers, tables and figures; runs are computed
outside the render (``python -m analysis run``), never while Quarto executes a chapter.
"""

__version__ = "0.1.0"

# During a Quarto render, note which stored results each chapter reads (keeps _freeze/ true to them).
from .freeze import record_reads as _record_reads  # noqa: E402  (standard library only)

_record_reads()
