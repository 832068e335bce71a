"""Quarto post-render script (the last one): fail when a file was saved again while it rendered.

`quarto preview` re-renders a chapter when you save it, but loses an edit saved *during* that
re-render (Quarto records the file as rendered with its newest content, so the edit's own change
event is skipped). Failing here keeps Quarto from recording it: preview then renders the file again
with the edit, and `quarto render` says which file to render again. See analysis/freeze.py
(`inputs_changed`); standard library only.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import inputs_changed  # noqa: E402

changed = inputs_changed(ROOT)
if changed:
    print(f"inputs-check: {', '.join(changed)} changed while rendering; the output shows the older text. "
          "quarto preview renders it again now; after quarto render, render again.", file=sys.stderr)
    sys.exit(1)
