"""Answer extraction from raw generations (separate from prompting and scoring).

Two rules, as lm-evaluation-harness's strict-match and flexible-extract filters:

- **strict**: the first line of the form ``Answer: X`` (``Answer`` capitalised, a colon, one letter
  A-D, optionally in parentheses or followed by ``.``/``)``, nothing else but the option text); in
  an output without line breaks (a tokenizer without a newline token, such as flan-t5's, writes the
  whole format on one line) the first ``Answer: X`` that starts the text or follows a space;
- **flexible**: otherwise the last answer-like mention (``answer is (b)``, ``Answer: b``, a
  bare ``(C)`` line, ``option D``, ``B is correct``, ``the correct option is C``), or the exact
  text of one option after ``Answer:``.

Further rules, stated here because they decide what counts as an answer:

- **hedges are not answers**: an answer that offers several letters (``Answer: A or B``, ``A/B``,
  ``(A) and (C)``, ``either B or D``) reads as ``INVALID`` (``hedge=True``), whichever rule found it;
  the flexible rule does not fall back to an earlier mention when the last one is a hedge;
- **a lower-case letter is a letter only when it stands alone**: ``the answer is b``, ``answer:
  (c)``, ``answer is d.`` read as B, C, D, but in ``the answer is a mammal`` the ``a`` is the
  article (no answer); capital letters followed by text (``Answer: C. Both ...``) are letters.

The chain of thought is everything before the answer line, in steps (``chain_steps``): where the
output uses ``Reasoning:`` markers (at line starts, numbered or bold variants too, or, in outputs
written on one line, wherever ``Reasoning:`` follows a space) each step is the whole text from its
marker to the next marker or the answer, continuation lines included, and words before the first
marker are a step of their own; an output without markers (numbered lists, paragraphs) is cut at
its top-level list items, headings and paragraph breaks. ``reasoning_steps`` keeps the narrower
reading (the marker's own line), used only to say whether the output followed the format.

An output neither rule reads is ``INVALID``: counted and shown, never dropped or guessed.
"""

from __future__ import annotations

import dataclasses
import re

INVALID = "INVALID"
LETTERS = "ABCD"

_STRICT = re.compile(r"^\s*Answer:\s*\(?([A-D])\)?(?:[.)]|\s|$)", re.MULTILINE)
# one-line outputs (no newline token): "Answer: X" at the start or after whitespace
_STRICT_INLINE = re.compile(r"(?:^|(?<=\s))Answer:\s*\(?([A-D])\)?(?:[.)]|\s|$)")
# a capital letter may be followed by text ("Answer: C. Both ..."); a lower-case one must stand
# alone (bracketed, or followed by punctuation or the end), else "answer is a mammal" reads as A
_ANSWER_ANY = re.compile(
    r"answer\s*(?:is|:|=|\s|either\b)*(?:option\s*)?[\(\[\*]*\s*"
    r"(?:(?-i:([A-D]))\s*(?:[\)\]\.\*:,/]|\s|$)|(?-i:([a-d]))\s*(?:[\)\]\.\*:,!?;]|$|\s*$)|\((?-i:([a-d]))\))",
    re.IGNORECASE | re.MULTILINE,
)
_OPTION_WORD = re.compile(r"\b(?:option|choice)\s*\(?([A-D])\b\)?", re.IGNORECASE)
_BARE_LINE = re.compile(r"^\s*[\(\[\*]*([A-D])[\)\]\.\*]*\s*$", re.MULTILINE)
# "B is correct", "(C) is the right answer", "the correct option is D"
_IS_CORRECT = re.compile(r"(?:^|(?<=[\s*(]))\(?([A-D])\)?\s+is\s+(?:the\s+)?(?:correct|right|best)\b")
_CORRECT_IS = re.compile(r"\b(?:correct|right|best)\s+(?:option|choice|letter)\s+(?:is|would\s+be)\s*:?\s*"
                         r"[\(\[\*]*\s*([A-D])\b", re.IGNORECASE)
# what may follow an answer letter to offer another one: "or B", "/ (C)", "and D", ", B"
_HEDGE_TAIL = re.compile(r"[\)\]\*]*\s*(?:/|,|&|\bor\b|\band\b)\s*(?:option\s*)?[\(\[\*]*\s*([A-D])(?![A-Za-z])",
                         re.IGNORECASE)
_EITHER = re.compile(r"\beither\s*[\(\[\*]*\s*$", re.IGNORECASE)
_STEP = re.compile(r"^[ \t]*[\*#]*\s*(?:step\s*\d+\s*[:.-]\s*)?reasoning(?:\s*(?:step\s*)?\d+)?\s*[\*]*\s*:\s*[\*]*\s*(.*)$",
                   re.IGNORECASE | re.MULTILINE)
