"""Answer extraction from raw generations (separate from prompting and scoring).

Two rules, as lm-evaluation-harness's strict-match and flexible-extract filters:

- **strict**: the first line of the form ``Answer: X`` (``Answer`` capitalised, a colon, one letter
  A-D, optionally in parentheses or followed by ``.``/``)``, nothing else but the option text);
- **flexible**: otherwise the last answer-like mention (``answer is (b)``, ``Answer: b``, a
  bare ``(C)`` line, ``option D``), or the exact text of one option after ``Answer:``.

An output neither rule reads is ``INVALID``: counted and shown, never dropped or guessed.
"""

from __future__ import annotations

import dataclasses
import re

INVALID = "INVALID"
LETTERS = "ABCD"

_STRICT = re.compile(r"^\s*Answer:\s*\(?([A-D])\)?(?:[.)]|\s|$)", re.MULTILINE)
_ANSWER_ANY = re.compile(
    r"answer\s*(?:is|:|=|\s)*(?:option\s*)?[\(\[\*]*\s*([A-Da-d])\s*(?:[\)\]\.\*:,]|\s|$)", re.IGNORECASE
)
_OPTION_WORD = re.compile(r"\b(?:option|choice)\s*\(?([A-D])\b\)?", re.IGNORECASE)
_BARE_LINE = re.compile(r"^\s*[\(\[\*]*([A-D])[\)\]\.\*]*\s*$", re.MULTILINE)
_STEP = re.compile(r"^[ \t]*[\*#]*\s*(?:step\s*\d+\s*[:.-]\s*)?reasoning(?:\s*(?:step\s*)?\d+)?\s*[\*]*\s*:\s*[\*]*\s*(.*)$",
                   re.IGNORECASE | re.MULTILINE)
_ANSWER_LINE = re.compile(r"^\s*[\*#]*\s*(?:final\s+)?answer\b", re.IGNORECASE | re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What one raw output yields. ``letter`` is the final prediction or ``INVALID``."""

    letter: str
    rule: str  # "strict" | "flexible" | "invalid"
    strict_letter: str | None
    n_answer_letters: int  # distinct letters named on answer lines (>1: conflicting answers)
    steps: tuple[str, ...]  # every "Reasoning:" step, in order
    format_ok: bool  # exactly three Reasoning lines, then a strict Answer line, nothing else


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def reasoning_steps(text: str) -> list[tuple[str, int, int]]:
    """The ``Reasoning:`` lines before the first answer line: (step text, line start, line end
    including its newline) in characters of ``text``."""
    stop = _ANSWER_LINE.search(text)
    limit = stop.start() if stop else len(text)
    out = []
    for m in _STEP.finditer(text):
        if m.start() >= limit:
            break
        end = m.end()
        if end < len(text) and text[end] == "\n":
            end += 1
        out.append((m.group(1).strip().strip("*").strip(), m.start(), end))
    return out


def extract(text: str, choices: tuple[str, ...] | None = None) -> Extraction:
    """Strict then flexible extraction of the final letter from one chain-of-thought output."""
    steps = tuple(s for s, _, _ in reasoning_steps(text))
    strict = [m.group(1) for m in _STRICT.finditer(text)]
    answer_mentions = [m.group(1).upper() for m in _ANSWER_ANY.finditer(text)]
    n_letters = len(set(strict) | set(answer_mentions))
    if strict:
        letter, rule = strict[0], "strict"
    else:
        letter, rule = _flexible(text, choices), "flexible"
        if letter is None:
            letter, rule = INVALID, "invalid"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    format_ok = (
        bool(strict)
        and len(lines) == 4
        and all(re.match(r"^\s*Reasoning:\s*\S", ln) for ln in lines[:3])
        and _STRICT.match(lines[3]) is not None
    )
    return Extraction(letter, rule, strict[0] if strict else None, n_letters, steps, format_ok)


def _flexible(text: str, choices: tuple[str, ...] | None) -> str | None:
    # the answer-like mention that comes last is the model's final word
    candidates: list[tuple[int, str]] = []
    for rx in (_ANSWER_ANY, _OPTION_WORD, _BARE_LINE):
        candidates += [(m.start(), m.group(1).upper()) for m in rx.finditer(text)]
    if choices:
        for m in re.finditer(r"answer\s*(?:is|:)\s*(.+)$", text, re.IGNORECASE | re.MULTILINE):
            said = _norm(m.group(1))
            hits = [i for i, c in enumerate(choices) if _norm(c) and (said == _norm(c) or said.startswith(_norm(c)))]
            if len(hits) == 1:
                candidates.append((m.start(), LETTERS[hits[0]]))
    if not candidates:
        return None
    return max(candidates)[1]


def option_mentions(text: str, choices: tuple[str, ...]) -> list[tuple[int, str]]:
    """Options a reasoning text names: letters ("option B", "(B)") and exact option texts, as
    (character position, letter)."""
    found = [(m.start(), m.group(1).upper()) for m in _OPTION_WORD.finditer(text)]
    found += [(m.start(), m.group(1)) for m in re.finditer(r"\(([A-D])\)", text)]
    low = text.lower()
    for i, choice in enumerate(choices):
        c = choice.lower().strip().rstrip(".")
        if len(c) < 3:
            continue
        # whole-word match, so "salt" does not hit "salty"
        for m in re.finditer(r"(?<![a-z0-9])" + re.escape(c) + r"(?![a-z0-9])", low):
            found.append((m.start(), LETTERS[i]))
    return sorted(found)


def reasoning_supports(steps: tuple[str, ...], choices: tuple[str, ...]) -> str | None:
    """The option the reasoning concludes for, by a simple rule: the last step that names any
    option must name exactly one (by letter or exact option text); None otherwise (no option
    named, or several: a chain that lists options is not arguing for one)."""
    for step in reversed(steps):
        named = {letter for _, letter in option_mentions(step, choices)}
        if named:
            return named.pop() if len(named) == 1 else None
    return None
