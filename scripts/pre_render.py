"""Quarto pre-render script: results first, then the freeze, then Quarto executes the chapters.

Runs before every `quarto render` / `quarto preview` (`pre-render` in _quarto.yml), so `make render`
and a plain `quarto render` behave alike:

1. `python -m analysis prepare --profile P` verifies the profile's stored runs and computes the
   missing ones outside Quarto, with progress bars (a no-op when everything is stored). Under
   `full`, missing runs stop the render here, in seconds, with what to do (the Colab notebook):
   this script exits non-zero and Quarto renders nothing. Chapters executing inside Quarto then
   only read results (`analysis.experiments.in_render`).
2. The files being rendered are noted (their digests), so that the last post-render script
   (scripts/inputs_check.py) can tell when one was saved again during the render.
3. The frozen chapter outputs (`_freeze/`, committed, of the default profile only) whose inputs
   changed are dropped, so Quarto executes those chapters again (analysis/freeze.py).

The package runs with the Python that executes the chapters: `$QUARTO_PYTHON`, else the project's
`.venv`, else this interpreter. Step 2 needs only the standard library.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import snapshot_inputs, sync  # noqa: E402  (standard library only)
from analysis.profiles import active_profile  # noqa: E402


def package_python() -> str:
    for candidate in (os.environ.get("QUARTO_PYTHON"), ROOT / ".venv" / "bin" / "python"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return sys.executable


def main() -> int:
    profile = active_profile()
    snapshot_inputs(ROOT)  # scripts/inputs_check.py compares after the render
    proc = subprocess.run([package_python(), "-m", "analysis", "prepare", "--profile", profile], cwd=ROOT)
    if proc.returncode != 0:
        print(f"pre-render: stopped before Quarto executed anything (profile {profile}); see above", file=sys.stderr)
        return proc.returncode
    sync(ROOT, profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
