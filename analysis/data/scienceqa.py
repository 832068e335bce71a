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
from ..store import fingerprint_files

LETTERS = ("A", "B", "C", "D")
N_OPTIONS = 4
HUB_ID = "derek-thomas/ScienceQA"
# The hub data set's commit: loads are pinned to it and it is part of the hub data fingerprint, so a
# changed data set changes the run key. It is the commit public projects pin for this data set (its
# test split is data/test-00000-of-00001-f0e719df791966ff.parquet there); to move on, put a newer commit
# of https://huggingface.co/datasets/derek-thomas/ScienceQA/commits/main here.
HUB_REVISION = "f18b0a70359ebfb41f658fd564208d0355b013f4"
HUB_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


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

    def rotated(self, shift: int) -> "Question":
        """The same question with its options moved ``shift`` letters down (cyclically): option
        ``i`` is shown as letter ``(i + shift) % 4``; shifts 1-3 give every option a new letter."""
        order = [(i - shift) % 4 for i in range(4)]  # the option shown at each letter
        return dataclasses.replace(self, choices=tuple(self.choices[i] for i in order),
                                   answer_index=(self.answer_index + shift) % 4)

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
    if not path.is_file():
        raise DataError(path, "is not a file", "put the jsonl file itself there")
    rows = []
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a leading BOM is not data
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(path, f"line {line_no} is not JSON ({exc.msg}; truncated or edited?)",
                                    "restore the file (one JSON object per line)") from None
                if not isinstance(row, dict):
                    raise DataError(path, f"line {line_no} is a JSON {type(row).__name__}, not an object",
                                    "restore the file (one JSON object per line)")
                row["_line"] = line_no
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(path, f"is not UTF-8 text (byte {exc.start}: {exc.reason})",
                        "save the file as UTF-8 (JSON text is UTF-8)") from None
    except OSError as exc:  # no permission, I/O error
        raise DataError(path, f"cannot be read ({exc.__class__.__name__}: {exc.strerror or exc})",
                        "make the file readable, or copy it again") from None
    if not rows:
        raise DataError(path, "holds no questions (the file is empty)",
                        "copy scienceqa_*_all.jsonl again (see PROVENANCE.md in the data folder)")
    return rows


def _where(row: dict) -> str:
    return f"line {row.get('_line', '?')} (id {row.get('pid', row.get('id', '?'))!r})"


def _has_image(row: dict, path: Path | str = "<rows>") -> bool:
    value = row.get("has_image")
    if value is None:  # hub rows: an image object or None
        return row.get("image") is not None
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise DataError(path, f"{_where(row)} has has_image {value!r}, not true/false",
                    "write has_image as a JSON boolean (true/false), not a string")


def check_row(row: dict, path: Path | str = "<rows>") -> None:
    """What every row needs before it can be selected or excluded: an id and a list of string choices."""
    if row.get("pid", row.get("id")) in (None, ""):
        raise DataError(path, f"{_where(row)} has no id ('pid')", "restore the row's 'pid' field")
    choices = row.get("choices")
    if not isinstance(choices, list):
        raise DataError(path, f"{_where(row)} has choices {type(choices).__name__ if choices is not None else 'missing'}"
                        ", not a list", "restore the row's 'choices' field (a JSON list of strings)")
    if not all(isinstance(c, str) and c.strip() for c in choices):
        raise DataError(path, f"{_where(row)} has a choice that is not a non-empty string ({choices!r:.80})",
                        "restore the row's 'choices' field (a JSON list of strings)")


def to_question(row: dict, path: Path | str = "<rows>") -> Question:
    """A validated four-option ``Question`` from a raw row (``DataError`` if malformed)."""
    where = _where(row)
    check_row(row, path)
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
        check_row(row, path)
        n = len(row["choices"])
        if _has_image(row, path):
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


def draw(eligible: list[Question], n: int, seed: int, path: Path | str = "<sample>") -> list[Question]:
    """``n`` questions drawn without replacement, seeded; stable: depends on ids, not file order."""
    pool = sorted(eligible, key=_id_order)
    if n > len(pool):
        raise DataError(path, f"asked for {n} questions, only {len(pool)} are text-only with four options",
                        "lower n_questions in the config, or check that the file is complete")
    picks = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in picks]


def load_hub_rows(split: str = "test") -> list[dict]:
    """The hub copy as plain rows (``pid`` = ``<split>-<row index>``)."""
    from datasets import Image, load_dataset

    hub_split = HUB_SPLITS.get(split, split)
    try:
        # only this split's parquet file(s): not every split with its images (~626 MB in all)
        ds = load_dataset(HUB_ID, revision=HUB_REVISION, data_files={hub_split: f"data/{hub_split}-*.parquet"},
                          split=hub_split)
    except Exception as exc:  # no network, hub changes: say what to do
        raise DataError(f"hub:{HUB_ID}@{HUB_REVISION[:12]}/{hub_split}",
                        f"cannot load from the hub ({exc.__class__.__name__}: {str(exc)[:200]})",
                        "connect to the internet, or use the offline profile (local jsonl files)") from exc
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
    if not rows:
        raise DataError(path, "holds no questions", "check the split name and the source")
    eligible, excluded, n_rows = select(rows, path)
    return Sample(draw(eligible, n, seed, path), len(eligible), n_rows, excluded, str(path))


def data_files(split: str = "test", root: Path | None = None) -> list[Path]:
    return [scienceqa_file(split, root)]


_CHECKED: dict[tuple[str, int, int], None] = {}


def check_file(path: Path) -> Path:
    """Read and validate every row of a local file (memoised on path, size, mtime); returns the path."""
    path = Path(path)
    if path.exists():
        stat = path.stat()
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if memo in _CHECKED:
            return path
    select(read_jsonl(path), path)
    _CHECKED[memo] = None
    return path


def fingerprint(split: str = "test", source: str = "local", root: Path | None = None) -> str:
    """Data fingerprint for the result store: the local file is validated, then hashed (contents);
    hub data is the hub id at its pinned revision."""
    if source == "hub":
        return f"hub:{HUB_ID}@{HUB_REVISION}"
    if source != "local":
        raise DataError(str(source), f"unknown source {source!r}", "use 'local' or 'hub'")
    return fingerprint_files([check_file(p) for p in data_files(split, root)])
