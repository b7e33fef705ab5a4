"""Prompt building: what each turn shows the model and what it asks for."""

import json

from intervention_training.generation import render_chat
from intervention_training.intervention_block import parse_proposal
from intervention_training.prompts import (
    BLOCK_CLOSE,
    BLOCK_OPEN,
    block_schema,
    reference_turn_messages,
    rollout_messages,
    verification_messages,
)
from intervention_training.steps import number_steps, split_steps


def test_rollout_is_the_problem_as_the_only_user_message():
    assert rollout_messages("Find x.") == [{"role": "user", "content": "Find x."}]
    msgs = rollout_messages("Find x.", "Box it.")
    assert msgs == [{"role": "user", "content": "Find x.\n\nBox it."}]


def test_reference_turn_shows_problem_solution_and_answer():
    (msg,) = reference_turn_messages("PROBLEM-TEXT", "SOLUTION-TEXT", "ANSWER-TEXT")
    assert msg["role"] == "user"
    for part in ("PROBLEM-TEXT", "SOLUTION-TEXT", "ANSWER-TEXT", "\\boxed{}"):
        assert part in msg["content"]


def test_verification_turn_carries_turn_one_and_numbered_steps(tiny_tokenizer):
    attempt = "First idea.\n\nSecond idea.\n\nThird idea."
    steps = split_steps(attempt)
    msgs = verification_messages("P", "S", "A", "MY-SOLUTION", number_steps(steps), len(steps))
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"] == "MY-SOLUTION"
    ask = msgs[2]["content"]
    assert "Step 1: First idea." in ask and "Step 3: Third idea." in ask
    assert "from 1 to 3" in ask
    assert ask.count(BLOCK_OPEN) == 1 and ask.count(BLOCK_CLOSE) == 1
    text = render_chat(tiny_tokenizer, msgs)
    assert text.endswith("<|im_start|>assistant\n")
    assert text.index("MY-SOLUTION") < text.index("Step 1: First idea.")


def test_the_format_line_of_the_prompt_is_the_format_the_parser_reads():
    ask = verification_messages("P", "S", "A", "R", "Step 1: a", 1)[2]["content"]
    line = next(x for x in ask.splitlines() if x.startswith(BLOCK_OPEN))
    filled = line.replace("<the corrective step>", "Try again.").replace(
        "<number of the step it replaces>", "1"
    )
    parsed = parse_proposal("audit " + filled, 1)
    assert (parsed.status, parsed.location, parsed.content) == ("ok", 1, "Try again.")


def test_block_schema_bounds_location_and_content():
    schema = block_schema(7, 120)
    assert schema["properties"]["location"] == {"type": "integer", "minimum": 1, "maximum": 7}
    assert schema["properties"]["content"]["maxLength"] == 120
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    assert "maxLength" not in block_schema(3)["properties"]["content"]
