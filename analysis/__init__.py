"""Experiments behind the book: data loaders, model registry, result store and one module per chapter.

Chapters narrate; this package computes. A chapter cell calls one function (usually
``get_or_run``) and shows what it returns.
"""

__version__ = "0.1.0"
