"""Prompt text for every generating stage, written for this project.

Rollouts send the problem as the only user message. Proposals are a two-turn conversation:
turn 1 asks the model to work through the problem with the reference solution in view; turn 2
shows the failed attempt cut into numbered substeps (labelled "Substep i", a word distinct from
the "### Step k" headings models write themselves) and asks for a substep-by-substep check, the
first critical error, and one corrective step in the student's voice that replaces the erroneous
substep and sketches the way on without the final answer, ending with the block
``<intervention>{"content": ..., "location": N}</intervention>`` (the paper's format, so that
outputs made with the authors' prompt parse too). An empty content means "no critical error
found"; the parser reports it as ``no_error_found``.
"""

from __future__ import annotations

from typing import Any

from .generation.base import render_chat

BLOCK_OPEN = "<intervention>"
BLOCK_CLOSE = "</intervention>"

REFERENCE_TURN = """\
Here is a competition mathematics problem, followed by a worked solution written by an expert.

## Problem
{problem}

## Expert solution
{reference_solution}

## Expert's final answer
{answer}

Read the expert solution carefully, then write out a complete solution of your own, explaining \
why each step holds. Finish with the final answer inside \\boxed{{}}."""

VERIFY_TURN = """\
A student attempted the same problem. Their attempt is below, split at its blank lines into \
numbered substeps (Substep 1, Substep 2, ...).

{numbered_steps}

Whenever you point to a place in the attempt, use these substep numbers. The student may have \
written numbered headings of their own, such as "### Step 3"; those belong to the text, and \
their numbers are not substep numbers (one of the student's steps often covers several \
substeps).

Audit the attempt against the expert solution:

1. Go through the substeps in order. For each one, say in a sentence or two whether it is \
correct, comparing it with the expert solution wherever they cover the same ground.
2. Name the first critical error: a wrong calculation, a false statement or a gap in logic that \
sends the attempt off course and that no later substep repairs. A slip that the student fixes \
later is not critical.
3. Write a corrective step that takes the place of the substep with that error. It is the \
student's own next step: write it in the first person, as the student thinking aloud (for \
example "Hold on, I should check ..."), so that it reads as the natural continuation of the \
substeps before it. It should say what goes wrong and then sketch the next few steps that lead \
to a correct solution, naming the idea the student is missing, without stating the final answer.
4. Re-read your corrective step and ask: does it give away the final answer? Does it leave out \
the key idea of the expert solution? Does it replace the substep of the error, not a later one? \
Improve it if any answer is yes.

If you find no critical error (the attempt is sound and on track), leave the content of the \
block empty ("").

End your reply with exactly one block in this format and write nothing after it:
{block_open}{{"content": "<the corrective step>", "location": <number of the substep it \
replaces>}}{block_close}
The location must be a whole number from 1 to {n_steps}."""


def rollout_messages(problem: str, answer_instruction: str = "") -> list[dict[str, str]]:
    """The rollout conversation: the problem as the only user message (plus an optional hint)."""
    content = problem if not answer_instruction else f"{problem}\n\n{answer_instruction}"
    return [{"role": "user", "content": content}]


def rollout_prompt(tokenizer: Any, problem: str, answer_instruction: str = "") -> str:
    """The exact prompt text a rollout continues (the model's own chat template)."""
    return render_chat(tokenizer, rollout_messages(problem, answer_instruction))


def reference_turn_messages(
    problem: str, reference_solution: str, answer: str
) -> list[dict[str, str]]:
    """Turn 1 of self-verification: solve with the expert solution in view."""
    text = REFERENCE_TURN.format(
        problem=problem, reference_solution=reference_solution, answer=answer
    )
    return [{"role": "user", "content": text}]


def verification_messages(
    problem: str,
    reference_solution: str,
    answer: str,
    reference_turn: str,
    numbered_steps: str,
    n_steps: int,
) -> list[dict[str, str]]:
    """Both turns of self-verification, ready for the model's second reply."""
    verify = VERIFY_TURN.format(
        numbered_steps=numbered_steps,
        n_steps=n_steps,
        block_open=BLOCK_OPEN,
        block_close=BLOCK_CLOSE,
    )
    return [
        *reference_turn_messages(problem, reference_solution, answer),
        {"role": "assistant", "content": reference_turn},
        {"role": "user", "content": verify},
    ]


def block_schema(n_steps: int, max_content_chars: int | None = None) -> dict:
    """JSON schema of the intervention block for an attempt with ``n_steps`` steps.

    ``max_content_chars`` bounds the content so that a constrained block can close within its
    token budget (a block cut off mid-string would not parse).
    """
    # No minLength: an empty content is the proposer's way of saying it found no critical error
    # (the parser reports it as ``no_error_found``, and the interventions stage drops it).
    content: dict = {"type": "string"}
    if max_content_chars:
        content["maxLength"] = max_content_chars
    return {
        "type": "object",
        "properties": {
            "content": content,
            "location": {"type": "integer", "minimum": 1, "maximum": max(1, n_steps)},
        },
        "required": ["content", "location"],
        "additionalProperties": False,
    }
