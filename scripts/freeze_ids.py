"""Quarto post-render script (the first one): the committed _freeze/ restored, its cell ids stable.

Under a profile other than `offline` the pre-render script moved the committed `_freeze/` aside;
it comes back here (and from `make render` after a failed render: `--restore-only`).

Quarto gives each unlabelled cell a random id on every execution; renumbering them in document order
keeps `_freeze/` byte-identical when a chapter executes again with the same output (no merge conflicts
for a group whose members all render). Standard library only. See analysis/freeze.py.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import restore_freeze, stable_cell_ids  # noqa: E402

# first: the committed _freeze/ back where another profile's render moved it aside (scripts/pre_render.py)
if restore_freeze(ROOT):
    print("freeze: the committed _freeze/ is back (this profile's render left it untouched)")
if "--restore-only" not in sys.argv:
    for path in stable_cell_ids(ROOT):
        print(f"freeze-ids: stable cell ids in {path.relative_to(ROOT)}")
