"""The chapter's numbers and result-dependent words, on hand-built stored tables."""

import dataclasses
import math
import re

import pandas as pd
import pytest

from analysis.cot import chapter as ch
from analysis.models import spec
from analysis.report import MISSING


class FakeRun:
    def __init__(self, tables: dict[str, list[dict]], metrics: dict | None = None, config: dict | None = None):
        self.tables = tables
        self.metrics = metrics or {}
        self.config = config or {}

    def rows(self, name="records"):
        return self.tables[name]

    def table(self, name="records"):
        return pd.DataFrame(self.tables[name])


def group(name, n, fc, fi):
    cc = (n - fc - fi) // 2
    return {"group": name, "n": n, "flip_to_correct": fc, "flip_to_incorrect": fi,
            "correct_correct": cc, "incorrect_incorrect": n - fc - fi - cc}


GROUPS = [
    group("stem: Which type of sentence is this?", 20, 1, 7),   # net -6
    group("stem: Select the liquid.", 40, 4, 4),                # largest group, 8 of 20 flips
    group("chemistry", 6, 4, 0),                                # net +4
    group("stem: Select the bird.", 3, 0, 0),                   # below min_n: never named
]


def test_largest_group_counts_its_flips_against_all_flips():
    lg = ch.largest_group(FakeRun({"by_group": GROUPS}))
    assert lg == {"name": "Select the liquid.", "n": 40, "share": "58.0%", "flips": 8, "n_flips": 20,
                  "flip_share": "40.0%"}
    no_flips = ch.largest_group(FakeRun({"by_group": [group("a", 10, 0, 0), group("b", 5, 0, 0)]}))
    assert (no_flips["n_flips"], no_flips["flip_share"]) == (0, MISSING)


def test_net_extremes_among_groups_large_enough():
    hi, lo, min_n = ch.net_extremes(FakeRun({"by_group": GROUPS}), min_n=5)
    assert min_n == 5
    assert hi == {"name": "chemistry", "n": 6, "fc": 4, "fi": 0, "net": "+4", "p": "0.12"}
    assert lo == {"name": "Which type of sentence is this?", "n": 20, "fc": 1, "fi": 7, "net": "-6", "p": "0.07"}
    # no group reaches min_n: the limit drops to the largest group's size instead of failing
    hi, lo, min_n = ch.net_extremes(FakeRun({"by_group": [group("a", 3, 1, 0), group("b", 2, 0, 2)]}), min_n=5)
    assert (min_n, hi["name"], lo["name"]) == (3, "a", "a")


def test_net_extremes_signs_follow_the_numbers():
    """With only losses the 'highest' net change is negative, and it says so."""
    hi, lo, _ = ch.net_extremes(FakeRun({"by_group": [group("a", 10, 0, 3), group("b", 10, 0, 5)]}))
    assert (hi["name"], hi["net"], lo["name"], lo["net"]) == ("a", "-3", "b", "-5")


def test_change_verb_and_significance_follow_the_numbers():
    def run(d, c):
        return FakeRun({}, metrics={"acc_direct": d, "acc_cot": c})

    assert ch.change_verb(run(0.5, 0.6)) == "raised"
    assert ch.change_verb(run(0.6, 0.5)) == "lowered"
    assert ch.change_verb(run(0.56, 0.56)) == "did not change"
    assert ch.significance(0.049) == "significant" and ch.significance(0.05) == "not significant"
    assert ch.p_text(3.552713678800501e-15) == "3.55e-15" and ch.p_text(1.0) == "1"
    assert ch.p_text(float("nan")) == MISSING


def test_top_letter_ignores_invalid_and_says_none_without_letters():
    letters = [{"letter": "A", "gold": 2, "direct": 5, "cot": 0}, {"letter": "B", "gold": 4, "direct": 3, "cot": 0},
               {"letter": "C", "gold": 2, "direct": 1, "cot": 0}, {"letter": "D", "gold": 2, "direct": 1, "cot": 0},
               {"letter": "INVALID", "gold": 0, "direct": 0, "cot": 10}]
    run = FakeRun({"letters": letters}, metrics={"n": 10})
    assert ch.top_letter(run, "direct") == {"letter": "A", "share": "50.0%", "gold": "20.0%"}
    assert ch.top_letter(run, "cot") == {"letter": "none", "share": "0.0%", "gold": MISSING}


