"""Experiments behind the book: data loaders, model registry, result store and one module per chapter.

Chapters narrate; this package computes. A chapter cell calls one function (usually
``get_or_run``) and shows what it returns.
"""

__version__ = "0.1.0"

# During a Quarto render, note which stored results each chapter reads (keeps _freeze/ true to them).
from .freeze import record_reads as _record_reads  # noqa: E402  (standard library only)

_record_reads()
