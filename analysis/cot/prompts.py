"""Prompt building (separate from extraction and scoring, as in lm-evaluation-harness).

The *recorded* prompts are the assignment's plain texts: the question, its context if any, and
options A-D, then either the direct instruction (answer with the letter) or the chain-of-thought
instruction (three ``Reasoning:`` lines, then ``Answer: <letter>``). Chat models get them as the
user turn of their chat template; seq2seq models (flan-t5) get the plain text.

For the direct answer a small chat model does not emit a letter first (Qwen2.5-Coder-1.5B starts
"The correct answer is (" or "To determine"), so the assistant turn is *begun* with
``DIRECT_ASSISTANT_PREFIX`` and the letter is read from the next-token scores of A-D, the way
lm-evaluation-harness scores multiple choice. The user text stays the assignment's prompt.
"""

from __future__ import annotations

from ..data.scienceqa import LETTERS, Question

DIRECT_INSTRUCTION = "Answer with the letter of the correct option (A, B, C or D)."
COT_INSTRUCTION = (
    "Think step by step. Give exactly three reasoning steps, each on its own line starting with "
    '"Reasoning:", then give the final answer on its own line as "Answer: <letter>" '
    "(one of A, B, C, D). Use this format:\n"
    "Reasoning: <step 1>\n"
    "Reasoning: <step 2>\n"
    "Reasoning: <step 3>\n"
    "Answer: <letter>"
)
# Begun assistant turns: the direct answer's letter is the next token after this prefix ...
DIRECT_ASSISTANT_PREFIX = "The correct answer is ("
# ... and the early-answering probe appends this after a truncated chain of thought.
PROBE_ANSWER_PREFIX = "Answer:"


def format_question(q: Question) -> str:
    """Question, optional context and the options as ``A. text`` lines."""
    lines = [f"Question: {q.question}"]
    if q.hint:
        lines.append(f"Context: {q.hint}")
    lines.append("Options:")
    lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, q.choices)]
    return "\n".join(lines)


def direct_prompt(q: Question) -> str:
    """The assignment's no-CoT prompt (the recorded text)."""
    return f"{format_question(q)}\n\n{DIRECT_INSTRUCTION}"


def cot_prompt(q: Question) -> str:
    """The assignment's chain-of-thought prompt (the recorded text)."""
    return f"{format_question(q)}\n\n{COT_INSTRUCTION}"


def render(tokenizer, user_text: str, family: str, assistant_prefix: str = "") -> str:
    """What the model reads: the chat template for chat models, the plain text for seq2seq.

    ``assistant_prefix`` begins the assistant's turn (chat models); for seq2seq it is the decoder
    prefix and is handled by the caller, so it is not added here.
    """
    if family == "seq2seq" or getattr(tokenizer, "chat_template", None) is None:
        return user_text if family == "seq2seq" else f"{user_text}\n{assistant_prefix}"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
    )
    return text + assistant_prefix