def _records():
    base = {"reasoning_supports": None, "n_new_tokens": 100, "format_ok": False, "probe_agree_k0": None}
    rows = [
        # incorrect both: one keeps the direct letter, two move to another letter, one is INVALID
        {"flip": "incorrect_incorrect", "direct_letter": "A", "cot_letter": "A", "probe_agree_k0": True},
        {"flip": "incorrect_incorrect", "direct_letter": "A", "cot_letter": "B", "probe_agree_k0": False},
        {"flip": "incorrect_incorrect", "direct_letter": "C", "cot_letter": "D", "probe_agree_k0": False},
        {"flip": "incorrect_incorrect", "direct_letter": "A", "cot_letter": "INVALID", "n_new_tokens": 256},
        {"flip": "correct_correct", "direct_letter": "B", "cot_letter": "B", "n_new_tokens": 40, "format_ok": True},
    ]
    return [{**base, **r} for r in rows]


def test_category_summary_counts_same_other_and_invalid_letters():
    summary = ch.category_summary(FakeRun({"records": _records()})).set_index("category")
    ii = summary.loc["incorrect both times"]
    assert (ii["n"], ii["same letter"], ii["other letter"], ii["INVALID"]) == (4, 1, 2, 1)
    assert ii["fixed before reasoning"] == "33.3%"  # 1 of the 3 probed chains
    assert ii["mean tokens"] == "139"  # the category's own mean, not the run's
    cc = summary.loc["correct both times"]
    assert (cc["mean tokens"], cc["format ok"], cc["fixed before reasoning"]) == ("40", "100.0%", MISSING)
    empty = summary.loc["flip to correct"]
    assert (empty["n"], empty["mean tokens"], empty["format ok"]) == (0, MISSING, MISSING)
    assert ch.category_fact(FakeRun({"records": _records()}), "incorrect_incorrect", "other letter") == 2


def test_group_counts_names_groups_with_their_sizes():
    recs = [{"flip": "flip_to_correct", "group": "stem: Select the liquid."}] * 3 + \
           [{"flip": "correct_correct", "group": "stem: Select the liquid."}] * 2 + \
           [{"flip": "flip_to_correct", "group": "chemistry"}]
    run = FakeRun({"records": recs})
    assert ch.group_counts(run, "flip_to_correct") == \
        "“Select the liquid\\.” (3 of its 5 questions); “chemistry” (1 of its 1 questions)"
    assert ch.group_counts(run, "flip_to_incorrect") == "none"


def test_probe_direct_agreement_skips_unprobed_questions():
    run = FakeRun({"records": [
        {"probe_k0": "A", "direct_letter": "A"},
        {"probe_k0": "B", "direct_letter": "C"},
        {"probe_k0": None, "direct_letter": "D"},
        {"probe_k0": "D", "direct_letter": "D"},
    ]})
    assert ch.probe_direct_agreement(run) == pytest.approx(2 / 3)
    assert math.isnan(ch.probe_direct_agreement(FakeRun({"records": [{"probe_k0": None, "direct_letter": "A"}]})))


def test_model_words_come_from_capabilities(monkeypatch):
    """The same registry entry read as a chat model, a seq2seq model and a plain language model."""
    base = spec("flan_t5_base")
    variants = {"chat": dataclasses.replace(base, family="causal_lm", chat=True),
                "seq2seq": base,
                "plain": dataclasses.replace(base, family="causal_lm", chat=False)}
    words = {}
    for kind, s in variants.items():
        monkeypatch.setattr(ch, "spec", lambda name, s=s: s)
        run = FakeRun({}, config={"model": "any"})
        words[kind] = (ch.model_kind(run), ch.direct_input(run), ch.cot_input(run))
    assert words["chat"][0] == "chat model" and "system turn" in words["chat"][2]
    assert "user turn" in words["chat"][1] and "The correct answer is (" in words["chat"][1]
    assert words["seq2seq"] == ("sequence-to-sequence model", "as one text",
                                "the instruction, a blank line and the question block as one text")
    assert "turn" not in words["plain"][1] and "The correct answer is (" in words["plain"][1]
    monkeypatch.setattr(ch, "spec", lambda name: base)
    assert ch.model_line(FakeRun({}, config={"model": "any"})) == \
        "**FLAN-T5-base** [@chung2022flan]: hub google/flan-t5-base; 248M params."


