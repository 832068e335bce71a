"""The chapter's data-driven sentences, on hand-built stored tables."""

import math

import pandas as pd
import pytest

from analysis.cot import chapter as ch


class FakeRun:
    def __init__(self, tables: dict[str, list[dict]]):
        self.tables = tables

    def rows(self, name="records"):
        return self.tables[name]

    def table(self, name="records"):
        return pd.DataFrame(self.tables[name])


def group(name, n, fc, fi):
    cc = (n - fc - fi) // 2
    return {"group": name, "n": n, "flip_to_correct": fc, "flip_to_incorrect": fi,
            "correct_correct": cc, "incorrect_incorrect": n - fc - fi - cc}


def test_patterns_sentence_names_largest_group_and_net_extremes():
    run = FakeRun({"by_group": [
        group("stem: Which type of sentence is this?", 20, 1, 7),   # net -6
        group("stem: Select the liquid.", 40, 4, 4),                # largest group, 8 of 20 flips
        group("chemistry", 6, 4, 0),                                # net +4
        group("stem: Select the bird.", 3, 0, 0),                   # below min_n: never named
    ]})
    text = ch.patterns_sentence(run, min_n=5)
    assert text.startswith("The largest group (“Select the liquid.”, 40 of 69 questions) holds 8 of the 20 flips")
    assert "about its share" not in text  # 8/20 = 40% of flips vs 58% of questions
    assert "largest net gain on “chemistry” (4 flips to correct, 0 to incorrect, of 6, McNemar p = 0.12)" in text
    assert "largest net loss was on “Which type of sentence is this?” (1 to correct, 7 to incorrect, of 20, " \
           "McNemar p = 0.07)" in text


def test_patterns_sentence_without_flips_or_losses():
    no_flips = FakeRun({"by_group": [group("a", 10, 0, 0), group("b", 5, 0, 0)]})
    assert ch.patterns_sentence(no_flips).startswith("No answer changed")
    only_gains = FakeRun({"by_group": [group("a", 10, 3, 0), group("b", 10, 1, 1)]})
    text = ch.patterns_sentence(only_gains, min_n=5)
    assert "largest net gain on “a”" in text and "net loss" not in text
    assert "holds 3 of the 5 flips" in text


def test_probe_direct_agreement_skips_unprobed_questions():
    run = FakeRun({"records": [
        {"probe_k0": "A", "direct_letter": "A"},
        {"probe_k0": "B", "direct_letter": "C"},
        {"probe_k0": None, "direct_letter": "D"},
        {"probe_k0": "D", "direct_letter": "D"},
    ]})
    assert ch.probe_direct_agreement(run) == pytest.approx(2 / 3)
    assert math.isnan(ch.probe_direct_agreement(FakeRun({"records": [{"probe_k0": None, "direct_letter": "A"}]})))


def _annotated_run(tmp_path, monkeypatch, labels):
    """A fake run with two sampled chains per category, and ``labels`` written as annotations."""
    import json

    records = []
    for cat in ch.FLIPS:
        for rank in range(2):
            records.append({"id": f"{cat}-{rank}", "flip": cat, "qual_rank": rank,
                            "cot_text": f"Reasoning: {cat} {rank}\nAnswer: A"})
    run = FakeRun({"records": records})
    run.experiment, run.profile = "cot_scienceqa", "test"
    path = tmp_path / "annotations" / "cot_scienceqa-test.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in labels(records)))
    monkeypatch.setattr(ch, "annotations_path", lambda run: path)
    return run, records


def test_labels_count_only_for_the_exact_output_read(tmp_path, monkeypatch):
    def labels(records):
        by_id = {r["id"]: r for r in records}
        return [
            {"id": "flip_to_incorrect-0", "text_sha": ch.text_sha(by_id["flip_to_incorrect-0"]["cot_text"]),
             "label": "misleading", "note": "wrong fact"},
            # read from an earlier output: its hash no longer matches, so it does not count
            {"id": "flip_to_incorrect-1", "text_sha": ch.text_sha("another output"), "label": "nonsensical"},
        ]

    run, _ = _annotated_run(tmp_path, monkeypatch, labels)
    counts = ch.label_counts(run, "flip_to_incorrect")
    assert counts == {"n": 2, "read": 1, "misleading": 1, "nonsensical": 0, "format": 0}
    assert ch.label_ids(run, "flip_to_incorrect", "misleading") == "flip_to_incorrect-0"
    text = ch.reading_sentence(run, "flip_to_incorrect")
    assert text.startswith("Of the 2 sampled chains we read 1: 1 plausible but misleading")
    assert "not been read" in ch.reading_sentence(run, "correct_correct")
    assert "Without labels" in ch.worth_it_sentence(run)


def test_a_label_outside_its_category_is_an_error(tmp_path, monkeypatch):
    def labels(records):
        r = next(r for r in records if r["flip"] == "correct_correct")
        return [{"id": r["id"], "text_sha": ch.text_sha(r["cot_text"]), "label": "misleading"}]

    run, _ = _annotated_run(tmp_path, monkeypatch, labels)
    with pytest.raises(ValueError, match="labels not defined for their category"):
        ch.annotations(run)
