"""The chapters' verdicts follow the numbers: rendered from two result sets whose key comparisons go
opposite ways, every judging word flips with them.

Two copies of the smoke store are made in which the runs the verdicts judge are saved again with
their key numbers set to opposite outcomes (chain of thought helps vs hurts; calibration helps vs
hurts the few-shot prompt; one point per lung better vs worse than one box per lung). Each chapter is
executed against each copy (the book check's executor, no Quarto), and the words its inline
expressions print are compared.
"""

from __future__ import annotations

import shutil

import pytest

from analysis import book, experiments
from analysis.paths import PROJECT_ROOT
from analysis.store import Output, Store


def _resave(store: Store, run, metrics: dict | None = None, tables: dict | None = None) -> None:
    """Save ``run`` again into ``store`` under its own key, with some metrics or table rows replaced."""
    out = Output(metrics={**run.metrics, **(metrics or {})},
                 tables={name: (tables or {}).get(name, run.rows(name)) for name in run.table_names()},
                 arrays=dict(run.arrays) if (run.path / "arrays.npz").exists() else {},
                 web={p.name: p.read_bytes() for p in (run.path / "web").glob("*")} if (run.path / "web").is_dir() else {})
    m = run.meta
    store.save(experiment=run.experiment, profile=run.profile, key=run.key, config=m["config"], output=out,
               code_version=m["code_version"], source_hash=m.get("source_hash", ""), data_fingerprint=m["data_fingerprint"],
               env=m["env"], wall_seconds=run.wall_seconds, replace=True, source_digests=m.get("source_digests"))


def _summary_with(run, means: dict[str, float]) -> list[dict]:
    return [dict(r, mean=means.get(r["strategy"], r["mean"])) for r in run.rows("summary")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, shared_data):
    """Two smoke stores: ``up`` (CoT helps, calibration helps, boxes beat points) and ``down`` (the opposite)."""
    for name in ("sam_prompts", "sam_auto", "sam_explorer", "agnews_stats", "bert_finetune", "bert_attention",
                 "bert_fewshot", "cot_scienceqa"):
        experiments.get_or_run(name, "smoke")  # computed here when no other test has yet
    base = Store()
    runs = {name: experiments.lookup(name, "smoke") for name in ("cot_scienceqa", "bert_fewshot", "sam_prompts")}
    out = {}
    for kind, sign in (("up", 1), ("down", -1)):
        root = tmp_path_factory.mktemp(kind)
        shutil.copytree(base.root / "smoke", root / "smoke")
        store = Store(root)
        lo, hi = (0.30, 0.60) if sign > 0 else (0.60, 0.30)
        _resave(store, runs["cot_scienceqa"], metrics={"acc_direct": lo, "acc_cot": hi})
        _resave(store, runs["bert_fewshot"], metrics={"accuracy_raw": lo, "accuracy_calibrated": hi,
                                                      "macro_f1_raw": lo, "macro_f1_calibrated": hi})
        box, point = (0.95, 0.40) if sign > 0 else (0.40, 0.95)
        _resave(store, runs["sam_prompts"], tables={"summary": _summary_with(
            runs["sam_prompts"], {"box_per_lung": box, "point_per_lung": point})})
        out[kind] = root
    return out


_EXECUTED: dict[tuple, dict[str, str]] = {}


def _inline_words(doc_path, results_root, monkeypatch) -> dict[str, str]:
    """Each inline expression of the chapter -> what it printed, executed against ``results_root``
    (once per chapter and store)."""
    if (doc_path, results_root) in _EXECUTED:
        return _EXECUTED[doc_path, results_root]
    monkeypatch.setenv("ANALYSIS_RESULTS_DIR", str(results_root))
    nb = book.execute(book.parse(doc_path), profile="smoke")
    words = _EXECUTED[doc_path, results_root] = {}
    for cell in nb.cells:
        if cell.metadata.get("quarto", {}).get("inline"):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            words[cell.source] = text.strip()
    return words


@pytest.mark.parametrize("chapter, expression, up, down", [
    ("04-chain-of-thought.qmd", "print(ch.change_verb(run))", "raised", "lowered"),
    ("03-bert-attention.qmd", 'print(ch.change(fsm["macro_f1_raw"], fsm["macro_f1_calibrated"]))',
     "rose from 0.300 to 0.600", "fell from 0.600 to 0.300"),
    ("03-bert-attention.qmd", 'print(ch.gap(fsm["accuracy_calibrated"], fsm["accuracy_raw"]))',
     "30.0 points above", "30.0 points below"),
    ("01-segment-anything.qmd", 'print(ch.meets(box["mean"]))', "clears", "misses"),
    ("01-segment-anything.qmd", 'print(ch.compare(box["mean"], pt["mean"], "beats", "trails", "matches"))',
     "beats", "trails"),
])
def test_verdicts_flip_with_the_numbers(stores, monkeypatch, chapter, expression, up, down):
    doc = PROJECT_ROOT / "chapters" / chapter
    assert expression in {c.source for c in book.parse(doc).cells}, f"{chapter} no longer prints {expression}"
    got_up = _inline_words(doc, stores["up"], monkeypatch)[expression]
    got_down = _inline_words(doc, stores["down"], monkeypatch)[expression]
    assert (got_up, got_down) == (up, down)