def test_prompts_wrap_to_the_page_and_keep_their_lines():
    text = "Reasoning: <step 1>\n" + "word " * 40 + "\n\nAnswer: " + "x" * 100
    wrapped = ch.wrap_lines(text, width=30).split("\n")
    assert all(len(line) <= 30 for line in wrapped)
    assert wrapped[0] == "Reasoning: <step 1>" and wrapped[1].startswith("word")
    assert all(line.startswith("    ") for line in wrapped[2:wrapped.index("")])  # continuations
    assert "" in wrapped  # the blank line stays
    # nothing is lost, a word longer than the line included: only whitespace changes
    assert "".join(ch.wrap_lines(text, 30).split()) == "".join(text.split())


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
    assert ch.label_count(run, "flip_to_incorrect") == 1
    assert ch.label_count(run, "flip_to_incorrect", "nonsensical") == 0
    assert ch.top_label(run, "flip_to_incorrect") == "misleading (1 of 1 read)"
    assert ch.top_label(run, "correct_correct") == "none read"


def test_top_label_names_every_tied_label(tmp_path, monkeypatch):
    def labels(records):
        cc = [r for r in records if r["flip"] == "correct_correct"]
        return [{"id": r["id"], "text_sha": ch.text_sha(r["cot_text"]), "label": lab}
                for r, lab in zip(cc, ["useful", "flawed"])]

    run, _ = _annotated_run(tmp_path, monkeypatch, labels)
    assert ch.top_label(run, "correct_correct") == "useful and flawed (1 each of 2 read)"


def test_a_label_outside_its_category_is_an_error(tmp_path, monkeypatch):
    def labels(records):
        r = next(r for r in records if r["flip"] == "correct_correct")
        return [{"id": r["id"], "text_sha": ch.text_sha(r["cot_text"]), "label": "misleading"}]

    run, _ = _annotated_run(tmp_path, monkeypatch, labels)
    with pytest.raises(ValueError, match="labels not defined for their category"):
        ch.annotations(run)


def test_stored_text_prints_as_itself_in_markdown():
    """Model outputs are data: no emphasis, code, math, citation, link or HTML may come out of them."""
    raw = "costs $5 and $6, `x`, @key [l](u) *b* _c_ \\ ~s~ ^t^ #h | <b> & 'None'\nnext"
    md = ch._md_escape(raw)
    assert "\n" not in md and " ⏎ " in md
    assert "<b>" not in md and "\\<b\\>" in md and "\\&" in md
    unescaped = re.sub(r"\\.", "", md)  # drop every backslash-escaped character
    assert not set("$`@[]*_~^#|\\") & set(unescaped)
    assert "\\'None\\'" in md  # quotes stay quotes (escaped: Pandoc prints them as quotes) (the book's check reads &#x27;None&#x27; as a raw None)


@pytest.mark.parametrize("line, problem", [
    ('{"id": "flip_to_correct-0", "text_sha": "ab', "line 2 is not valid JSON"),  # truncated (a killed editor)
    ('{"id": "flip_to_correct-0", "label": "derived"}', "line 2 lacks the field 'text_sha'"),
    ('["a list"]', "line 2 is not a JSON object"),
])
def test_a_damaged_annotation_line_names_the_file_and_line(tmp_path, monkeypatch, line, problem):
    from analysis.errors import DataError

    run, _ = _annotated_run(tmp_path, monkeypatch, lambda records: [{"id": "x", "text_sha": "y", "label": "z"}])
    path = ch.annotations_path(run)
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DataError, match=problem) as err:
        ch.annotations(run)
    assert str(path) in str(err.value) and "fix:" in str(err.value)


