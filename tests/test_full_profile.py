"""The hand-in profile (``full``) end to end, on CPU, with stand-ins for everything it downloads.

Every experiment's ``full`` configuration runs through the real CLI (``python -m analysis run all
--profile full``, a subprocess), then every chapter executes under ``full`` without Quarto
(``python -m analysis book-check --profile full``). What stands in for the network:

- models: ``$ANALYSIS_MODEL_STANDINS`` (the registry's stand-in folder, see ``analysis.models``)
  holds random-weight models of the exact classes with tiny configs (BertModel, GPT2LMHeadModel,
  T5ForConditionalGeneration) and locally built tokenizers, and a ``checkpoints.json`` that points
  SAM ViT-H at a ``file://`` URL: ``Sam`` with a tiny ViT encoder (at 256 px input, as LiteMedSAM;
  the prompt encoder and mask decoder are SAM's), fetched and checked by size and sha256 through
  ``analysis.download``;
- hub data sets: folders named as the hub repositories (``fancyzhx/ag_news``,
  ``derek-thomas/ScienceQA``) with the hub's parquet layout and columns, in the subprocess's
  working directory, where ``datasets.load_dataset`` looks before the hub (with the hub offline);
- the course's lung file: ``$ANALYSIS_DATA_DIR/lung/lung_field_dataset.npz``.

Nothing in the configurations is changed: batch sizes, precision flags, prompts, evaluation sets
and item counts are the full profile's (the run.json configs are compared with them). Only the
stand-in files are small (AG News 5,400 train rows: the full config holds out 5,000 for
validation; 400 test rows; 212 ScienceQA rows of which 200 are drawn; 1 train + 3 val lung
images: the automatic mode's three demo images), so each count the configuration caps takes the file's size. Results go to a temporary
``$ANALYSIS_RESULTS_DIR``; ``results/offline`` stays byte-identical and ``results/full`` untouched
(hashed before and after).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.paths import PROJECT_ROOT

from conftest import needs_quarto, quarto_render
from fixtures import standins

CHAPTERS = ["chapters/01-segment-anything.qmd", "chapters/02-prompting-sam.qmd",
            "chapters/03-bert-attention.qmd", "chapters/04-chain-of-thought.qmd"]


def tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes under ``root`` ("" when it does not exist)."""
    if not root.exists():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def full_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    standins.build_models(root / "models")
    standins.build_hub_data(root / "hub", n_train=5400, n_test=400, n_questions=200)
    standins.build_lung(root / "data" / "lung" / "lung_field_dataset.npz", n_train=1, n_val=3, n_test=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYSIS_", "QUARTO_", "HF_"))}
    env.update(standins.environment(root))
    env.update({
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "ANALYSIS_NO_PROGRESS": "1",
        # one torch thread: on a shared CPU, threads that wait on each other at every small op made
        # this test several times slower (a machine setting, not a configuration change)
        "OMP_NUM_THREADS": "1",
    })
    return root, env


def _cli(args: list[str], env: dict, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_full_profile_end_to_end(full_env):
    from analysis import experiments
    from analysis.store import canonical_json

    root, env = full_env
    # the committed offline runs, and the project's own full store (results go to the temporary one);
    # results/smoke is left out: other test processes write it
    watched = [PROJECT_ROOT / "results" / "offline", PROJECT_ROOT / "results" / "full"]
    before = [tree_hash(p) for p in watched]
    started = time.perf_counter()
    proc = _cli(["run", "all", "--profile", "full"], env, cwd=root / "hub", timeout=1200)
    run_seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    print(proc.stdout)

    registry = experiments.load_all()
    store = root / "results" / "full"
    assert sorted(p.name for p in store.iterdir()) == sorted(registry)
    for name, exp in registry.items():
        runs = [p for p in (store / name).iterdir() if not p.name.startswith(".")]
        assert len(runs) == 1, (name, runs)
        meta = json.loads((runs[0] / "run.json").read_text())
        # the full configuration itself, nothing shrunk or swapped
        assert canonical_json(meta["config"]) == canonical_json(dataclasses.asdict(exp.configs["full"])), name
        assert meta["profile"] == "full"
    # the stand-ins were used: the SAM checkpoint came through the download code, from the file:// URL
    served = json.loads((root / "models" / "checkpoints.json").read_text())["sam_vit_h"]
    fetched = root / "cache" / "models" / "sam-standins" / Path(served["url"]).name
    assert fetched.stat().st_size == served["size"]
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == served["sha256"]
    assert not (root / "cache" / "models" / "sam").exists()  # never where the real checkpoint belongs

    # what the chapters read: flan-t5 CoT outputs are newline-free (its tokenizer has no newline token)
    cot_dir = next((store / "cot_scienceqa").iterdir())
    records = [json.loads(line) for line in (cot_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == 200 and not any("\n" in r["cot_text"] for r in records)

    started = time.perf_counter()
    book = _cli(["book-check", "--profile", "full", *CHAPTERS], env, cwd=PROJECT_ROOT, timeout=900)
    book_seconds = time.perf_counter() - started
    assert book.returncode == 0, book.stdout[-6000:] + book.stderr[-3000:]

    # a second `run` reuses every stored run (keys are stable across processes)
    again = _cli(["run", "all", "--profile", "full"], env, cwd=root / "hub", timeout=600)
    assert again.returncode == 0 and again.stdout.count("reused the stored run") == len(registry), again.stdout

    assert [tree_hash(p) for p in watched] == before  # results/offline byte-identical, results/full untouched
    print(f"\nfull profile: run all {run_seconds:.0f} s, book-check {book_seconds:.0f} s")


@needs_quarto
def test_full_book_renders_and_tells_the_truth(full_env):
    """The full book rendered by Quarto (HTML and PDF) from the stand-in results: the render checks of
    the offline book, and no offline model, data copy or machine setting named outside sentences about
    the offline profile. The committed `_freeze/` (the offline profile's) is not touched."""
    from analysis import book

    root, env = full_env
    run = _cli(["run", "all", "--profile", "full"], env, cwd=root / "hub", timeout=1200)  # reused when stored
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    freeze_before = tree_hash(PROJECT_ROOT / "_freeze")
    out = root / "book"
    quarto_render("full", out, env)
    problems = book.rendered_problems(out, book.book_files(), pages=(15, 90))
    for page in sorted(out.rglob("*.html")):
        if "site_libs" not in page.parts:
            problems += book.offline_mentions(book._html_text(page.read_text(errors="replace")),
                                              str(page.relative_to(out)))
    assert problems == [], "\n".join(problems)
    assert tree_hash(PROJECT_ROOT / "_freeze") == freeze_before, "the full render changed the committed _freeze/"
