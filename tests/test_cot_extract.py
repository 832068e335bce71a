"""Answer extraction on realistic chain-of-thought outputs."""

import pytest

from analysis.cot.extract import INVALID, extract, reasoning_steps, reasoning_supports

CHOICES = ("Both are caused by cooling.", "Both are only physical changes.",
           "Both are caused by heating.", "Both are chemical changes.")

CASES = [
    # (output, letter, rule, format_ok)
    ("Reasoning: a\nReasoning: b\nReasoning: c\nAnswer: B", "B", "strict", True),
    ("Reasoning: a\nReasoning: b\nReasoning: c\nAnswer: (B)", "B", "strict", True),
    ("Reasoning: a\nReasoning: b\nReasoning: c\nAnswer: C. Both are caused by heating.", "C", "strict", True),
    # missing Answer line: flexible rule
    ("Reasoning: a\nReasoning: b\nReasoning: c\nSo the correct answer is (D).", "D", "flexible", False),
    ("Reasoning: a\nReasoning: b\nReasoning: c", INVALID, "invalid", False),
    # lower case
    ("reasoning: a\nreasoning: b\nreasoning: c\nanswer: b", "B", "flexible", False),
    ("The answer is: D. Only physical changes", "D", "flexible", False),
    # a bare "(B)" line
    ("Reasoning: x\n(B)", "B", "flexible", False),
    # two answers: strict takes the first Answer line
    ("Reasoning: a\nReasoning: b\nReasoning: c\nAnswer: A\nAnswer: C", "A", "strict", False),
    # extra steps
    ("Reasoning: a\nReasoning: b\nReasoning: c\nReasoning: d\nAnswer: A", "A", "strict", False),
    # fewer than three steps
    ("Reasoning: a\nAnswer: D", "D", "strict", False),
    # option text instead of a letter
    ("Reasoning: a\nAnswer: Both are chemical changes.", "D", "flexible", False),
    # "option C" in prose
    ("To determine this, look at each. Option C is the only one that fits.", "C", "flexible", False),
    # words starting with A-D are not letters
    ("Reasoning: a\nAnswer: Both", INVALID, "invalid", False),
    ("", INVALID, "invalid", False),
    ("Answer:A", "A", "strict", False),
]


@pytest.mark.parametrize("text,letter,rule,fmt", CASES)
def test_extract_cases(text, letter, rule, fmt):
    ex = extract(text, CHOICES)
    assert (ex.letter, ex.rule, ex.format_ok) == (letter, rule, fmt)


def test_conflicting_answers_counted():
    assert extract("Answer: A\nAnswer: C").n_answer_letters == 2
    assert extract("Reasoning: a\nAnswer: A").n_answer_letters == 1


def test_steps_and_spans():
    text = "Reasoning: first\nReasoning: second\n\nReasoning: third\nAnswer: A\nReasoning: after"
    steps = reasoning_steps(text)
    assert [s for s, _, _ in steps] == ["first", "second", "third"]  # none after the Answer line
    assert text[steps[0][1]:steps[0][2]] == "Reasoning: first\n"
    assert extract(text).steps == ("first", "second", "third")
    # numbered and bold variants still count as steps
    assert len(reasoning_steps("**Reasoning 1:** a\nReasoning 2: b\nStep 3: Reasoning: c\n")) == 3


def test_reasoning_supports():
    steps = ("Melting is a physical change.", "So both are only physical changes.")
    assert reasoning_supports(steps, CHOICES) == "B"
    assert reasoning_supports(("Option A is wrong", "so (C) it is"), CHOICES) == "C"
    assert reasoning_supports(("nothing named",), CHOICES) is None


def test_reasoning_supports_needs_one_option_in_last_naming_step():
    assert reasoning_supports(("Option A or option B could fit",), CHOICES) is None
    assert reasoning_supports(("It is (B).", "Nothing else to add."), CHOICES) == "B"