def test_agreement_against_chance_and_kappa():
    """Two answers that both favour C agree often by chance alone; kappa takes that out."""
    from analysis.cot.compute import agreement_vs_chance

    biased = agreement_vs_chance(list("CCCCCCCCAB"), list("CCCCCCCCBA"))
    assert biased["agree"] == pytest.approx(0.8)
    assert biased["chance"] == pytest.approx(0.8 * 0.8 + 0.1 * 0.1 * 2)
    assert biased["kappa"] == pytest.approx((0.8 - 0.66) / (1 - 0.66))
    perfect = agreement_vs_chance(list("ABCD"), list("ABCD"))
    assert perfect["kappa"] == pytest.approx(1.0)
    assert agreement_vs_chance(["INVALID", None], ["A", "B"])["n"] == 0  # no valid pair: nothing to compare
    assert [ch.kappa_words(k) for k in (-0.1, 0.1, 0.3, 0.5, 0.7, 0.9)] == [
        "no agreement beyond chance", "slight agreement", "fair agreement", "moderate agreement",
        "substantial agreement", "almost perfect agreement"]


def test_rotated_options_map_back_to_the_original_letters():
    from analysis.cot.compute import _original_letter, _shifts
    from analysis.data.scienceqa import Question

    q = Question(id="7", question="?", hint="", choices=("w", "x", "y", "z"), answer_index=1)
    for shift in (1, 2, 3):
        r = q.rotated(shift)
        assert r.choices[r.answer_index] == "x"  # the gold option keeps its text, moves letter
        assert r.answer_letter != q.answer_letter
        shown = r.choices.index("y")
        assert _original_letter("ABCD"[shown], shift) == "C"
    assert _original_letter("INVALID", 2) == "INVALID"
    assert all(s in (1, 2, 3) for s in _shifts([q] * 5, seed=0))


def test_control_and_placement_words_come_from_the_metrics():
    probe = [{"steps_kept": k, "n": 10, "agree": 0.9 - 0.1 * k, "chance": 0.5, "kappa": 0.8 - 0.2 * k}
             for k in range(4)]
    letters = {name: {"A": 1, "B": 1, "C": 7, "D": 1, "INVALID": 0}
               for name in ("gold", "main probe_k0", "control probe_k0", "main direct", "control direct",
                            "main cot", "control cot")}
    letters["control probe_k0"] = {"A": 2, "B": 6, "C": 1, "D": 1, "INVALID": 0}
    summary = {"n": 10, "n_format_ok": 3, "n_invalid": 1, "n_marked_any": 6, "n_hit_max": 0, "acc_direct": 0.5,
               "acc_cot": 0.6, "n_flip_to_correct": 2, "n_flip_to_incorrect": 1, "mcnemar_p": 1.0}
    metrics = {"main_placement": "system", "other_placement": "user", "variant_n": 10,
               "placements": {"system": summary, "user": {**summary, "n_format_ok": 8}},
               "control": {**summary, "same_option": {"cot_letter": {"n": 9, "same_option": 0.7},
                                                      "direct_letter": {"n": 10, "same_option": 0.5},
                                                      "probe_k0": {"n": 9, "same_option": 0.2}},
                           "letters": letters, "probe_main": probe,
                           "probe_control": [{**r, "kappa": 0.2 + 0.1 * r["steps_kept"]} for r in probe]}}
    run = FakeRun({"probe": probe}, metrics)
    assert ch.placement(run, "other", "n_format_ok") == 8 and ch.placement(run, "main", "n_format_ok") == 3
    table = ch.placement_table(run)
    assert list(table["format ok"]) == [3, 8] and "(main run)" in table["placement"][0]
    assert ch.control_fact(run, "same_probe_k0") == 0.2
    assert ch.control_fact(run, "kappa_control", 0) == pytest.approx(0.2)
    assert ch.control_fact(run, "top_k0_control") == {"letter": "B", "share": "60.0%"}
    assert len(ch.control_table(run)) == 4 + 4
    assert ch.probe_row(run, 1)["kappa"] == pytest.approx(0.6)
    assert math.isnan(ch.control_fact(FakeRun({}, {}), "same_probe_k0"))