_ANSWER_LINE = re.compile(r"^\s*[\*#]*\s*(?:final\s+)?answer\b", re.IGNORECASE | re.MULTILINE)
# markers inside a line (one-line outputs): exactly the format's words, after whitespace
_STEP_INLINE = re.compile(r"(?<=[ \t])Reasoning:[ \t]*")
_ANSWER_INLINE = re.compile(r"(?<=[ \t])Answer:")


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What one raw output yields. ``letter`` is the final prediction or ``INVALID``."""

    letter: str
    rule: str  # "strict" | "flexible" | "invalid"
    strict_letter: str | None
    n_answer_letters: int  # distinct letters named on answer lines (>1: conflicting answers)
    steps: tuple[str, ...]  # the whole chain in steps (chain_steps), in order
    format_ok: bool  # exactly three Reasoning steps, then a strict Answer, nothing else
    hedge: bool = False  # the answer offered several letters ("A or B"): read as INVALID
    n_marked: int = 0  # how many "Reasoning:" markers the chain uses


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _clean_step(text: str) -> str:
    return text.strip().strip("*").strip()


def reasoning_steps(text: str) -> list[tuple[str, int, int]]:
    """The ``Reasoning:`` steps before the first answer: (step text, start, end) in characters of
    ``text``. A step that fills the rest of its line ends after the line's newline; one followed on
    the same line by another ``Reasoning:`` (or ``Answer:``) ends where that marker begins, so
    ``text[:end]`` never holds the next step or the answer."""
    stop = _ANSWER_LINE.search(text)
    limit = stop.start() if stop else len(text)
    # (marker start, content start, is a line-start marker)
    markers = [(m.start(), m.start(1), True) for m in _STEP.finditer(text) if m.start() < limit]
    for m in _STEP_INLINE.finditer(text, 0, limit):
        if not any(start <= m.start() < content for start, content, _ in markers):  # not a line-start marker
            markers.append((m.start(), m.end(), False))
    markers.sort()
    # an inline "Answer:" after the first marker ends the chain (one-line outputs)
    if markers:
        inline_answer = _ANSWER_INLINE.search(text, markers[0][1], limit)
        if inline_answer:
            limit = inline_answer.start()
            markers = [m for m in markers if m[0] < limit]
    out = []
    for n, (start, content, _) in enumerate(markers):
        line_end = text.find("\n", content)
        line_end = len(text) if line_end < 0 else line_end
        nxt = markers[n + 1][0] if n + 1 < len(markers) else len(text)
        stop_at = min(line_end, nxt, limit)
        if stop_at == line_end and line_end < len(text) and line_end <= limit:
            end = line_end + 1  # the whole line with its newline
        else:
            end = stop_at
        out.append((_clean_step(text[content:stop_at]), start, end))
    return out


_MARKER_PREFIX = re.compile(r"[ \t]*[\*#]*\s*(?:step\s*\d+\s*[:.-]\s*)?reasoning(?:\s*(?:step\s*)?\d+)?\s*[\*]*\s*:"
                            r"\s*[\*]*\s*", re.IGNORECASE)
# where a chain written without markers starts a new step: a top-level list item, "Step 2:", a heading
_UNIT_START = re.compile(r"(?:\d+[.)]\s|step\s*\d+\s*[:.)-]|[-*\u2022]\s|#{1,6}\s|\*\*)", re.IGNORECASE)


def chain_end(text: str) -> int:
    """Where the chain of thought ends: the start of the first answer line (else the text's end)."""
    stop = _ANSWER_LINE.search(text)
    limit = stop.start() if stop else len(text)
    marked = reasoning_steps(text)
    if marked and _is_one_line(text):  # one-line outputs: the inline "Answer:" after the last step
        inline = _ANSWER_INLINE.search(text, marked[-1][1], limit)
        limit = inline.start() if inline else limit
    return limit


def chain_steps(text: str) -> list[tuple[str, int, int]]:
    """The whole chain of thought in steps: (step text, start, end) in characters of ``text``;
    ``text[:end]`` ends after a newline or before the next step's marker, never inside a step.

    With ``Reasoning:`` markers, each step runs from its marker to the next one (or to the answer
    line), so lines that continue a step (lists, sub-steps) belong to it, and text before the first
    marker is a step of its own. Without markers, steps begin at top-level list items, ``Step n``
    lines, headings and after blank lines; indented lines continue the step above them."""
    limit = chain_end(text)
    marked = reasoning_steps(text)
    if not marked:
        return _units(text, 0, limit)
    starts = [start for _, start, _ in marked]
    out = _units(text, 0, starts[0])  # reasoning written before the first marker
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else limit
        m = _MARKER_PREFIX.match(text, start)
        content = m.end() if m and m.end() <= end else start
        out.append((_clean_step(text[content:end]), start, end))
    return [step for step in out if step[0]]


def _units(text: str, begin: int, end: int) -> list[tuple[str, int, int]]:
    """Steps of ``text[begin:end]`` written without markers: a step begins at a top-level list
    item, a ``Step n`` line, a heading or after a blank line; other lines continue it."""
    out: list[tuple[str, int, int]] = []
    pos, unit_start, blank_before = begin, None, True
    for line in text[begin:end].splitlines(keepends=True):
        if line.strip() and (blank_before or (not line[:1].isspace() and _UNIT_START.match(line))):
            if unit_start is not None:
                out.append((_clean_step(text[unit_start:pos]), unit_start, pos))
            unit_start = pos
        blank_before = not line.strip()
        pos += len(line)
    if unit_start is not None and text[unit_start:end].strip():
        out.append((_clean_step(text[unit_start:end]), unit_start, end))
    return out


def _hedged(text: str, m: re.Match, group: int = 1) -> bool:
    """Whether the answer letter matched by ``m`` is offered with another one ("A or B")."""
    letter = m.group(group).upper()
    tail = _HEDGE_TAIL.match(text, m.end(group))
    if tail and tail.group(1).upper() != letter:
        return True
    return _EITHER.search(text[max(0, m.start(group) - 12):m.start(group)]) is not None


def _letter_of(m: re.Match) -> tuple[str, int]:
    """(upper-case letter, its group) of an ``_ANSWER_ANY`` match."""
    for g in (1, 2, 3):
        if m.group(g):
            return m.group(g).upper(), g
    raise AssertionError("no letter group matched")


def _is_one_line(text: str) -> bool:
    return "\n" not in text.strip()


def _format_ok_one_line(text: str) -> bool:
    """One-line form of the format: ``Reasoning: a Reasoning: b Reasoning: c Answer: X``."""
    parts = re.split(r"(?:^|\s+)(Reasoning:|Answer:)", text.strip())
    if parts[0].strip() or [p for p in parts[1::2]] != ["Reasoning:"] * 3 + ["Answer:"]:
        return False
    contents = parts[2::2]
    return all(c.strip() for c in contents[:3]) and re.match(r"\s*\(?[A-D]\)?(?:[.)]|\s|$)", contents[3]) is not None


def extract(text: str, choices: tuple[str, ...] | None = None) -> Extraction:
    """Strict then flexible extraction of the final letter from one chain-of-thought output."""
    steps = tuple(s for s, _, _ in chain_steps(text))
    n_marked = len(reasoning_steps(text))
    strict_m = list(_STRICT.finditer(text))
    if not strict_m and _is_one_line(text):
        strict_m = list(_STRICT_INLINE.finditer(text))
    strict = [m.group(1) for m in strict_m]
    answer_mentions = [_letter_of(m)[0] for m in _ANSWER_ANY.finditer(text)]
    n_letters = len(set(strict) | set(answer_mentions))
    hedge = False
    if strict:
        letter, rule = strict[0], "strict"
        hedge = _hedged(text, strict_m[0])
    else:
        found = _flexible(text, choices)
        if found is None:
            letter, rule = INVALID, "invalid"
        else:
            (letter, hedge), rule = found, "flexible"
    if hedge:
        letter, rule = INVALID, "invalid"
    if _is_one_line(text):
        format_ok = bool(strict) and not hedge and _format_ok_one_line(text)
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        format_ok = (
            bool(strict)
            and not hedge
            and len(lines) == 4
            and all(re.match(r"^\s*Reasoning:\s*\S", ln) for ln in lines[:3])
            and _STRICT.match(lines[3]) is not None
        )
    return Extraction(letter, rule, strict[0] if strict else None, n_letters, steps, format_ok, hedge, n_marked)


def _flexible(text: str, choices: tuple[str, ...] | None) -> tuple[str, bool] | None:
    """(letter, hedged) of the answer-like mention that comes last (the model's final word)."""
    candidates: list[tuple[int, str, bool]] = []
    for m in _ANSWER_ANY.finditer(text):
        letter, g = _letter_of(m)
        candidates.append((m.start(), letter, _hedged(text, m, g)))
    for rx in (_OPTION_WORD, _BARE_LINE, _IS_CORRECT):  # mentions, not answer statements: no hedge test
        candidates += [(m.start(), m.group(1).upper(), False) for m in rx.finditer(text)]
    candidates += [(m.start(), m.group(1).upper(), _hedged(text, m)) for m in _CORRECT_IS.finditer(text)]
    if choices:
        for m in re.finditer(r"answer\s*(?:is|:)\s*(.+)$", text, re.IGNORECASE | re.MULTILINE):
            said = _norm(m.group(1))
            hits = [i for i, c in enumerate(choices) if _norm(c) and (said == _norm(c) or said.startswith(_norm(c)))]
            if len(hits) == 1:
                candidates.append((m.start(), LETTERS[hits[0]], False))
    if not candidates:
        return None
    _, letter, hedge = max(candidates)
    return letter, hedge


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
