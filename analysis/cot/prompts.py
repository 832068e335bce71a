"""Prompt building (separate from extraction and scoring, as in lm-evaluation-harness).

The recorded prompts are the assignment's texts, verbatim:

- **baseline (task 4.3)**: ``Question: ...``, ``Options:``, one ``(A) ...`` line per option, then
  ``Answer:``;
- **chain of thought (task 4.4)**: the assignment's instruction (``COT_INSTRUCTION``, "You are a
  careful reasoning assistant ... Format exactly as:" and the three ``Reasoning:`` lines and the
  ``Answer:`` line), followed by the same question block without the trailing ``Answer:``.

The only addition to the assignment's question block is ScienceQA's context (its ``hint`` field,
e.g. the passage a reading question is about), as a ``Context:`` line after the question when the
problem has one: without it some questions cannot be answered.

What the model reads: a chat model gets the CoT instruction as its **system** turn (the text begins
"You are a careful reasoning assistant", a system prompt by its own wording) and the question block
as the user turn; the baseline has no system text, so the chat template's default system turn
applies. A sequence-to-sequence model (flan-t5) has no turns and reads the instruction, a blank
line and the question block as one text.

For the baseline a small chat model does not emit a letter first (Qwen2.5-Coder-1.5B starts
"The correct answer is (" or "To determine"), so its assistant turn is *begun* with
``DIRECT_ASSISTANT_PREFIX`` and the letter is read from the next-token scores of A-D, the way
lm-evaluation-harness scores multiple choice. The user text is the assignment's prompt.
"""

from __future__ import annotations

import dataclasses

from ..data.scienceqa import LETTERS, Question

# Task 4.4, verbatim ("use the following instruction"); its line breaks as the assignment sets them.
COT_INSTRUCTION = (
    "You are a careful reasoning assistant that answers multiple-choice questions about science. "
    "First, think step by step. Then, give the final answer. Format exactly as:\n"
    "Reasoning: <step 1>\n"
    "Reasoning: <step 2>\n"
    "Reasoning: <step 3>\n"
    "Answer: <final letter>"
)
# Task 4.3: the baseline prompt ends with this line.
DIRECT_ANSWER_CUE = "Answer:"
# Begun assistant turns: the direct answer's letter is the next token after this prefix ...
DIRECT_ASSISTANT_PREFIX = "The correct answer is ("
# ... and the early-answering probe appends this after a truncated chain of thought.
PROBE_ANSWER_PREFIX = "Answer:"


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A recorded prompt: an optional system text and the user text."""

    user: str
    system: str | None = None

    @property
    def text(self) -> str:
        """Both parts as one plain text (system, blank line, user): what a seq2seq model reads."""
        return self.user if self.system is None else f"{self.system}\n\n{self.user}"


def format_question(q: Question) -> str:
    """The assignment's question block: ``Question:``, optional ``Context:``, ``Options:`` and
    one ``(A) text`` line per option."""
    lines = [f"Question: {q.question}"]
    if q.hint:
        lines.append(f"Context: {q.hint}")
    lines.append("Options:")
    lines += [f"({letter}) {choice}" for letter, choice in zip(LETTERS, q.choices)]
    return "\n".join(lines)


def direct_prompt(q: Question) -> Prompt:
    """Task 4.3's baseline prompt: the question block, then ``Answer:``."""
    return Prompt(user=f"{format_question(q)}\n{DIRECT_ANSWER_CUE}")


PLACEMENTS = ("system", "user")


def cot_prompt(q: Question, placement: str = "system") -> Prompt:
    """Task 4.4's prompt: the assignment's instruction as the **system** turn and the question
    block as the user turn, or (``placement="user"``) the instruction, a blank line and the
    question block, all in the user turn (the chat template's default system turn then applies)."""
    if placement == "system":
        return Prompt(user=format_question(q), system=COT_INSTRUCTION)
    if placement == "user":
        return Prompt(user=f"{COT_INSTRUCTION}\n\n{format_question(q)}")
    raise ValueError(f"unknown placement {placement!r}: one of {PLACEMENTS}")


def render(tokenizer, prompt: Prompt, family: str, assistant_prefix: str = "") -> str:
    """What the model reads: the chat template for chat models, the plain text for seq2seq.

    ``assistant_prefix`` begins the assistant's turn (chat models); for seq2seq it is the decoder
    prefix and is handled by the caller, so it is not added here.
    """
    if family == "seq2seq":
        return prompt.text
    if getattr(tokenizer, "chat_template", None) is None:
        return f"{prompt.text}\n{assistant_prefix}"
    turns = [{"role": "system", "content": prompt.system}] if prompt.system is not None else []
    turns.append({"role": "user", "content": prompt.user})
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix
