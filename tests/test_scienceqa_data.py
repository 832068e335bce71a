"""ScienceQA loader and sampler: four options, no image, seeded and stable; bad rows."""

import json

import pytest

from analysis.data.scienceqa import draw, sample_questions, scienceqa_file, select, to_question
from analysis.errors import DataError


def _row(pid, n=4, image=False, answer=0, letter="A", **kw):
    return {"pid": str(pid), "question": f"Q{pid}?", "hint": "", "choices": [f"c{i}" for i in range(n)],
            "answer": answer, "answer_letter": letter, "n_choices": n, "has_image": image, **kw}


def _write(tmp_path, rows):
    folder = tmp_path / "scienceqa"
    folder.mkdir()
    with open(folder / "scienceqa_test_all.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return folder


def test_exclusions_counted(tmp_path):
    rows = [_row(1), _row(2, n=2), _row(3, n=5), _row(4, image=True), _row(5, answer=3, letter="D")]
    sample = sample_questions(2, seed=0, root=_write(tmp_path, rows))
    assert sample.pool_size == 2 and sample.n_rows == 5
    assert sample.excluded == {"fewer than 4 options": 1, "more than 4 options": 1, "has image": 1}
    assert sorted(q.id for q in sample.questions) == ["1", "5"]


@pytest.mark.parametrize("bad,msg", [
    (dict(answer=None, answer_letter=None), "no answer"),
    (dict(answer=4, answer_letter=None), "not an index"),
    (dict(answer=None, answer_letter="E"), "outside A-D"),
    (dict(answer=1, answer_letter="C"), "disagreeing"),
    (dict(question=""), "empty question"),
])
def test_bad_rows_raise(tmp_path, bad, msg):
    rows = [_row(1), {**_row(2), **bad}]
    with pytest.raises(DataError, match=msg) as err:
        sample_questions(1, root=_write(tmp_path, rows))
    assert "line 2" in str(err.value) and "fix:" in str(err.value)


def test_wrong_option_count_is_an_error_for_to_question():
    with pytest.raises(DataError, match="3 options"):
        to_question(_row(1, n=3))


def test_too_many_requested(tmp_path):
    with pytest.raises(DataError, match="only 1"):
        sample_questions(2, root=_write(tmp_path, [_row(1)]))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        sample_questions(1, root=tmp_path / "nowhere")


def test_sampler_seeded_and_stable_under_file_order(tmp_path):
    rows = [_row(i, answer=i % 4, letter="ABCD"[i % 4]) for i in range(1, 60)]
    eligible, _, _ = select(rows, "x")
    a = [q.id for q in draw(eligible, 10, seed=3)]
    b = [q.id for q in draw(list(reversed(eligible)), 10, seed=3)]
    assert a == b
    assert a != [q.id for q in draw(eligible, 10, seed=4)]


@pytest.mark.skipif(not scienceqa_file().exists(), reason="ScienceQA data not available")
def test_real_sample():
    sample = sample_questions(200, seed=0)
    qs = sample.questions
    assert len(qs) == 200 and len({q.id for q in qs}) == 200
    assert sample.pool_size == 234  # PROVENANCE.md: 234 text-only four-choice test problems
    assert all(len(q.choices) == 4 and q.answer_letter in "ABCD" for q in qs)
    raw = {json.loads(l)["pid"]: json.loads(l) for l in open(scienceqa_file())}
    assert all(not raw[q.id]["has_image"] and raw[q.id]["split"] == "test" for q in qs)
    assert all(raw[q.id]["answer_letter"] == q.answer_letter for q in qs)
    assert [q.id for q in sample_questions(200, seed=0).questions] == [q.id for q in qs]
    assert qs[0].group  # topic or "stem: ..."
