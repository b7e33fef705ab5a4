"""Prompt building: what each turn shows the model and what it asks for."""

import json

import pytest

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
    assert "Substep 1: First idea." in ask and "Substep 3: Third idea." in ask
    assert "\nStep 1:" not in ask and not ask.startswith("Step 1:")
    assert "from 1 to 3" in ask
    assert ask.count(BLOCK_OPEN) == 1 and ask.count(BLOCK_CLOSE) == 1
    text = render_chat(tiny_tokenizer, msgs)
    assert text.endswith("<|im_start|>assistant\n")
    assert text.index("MY-SOLUTION") < text.index("Substep 1: First idea.")


def test_verification_turn_tells_substeps_from_the_attempts_own_headings():
    attempt = "### Step 1: Set up\n\nLet x = 2.\n\n### Step 2: Solve\n\nSo x + 1 = 4."
    steps = split_steps(attempt)
    ask = verification_messages("P", "S", "A", "R", number_steps(steps), len(steps))[2]["content"]
    # the attempt's heading "### Step 2" is substep 3: the labels and the warning keep them apart
    assert "Substep 3: ### Step 2: Solve" in ask
    warning = ask[ask.index("use these substep numbers") :]
    assert '"### Step 3"' in warning.split("\n")[0]
    assert "not substep numbers" in warning.split("\n")[0]
    # the warning comes after the attempt and before the instructions that use the numbers
    assert ask.index("Substep 4:") < ask.index("not substep numbers") < ask.index("1. Go through")


def test_verification_turn_asks_for_a_replacing_step_that_sketches_the_way_on():
    ask = verification_messages("P", "S", "A", "R", "Substep 1: a", 1)[2]["content"]
    flat = " ".join(ask.split())
    assert "takes the place of the substep with that error" in flat
    assert "the student's own next step" in flat
    assert "sketch the next few steps that lead to a correct solution" in flat
    assert "without stating the final answer" in flat
    assert "must not finish the solution" not in flat  # the old wording forbade the sketch
    assert (
        "If you find no critical error" in flat
        and 'leave the content of the block empty ("")' in flat
    )


def test_the_format_line_of_the_prompt_is_the_format_the_parser_reads():
    ask = verification_messages("P", "S", "A", "R", "Substep 1: a", 1)[2]["content"]
    line = next(x for x in ask.splitlines() if x.startswith(BLOCK_OPEN))
    filled = line.replace("<the corrective step>", "Try again.").replace(
        "<number of the substep it replaces>", "1"
    )
    parsed = parse_proposal("audit " + filled, 1)
    assert (parsed.status, parsed.location, parsed.content) == ("ok", 1, "Try again.")
    # the location written with the prompt's own label parses too
    labelled = line.replace("<the corrective step>", "Try again.").replace(
        "<number of the substep it replaces>", '"Substep 1"'
    )
    assert parse_proposal("audit " + labelled, 1).location == 1
    # and the "no critical error" answer the prompt allows is a verdict, not a parse failure
    empty = line.replace("<the corrective step>", "").replace(
        "<number of the substep it replaces>", "1"
    )
    assert parse_proposal("audit " + empty, 1).status == "no_error_found"


def test_block_schema_bounds_location_and_content():
    schema = block_schema(7, 120)
    assert schema["properties"]["location"] == {"type": "integer", "minimum": 1, "maximum": 7}
    assert schema["properties"]["content"] == {"type": "string", "maxLength": 120}
    # an empty content (no critical error found) is allowed by the schema
    assert "minLength" not in block_schema(3)["properties"]["content"]
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    assert "maxLength" not in block_schema(3)["properties"]["content"]


def test_block_schema_accepts_the_empty_no_error_answer():
    jsonschema = pytest.importorskip("jsonschema")
    schema = block_schema(4, 50)
    jsonschema.validate({"content": "", "location": 2}, schema)
    jsonschema.validate({"content": "Hold on, I should recheck.", "location": 4}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"content": "", "location": 5}, schema)
