"""Compute the `full` profile's results with random-weight stand-ins of the assignment's models.

    python scripts/standin_full.py DEST            # builds DEST/{models,hub,data,results,...}
    eval "$(python scripts/standin_full.py DEST --env)"   # then: quarto render --profile full

What the network gives under `full` (SAM ViT-H, bert-base-uncased, gpt2, flan-t5-base, the hub
data sets, the course's lung file) is replaced by small local stand-ins of the exact classes
(``tests/fixtures/standins.py``), and ``python -m analysis run all --profile full`` computes every
experiment's unchanged `full` configuration into ``DEST/results``. The numbers mean nothing; the
book rendered from them shows what the hand-in's text says under `full`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def environment(dest: Path) -> dict[str, str]:
    """The variables that point the package at the stand-ins under ``dest``."""
    from fixtures import standins

    return standins.environment(dest)


def build(dest: Path, *, n_train: int = 5400, n_test: int = 400, n_questions: int = 200) -> None:
    from fixtures import standins

    if not (dest / "models").is_dir():
        standins.build_models(dest / "models")
    if not (dest / "hub").is_dir():
        standins.build_hub_data(dest / "hub", n_train=n_train, n_test=n_test, n_questions=n_questions)
    lung = dest / "data" / "lung" / "lung_field_dataset.npz"
    if not lung.exists():
        standins.build_lung(lung, n_train=1, n_val=3, n_test=1)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    dest = Path(argv[0]).resolve()
    env = environment(dest)
    if "--env" in argv:
        for k, v in env.items():
            print(f"export {k}={shlex.quote(v)}")
        return 0
    build(dest)
    proc = subprocess.run([sys.executable, "-m", "analysis", "run", "all", "--profile", "full"],
                          cwd=dest / "hub", env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
