"""The HTML book's lab widgets (HTML only; the PDF keeps its static figures and tables).

A chapter cell with ``#| output: asis`` prints ``widget(name, data)``: a ``<div>`` carrying the
widget's data as inline JSON, and the widget's script ``lab/<name>.js`` (plain ES modules, no
framework, nothing fetched from a CDN). After the render, the post-render script
``scripts/lab_assets.py`` copies ``lab/`` into the site's ``lab/`` folder, with the binary assets that
do not belong inline (image embeddings from the result store, SAM's ONNX decoder exported again),
named by the run they come from.

Each script finds its ``div.lab[data-lab=<name>]`` elements, reads ``script.lab-data`` and builds
the widget in place; it sets ``data-ready="1"`` on the div when it can be used (the browser tests
wait for that), and writes what the reader sees into elements with ``data-testid`` attributes.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

_count = 0


def _clean(value):
    """JSON-safe: NaN/inf become null (``json`` would write NaN, which is not JSON), numpy scalars
    and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):  # numpy array or scalar
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(data) -> str:
    """Compact JSON, valid for any text in ``data`` and safe inside ``<script>``: ``<``, ``>`` and ``&``
    are written as JSON escapes (``\\u003c``...), so no ``</script>`` or ``<!--`` in a data set's text
    or a model's output can end or change the script element, and ``JSON.parse`` reads it back."""
    text = json.dumps(_clean(data), allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_output() -> bool:
    """False when Quarto executes the chapter for a non-HTML format (the PDF): the widget is left
    out of that output altogether rather than carried in it and hidden (Quarto writes the format
    into the file ``QUARTO_EXECUTE_INFO`` names). True outside Quarto (the book check)."""
    path = os.environ.get("QUARTO_EXECUTE_INFO")
    if not path:
        return True
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        to = info["format"]["pandoc"]["to"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return str(to).startswith("html")


def widget(name: str, data, *, label: str, note: str | None = None, attrs: dict[str, str] | None = None) -> str:
    """Markdown for one widget: shown in HTML only, with ``label`` as its accessible name and
    ``note`` (markdown, optional) as a line above it. ``data`` must be JSON-serialisable after
    ``_clean``; keep it small (it is part of the page). ``attrs``: extra ``data-*`` attributes of
    the div (e.g. ``data-lab-assets``, read by scripts/lab_assets.py)."""
    global _count
    if not html_output():
        return ""
    _count += 1
    ident = f"lab-{name}-{_count}"
    extra = "".join(f' {k}="{html.escape(str(v))}"' for k, v in (attrs or {}).items())
    lines = ['::: {.content-visible when-format="html"}', ""]
    if note:
        lines += [note, ""]
    lines += [
        "```{=html}",
        f'<div class="lab lab-{name}" id="{ident}" data-lab="{name}"{extra} role="region" aria-label="{html.escape(label)}">',
        f'<script type="application/json" class="lab-data">{to_json(data)}</script>',
        '<noscript>This interactive figure needs JavaScript.</noscript>',
        "</div>",
        '<link rel="stylesheet" href="../lab/lab.css">',
        f'<script type="module" src="../lab/{name}.js"></script>',
        "```",
        "",
        ":::",
    ]
    return "\n".join(lines)
