"""ScienceQA (Lu et al. 2022) questions for the chain-of-thought chapter.

Offline: ``data_dir()/scienceqa/scienceqa_{split}_all.jsonl`` (official pids and splits; subject,
topic and skill known only for some pids, see that folder's PROVENANCE.md). Full profile: the hub
copy ``derek-thomas/ScienceQA`` (every field present; ids are ``<split>-<row index>``).

The sampler keeps text-only questions (no image) with exactly four options. Questions with another
number of options, or with an image, are *excluded and counted* (that is the selection rule, not an
error). A selected question whose answer is missing, out of range or disagrees with its letter is
malformed data: ``DataError`` with the file, the line and the fix.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import DataError
from ..paths import data_dir

LETTERS = ("A", "B", "C", "D")
N_OPTIONS = 4
HUB_ID = "derek-thomas/ScienceQA"


@dataclasses.dataclass(frozen=True)
class Question:
    """One multiple-choice question with exactly four options; ``answer_index`` is 0-based."""

    id: str
    question: str
    hint: str  # the text context ("Context:" in the prompt); "" when there is none
    choices: tuple[str, str, str, str]
    answer_index: int
    subject: str | None = None
    topic: str | None = None
    category: str | None = None
    skill: str | None = None
    grade: str | None = None

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer_index]

    @property
    def stem(self) -> str:
        """The question's first line (e.g. "What do these two changes have in common?"): the
        grouping key where subject/topic metadata is missing."""
        return self.question.strip().split("\n", 1)[0].strip()

    @property
    def group(self) -> str:
        """Topic where known, else ``stem: <first line>`` (offline metadata is mostly missing)."""
        return self.topic if self.topic else f"stem: {self.stem}"


def scienceqa_file(split: str = "test", root: Path | None = None) -> Path:
    return (root or data_dir() / "scienceqa") / f"scienceqa_{split}_all.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a ScienceQA jsonl file; each row gets ``_line`` (1-based) for error messages."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found",
                        "put the ScienceQA jsonl files in data/scienceqa/ or set ANALYSIS_DATA_DIR "
                        "(see ../shared/data/scienceqa/PROVENANCE.md), or use the full profile (hub)")
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"line {line_no} is not JSON ({exc.msg})", "restore the file") from None
            row["_line"] = line_no
            rows.append(row)
    return rows


def _has_image(row: dict) -> bool:
    value = row.get("has_image")
    if value is None:  # hub rows: an image object or None
        return row.get("image") is not None
    return bool(value)


def to_question(row: dict, path: Path | str = "<rows>") -> Question:
    """A validated four-option ``Question`` from a raw row (``DataError`` if malformed)."""
    where = f"line {row.get('_line', '?')} (id {row.get('pid', row.get('id', '?'))!r})"
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) != N_OPTIONS:
        n = len(choices) if isinstance(choices, list) else "no"
        raise DataError(path, f"{where} has {n} options, this chapter needs exactly {N_OPTIONS}",
                        "select questions with sample_questions(), which excludes and counts them")
    answer = row.get("answer")
    letter = row.get("answer_letter")
    if answer is None and letter is None:
        raise DataError(path, f"{where} has no answer", "restore the row's 'answer' field (0-based index)")
    if answer is None:
        if letter not in LETTERS:
            raise DataError(path, f"{where} has answer letter {letter!r} outside A-D", "fix 'answer_letter'")
        answer = LETTERS.index(letter)
    if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)) or not 0 <= int(answer) < N_OPTIONS:
        raise DataError(path, f"{where} has answer {answer!r}, not an index 0-3", "fix the row's 'answer' field")
    if letter is not None and letter != LETTERS[int(answer)]:
        raise DataError(path, f"{where} has answer {answer} but answer_letter {letter!r} (outside A-D or "
                        "disagreeing)", "make 'answer' and 'answer_letter' agree")
    question = str(row.get("question") or "").strip()
    if not question:
        raise DataError(path, f"{where} has an empty question", "restore the 'question' field")
    return Question(
        id=str(row.get("pid", row.get("id"))),
        question=question,
        hint=str(row.get("hint") or "").strip(),
        choices=tuple(str(c).strip() for c in choices),
        answer_index=int(answer),
        subject=row.get("subject") or None,
        topic=row.get("topic") or None,
        category=row.get("category") or None,
        skill=row.get("skill") or None,
        grade=row.get("grade") or None,
    )


@dataclasses.dataclass(frozen=True)
class Sample:
    """The sampled questions and what the selection excluded (counts by reason)."""

    questions: list[Question]
    pool_size: int  # eligible questions (text-only, four options) the sample is drawn from
    n_rows: int  # rows in the split
    excluded: dict[str, int]  # reason -> count
    source: str


def select(rows: Iterable[dict], path: Path | str) -> tuple[list[Question], dict[str, int], int]:
    """Eligible questions (no image, exactly four options) and exclusion counts by reason."""
    excluded: Counter = Counter()
    eligible, n_rows = [], 0
    for row in rows:
        n_rows += 1
        choices = row.get("choices")
        n = len(choices) if isinstance(choices, list) else 0
        if _has_image(row):
            excluded["has image"] += 1
        elif n < N_OPTIONS:
            excluded[f"fewer than {N_OPTIONS} options"] += 1
        elif n > N_OPTIONS:
            excluded[f"more than {N_OPTIONS} options"] += 1
        else:
            eligible.append(to_question(row, path))
    ids = [q.id for q in eligible]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise DataError(path, f"id {dup!r} occurs more than once", "deduplicate the file")
    return eligible, dict(excluded), n_rows


def _id_order(question: Question):
    return (0, int(question.id), "") if question.id.isdigit() else (1, 0, question.id)


def draw(eligible: list[Question], n: int, seed: int) -> list[Question]:
    """``n`` questions drawn without replacement, seeded; stable: depends on ids, not file order."""
    pool = sorted(eligible, key=_id_order)
    if n > len(pool):
        raise DataError("<sample>", f"asked for {n} questions, only {len(pool)} are text-only with four options",
                        "lower n_questions in the config")
    picks = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in picks]


def load_hub_rows(split: str = "test") -> list[dict]:
    """The hub copy as plain rows (``pid`` = ``<split>-<row index>``)."""
    from datasets import Image, load_dataset

    ds = load_dataset(HUB_ID, split=split)
    if "image" in ds.column_names:  # only whether there is an image matters: do not decode them
        ds = ds.cast_column("image", Image(decode=False))
    rows = []
    for i, ex in enumerate(ds):
        row = {k: ex.get(k) for k in ("question", "hint", "choices", "answer", "subject", "topic",
                                      "category", "skill", "grade")}
        row.update(pid=f"{split}-{i}", has_image=ex.get("image") is not None, _line=i + 1)
        rows.append(row)
    return rows


def sample_questions(n: int = 200, seed: int = 0, split: str = "test", source: str = "local",
                     root: Path | None = None) -> Sample:
    """The chapter's sample: ``n`` text-only, four-option questions of ``split``, seeded.

    ``source``: ``"local"`` (jsonl under data_dir()/scienceqa, or ``root``) or ``"hub"``.
    """
    if source == "hub":
        rows, path = load_hub_rows(split), f"hub:{HUB_ID}/{split}"
    else:
        path = scienceqa_file(split, root)
        rows = read_jsonl(path)
    eligible, excluded, n_rows = select(rows, path)
    return Sample(draw(eligible, n, seed), len(eligible), n_rows, excluded, str(path))


def data_files(split: str = "test", root: Path | None = None) -> list[Path]:
    return [scienceqa_file(split, root)]
