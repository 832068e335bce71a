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


# ---- outputs without line breaks (flan-t5's tokenizer has no newline token: the format arrives on one line)
def test_one_line_format_steps_answer_and_format():
    text = "Reasoning: Ice melts when warmed. Reasoning: Melting is physical. Reasoning: So B fits. Answer: B"
    ex = extract(text, CHOICES)
    assert (ex.letter, ex.rule, ex.format_ok) == ("B", "strict", True)
    assert ex.steps == ("Ice melts when warmed.", "Melting is physical.", "So B fits.")
    spans = reasoning_steps(text)
    # each cut ends before the next marker: the one-step prefix holds neither step 2 nor the answer
    assert text[:spans[0][2]] == "Reasoning: Ice melts when warmed. "
    assert "Answer" not in text[:spans[2][2]] and text[:spans[2][2]].endswith("So B fits. ")


def test_one_line_outputs_that_break_the_format():
    assert extract("Reasoning: a Reasoning: b Answer: D").format_ok is False  # two steps
    ex = extract("Let me think. Reasoning: a Reasoning: b Reasoning: c Answer: A")
    # words before the first marker are reasoning too: a step of their own
    assert (ex.letter, ex.format_ok, len(ex.steps), ex.n_marked) == ("A", False, 4, 3)
    assert extract("Reasoning: a Reasoning: b Reasoning: c").letter == INVALID
    # option text after the letter is allowed, as on the Answer line of the multi-line format
    assert extract("Reasoning: a Reasoning: b Reasoning: c Answer: (C) Both are caused by heating.").format_ok


def test_newline_outputs_keep_line_spans():
    text = "Reasoning: one\nReasoning: two\nAnswer: A"
    assert [(s, a, b) for s, a, b in reasoning_steps(text)] == [("one", 0, 15), ("two", 15, 30)]


# ---- issue 12: hedges, articles, readable answers
@pytest.mark.parametrize("text", [
    "Answer: A or B", "Reasoning: x\nAnswer: A or B", "The answer is (A) or (C).", "The answer is either B or D.",
    "Answer: A/B", "The correct option is B or C.", "Reasoning: a Reasoning: b Reasoning: c Answer: A or B",
    "Answer: (B) and (D)",
])
def test_hedge_is_not_an_answer(text):
    ex = extract(text, CHOICES)
    assert (ex.letter, ex.rule, ex.hedge, ex.format_ok) == (INVALID, "invalid", True, False)


def test_same_letter_twice_is_not_a_hedge():
    assert extract("Answer: B or (B)").letter == "B"
    assert extract("Answer: A, because B is wrong").letter == "A"


@pytest.mark.parametrize("text,letter", [
    ("the answer is a mammal", INVALID),  # the article, not option A
    ("The answer is a mammal, so B is correct.", "B"),
    ("the answer is b", "B"), ("answer: (c) yes", "C"), ("The answer is d.", "D"),
    # clearly readable answers the old rules called INVALID
    ("B is the correct answer.", "B"), ("The correct option is C.", "C"), ("I think (B) is correct.", "B"),
    ("So the right choice would be D.", "D"),
])
def test_article_and_readable_answers(text, letter):
    assert extract(text, CHOICES).letter == letter


def test_chain_steps_keep_the_whole_chain():
    """Steps carry their continuation lines; unmarked chains split at list items and paragraphs;
    the answer line is never part of the chain."""
    from analysis.cot.extract import chain_steps

    marked = "Reasoning: a\n  - detail\nReasoning: b\nReasoning: c\nAnswer: B"
    assert [s for s, _, _ in chain_steps(marked)] == ["a\n  - detail", "b", "c"]
    assert all(marked[:end].endswith("\n") for _, _, end in chain_steps(marked))
    listed = "Let's see:\n1. First\n   - sub\n2. Second\n\nSo it is B.\nAnswer: B"
    assert [s for s, _, _ in chain_steps(listed)] == ["Let's see:", "1. First\n   - sub", "2. Second", "So it is B."]
    assert extract(listed).steps == tuple(s for s, _, _ in chain_steps(listed))
    assert extract(listed).n_marked == 0
    cut = "Reasoning: one\nReasoning: two is unfin"  # budget hit mid-step: the last step runs to the end
    assert chain_steps(cut)[-1][2] == len(cut)
