"""The recorded prompts are the assignment's texts (tasks 4.3 and 4.4), verbatim."""

import re

import pytest

from analysis.cot import prompts
from analysis.data.scienceqa import Question
from analysis.paths import PROJECT_ROOT

ASSIGNMENT = PROJECT_ROOT.parent / "shared" / "ASSIGNMENT.md"

# Task 4.4's instruction as the assignment prints it (one line per paragraph of its text)
COT_LINES = [
    "You are a careful reasoning assistant that answers multiple-choice questions about science. "
    "First, think step by step. Then, give the final answer. Format exactly as:",
    "Reasoning: <step 1>", "Reasoning: <step 2>", "Reasoning: <step 3>", "Answer: <final letter>",
]
# Task 4.3's example prompt
DIRECT_LINES = ["Question: ...", "Options:", "(A) ...", "(B) ...", "(C) ...", "(D) ...", "Answer:"]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_cot_instruction_is_the_assignments():
    assert _lines(prompts.COT_INSTRUCTION) == COT_LINES
    q = Question("1", "Which is hot?", "", ("sun", "ice", "snow", "sleet"), 0)
    cot = prompts.cot_prompt(q)
    assert cot.system == prompts.COT_INSTRUCTION
    assert _lines(cot.user) == ["Question: Which is hot?", "Options:", "(A) sun", "(B) ice", "(C) snow", "(D) sleet"]
    assert cot.text == prompts.COT_INSTRUCTION + "\n\n" + cot.user  # what a seq2seq model reads


def test_direct_prompt_is_the_assignments_example():
    q = Question("1", "Which is hot?", "", ("sun", "ice", "snow", "sleet"), 0)
    direct = prompts.direct_prompt(q)
    assert direct.system is None
    filled = [line.replace("...", x) for line, x in zip(DIRECT_LINES, ["Which is hot?", "", "sun", "ice", "snow",
                                                                     "sleet", ""])]
    assert _lines(direct.user) == [line.strip() for line in filled]


def test_context_is_the_only_addition():
    q = Question("1", "Which is hot?", "It is summer.", ("sun", "ice", "snow", "sleet"), 0)
    assert _lines(prompts.direct_prompt(q).user)[:3] == ["Question: Which is hot?", "Context: It is summer.", "Options:"]


@pytest.mark.skipif(not ASSIGNMENT.exists(), reason=f"the assignment's text is not at {ASSIGNMENT}")
def test_pinned_texts_match_the_assignment_file():
    """The lines above are the assignment's own (its markdown puts a blank line between them)."""
    text = ASSIGNMENT.read_text()
    flat = re.sub(r"\s+", " ", text)
    assert re.sub(r"\s+", " ", " ".join(COT_LINES)) in flat
    section = _lines(text[text.index("4.3."):text.index("4.4.")])
    start = section.index(DIRECT_LINES[0])
    assert section[start:start + len(DIRECT_LINES)] == DIRECT_LINES
