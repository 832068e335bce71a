"""Quarto post-render script: stable ids for unlabelled cells in the committed _freeze/.

Quarto gives each unlabelled cell a random id on every execution; renumbering them in document order
keeps `_freeze/` byte-identical when a chapter executes again with the same output (no merge conflicts
for a group whose members all render). Standard library only. See analysis/freeze.py.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import stable_cell_ids  # noqa: E402

for path in stable_cell_ids(ROOT):
    print(f"freeze-ids: stable cell ids in {path.relative_to(ROOT)}")
