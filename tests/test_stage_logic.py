"""Stage logic on a scripted backend: requests built, rows joined, filters counted."""

import json

from fakes import ScriptedBackend
from oracles import build_interventions

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.config import (
    GradingParams,
    GuidedParams,
    InterventionsParams,
    ProposalsParams,
    RolloutsParams,
)
from intervention_training.generation import derive_seed
from intervention_training.guided import run_guided, write_guided
from intervention_training.prompts import BLOCK_CLOSE, BLOCK_OPEN
from intervention_training.proposals import run_proposals
from intervention_training.rollouts import run_rollouts

PROBLEM = {
    "problem_id": "t/1",
    "problem": "Compute 6 * 7.",
    "answer": "42",
    "reference_solution": "Six sevens are 42.",
    "source": "t",
    "split": "train",
}
ATTEMPT = "I will add instead.\n\n6 + 7 = 13.\n\nSo the answer is \\boxed{13}."


def test_rollouts_rows_ids_and_per_sample_seeds(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, lambda r, j: f"attempt {j}")
    rows = run_rollouts([PROBLEM], backend, RolloutsParams(samples_per_problem=3, seed=5))
    (request,) = backend.calls[0]
    assert request.n == 3
    assert request.prompt.count("Compute 6 * 7.") == 1 and "<|im_start|>user" in request.prompt
    assert [r["rollout_id"] for r in rows] == ["t/1/0", "t/1/1", "t/1/2"]
    assert [r["completion"] for r in rows] == ["attempt 0", "attempt 1", "attempt 2"]
    assert len({r["seed"] for r in rows}) == 3
    assert rows[1]["seed"] == derive_seed(request.seed, 1)
    assert all(r["prompt"] == request.prompt for r in rows)


def attempt_row():
    return {
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "sample_id": 0,
        "completion": ATTEMPT,
        "prompt": "PROMPT:",
        "finish_reason": "stop",
        "n_tokens": 9,
        "seed": 1,
    }


def test_proposals_two_turns_then_constrained_block(tiny_tokenizer):
    def script(req, j):
        if req.json_schema is not None:
            return json.dumps({"content": "Wait, I must multiply.", "location": 2})
        if "Expert solution" in req.prompt and "numbered substeps" not in req.prompt:
            return "Reference working: 6*7=42."
        return f"Audit {j}: step 2 adds instead of multiplying."

    backend = ScriptedBackend(tiny_tokenizer, script)
    params = ProposalsParams(per_attempt=2, constrained_block=True)
    rows = run_proposals({"t/1": PROBLEM}, [attempt_row()], backend, params)
    turn1, turn2, blocks = backend.calls
    assert len(turn1) == 1 and turn1[0].n == 1
    (verify,) = turn2
    assert verify.n == 2 and verify.stop == (BLOCK_OPEN,)
    assert "Reference working: 6*7=42." in verify.prompt  # turn 1 is in the conversation
    assert "Substep 2: 6 + 7 = 13." in verify.prompt
    assert "from 1 to 3" in verify.prompt
    assert len(blocks) == 2
    schema = blocks[0].json_schema
    assert schema["properties"]["location"]["maximum"] == 3
    assert blocks[0].prompt.endswith(BLOCK_OPEN)
    assert [r["proposal_id"] for r in rows] == ["t/1/0/0", "t/1/0/1"]
    assert rows[0]["text"].endswith(BLOCK_CLOSE) and rows[0]["status"] == "generated"
    assert rows[0]["n_steps"] == 3 and rows[0]["constrained"]


def test_proposals_unconstrained_is_one_generation(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, lambda r, j: "free text")
    params = ProposalsParams(per_attempt=1, constrained_block=False)
    rows = run_proposals({"t/1": PROBLEM}, [attempt_row()], backend, params)
    assert len(backend.calls) == 2  # turn 1, turn 2; no separate block phase
    assert backend.calls[1][0].stop == ()
    assert rows[0]["text"] == "free text"


def test_prompt_that_does_not_fit_is_skipped_with_reason(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, lambda r, j: "x", max_context=300)
    params = ProposalsParams(
        per_attempt=2,
        reference_turn_max_new_tokens=8,
        verification_max_new_tokens=200,
        block_max_new_tokens=64,
    )
    rows = run_proposals({"t/1": PROBLEM}, [attempt_row()], backend, params)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["skip_reason"].startswith("prompt_too_long")
    assert "context 300" in rows[0]["skip_reason"]
    assert rows[0]["text"] is None


def proposal(j, text, n_steps=3):
    return {
        "proposal_id": f"t/1/0/{j}",
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "sample_id": 0,
        "proposal_index": j,
        "n_steps": n_steps,
        "status": "generated",
        "text": text,
    }


def block(content, location):
    return (
        f"audit...{BLOCK_OPEN}{json.dumps({'content': content, 'location': location})}{BLOCK_CLOSE}"
    )


def test_filter_chain_counts_each_drop_reason():
    props = [
        proposal(0, "no block at all"),
        proposal(1, block("Multiply: the product is 42.", 2)),
        proposal(2, block("Wait, the problem says multiply, not add.", 3)),
        proposal(3, block("Wait, I should multiply 6 by 7 rather than add.", 2)),
        proposal(4, block("Check the operation.", 9)),
        {**proposal(5, None), "status": "skipped"},
    ]
    rows, summary = build_interventions(props, {"t/1": "42"}, InterventionsParams())
    reasons = {r["proposal_index"]: r["drop_reason"] for r in rows}
    assert reasons[0] == "no_block"
    assert reasons[1] == "leaked"
    assert reasons[4] == "location_out_of_range"
    assert reasons[5] == "skipped"
    # earliest location wins the one slot of this attempt
    assert reasons[3] is None and reasons[2] == "duplicate"
    assert summary["kept"] == 1 and summary["dropped"]["duplicate"] == 1


def test_dedup_policies():
    props = [
        proposal(0, block("Fix A.", 3)),
        proposal(1, block("Fix B.", 1)),
        proposal(2, block("fix  a.", 3)),
    ]
    answers = {"t/1": "42"}
    first, _ = build_interventions(props, answers, InterventionsParams(dedup="first_proposal"))
    assert [r["kept"] for r in first] == [True, False, False]
    two, _ = build_interventions(props, answers, InterventionsParams(max_per_attempt=3))
    assert [r["kept"] for r in two] == [True, True, False]  # "fix  a." repeats "Fix A."
    assert two[2]["drop_reason"] == "duplicate"
    none, _ = build_interventions(props, answers, InterventionsParams(dedup="none"))
    assert all(r["kept"] for r in none)


def kept_intervention(location=2, content="Wait, I must multiply 6 by 7."):
    return {
        "proposal_id": "t/1/0/0",
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "location": location,
        "content": content,
        "kept": True,
    }


def test_guided_continues_the_partial_answer_and_selects(tiny_tokenizer):
    rollout = attempt_row()
    backend = ScriptedBackend(
        tiny_tokenizer, lambda r, j: " So 6*7 = \\boxed{42}." if j == 0 else " \\boxed{41}"
    )
    conts, sel = run_guided(
        [kept_intervention()],
        {"t/1/0": rollout},
        {"t/1": "42"},
        backend,
        GuidedParams(enabled=True, continuations=3, min_correct=1),
        GradingParams(),
    )
    (req,) = backend.calls[0]
    assert req.prompt == "PROMPT:" + "I will add instead.\n\n" + "Wait, I must multiply 6 by 7."
    assert [c["correct"] for c in conts] == [True, False, False]
    assert sel[0]["n_correct"] == 1 and sel[0]["selected"]
    _, strict = run_guided(
        [kept_intervention()],
        {"t/1/0": rollout},
        {"t/1": "42"},
        backend,
        GuidedParams(enabled=True, continuations=3, min_correct=2),
        GradingParams(),
    )
    assert not strict[0]["selected"]


def test_guided_disabled_selects_every_kept_intervention_without_generating(tmp_path):
    ivs = [
        {
            **iv_row,
            "n_steps": 3,
            "parse_status": "ok",
            "repairs": [],
            "leaked": False,
            "leak_evidence": None,
            "drop_reason": None,
            "sample_id": 0,
            "proposal_index": i,
        }
        for i, iv_row in enumerate(
            [kept_intervention(), {**kept_intervention(), "proposal_id": "t/1/0/1", "kept": False}]
        )
    ]
    write_artifact(ivs, tmp_path / "interventions.parquet", "interventions")
    summary = write_guided(
        tmp_path / "no-problems.parquet",  # never read when switched off
        tmp_path / "no-rollouts.parquet",
        tmp_path / "interventions.parquet",
        tmp_path / "continuations.parquet",
        tmp_path / "selected.parquet",
        GuidedParams(enabled=False),
        GradingParams(),
        None,  # no backend: nothing is generated
    )
    sel = read_artifact(tmp_path / "selected.parquet", "selected").to_pylist()
    assert [(s["proposal_id"], s["selected"]) for s in sel] == [("t/1/0/0", True)]
    assert read_artifact(tmp_path / "continuations.parquet", "continuations").num_rows == 0
    assert summary["selected"] == 1 and summary["continuations"] == 0


def test_proposals_in_one_pass_when_the_backend_can_switch_to_the_schema(tiny_tokenizer):
    def script(req, j):
        if req.json_trigger is not None:
            block = json.dumps({"content": "Wait, I must multiply.", "location": 2})
            return f"Audit {j}: step 2 adds.{req.json_trigger}{block}"
        return "Reference working: 6*7=42."

    backend = ScriptedBackend(tiny_tokenizer, script)
    backend.supports_json_trigger = True
    params = ProposalsParams(per_attempt=2, block_max_new_tokens=40)
    rows = run_proposals({"t/1": PROBLEM}, [attempt_row()], backend, params)
    assert len(backend.calls) == 2  # turn 1, then turn 2 with the block in the same pass
    (verify,) = backend.calls[1]
    assert verify.json_trigger == BLOCK_OPEN and verify.json_max_new_tokens == 40
    assert verify.json_schema["properties"]["location"]["maximum"] == 3
    assert rows[1]["verification"] == "Audit 1: step 2 adds."
    assert rows[1]["text"].endswith(BLOCK_CLOSE)
    parsed, _ = build_interventions(rows, {"t/1": "42"}, InterventionsParams(dedup="none"))
    assert [(r["parse_status"], r["location"]) for r in parsed] == [("ok", 2), ("ok", 2)]


def test_reference_solution_baseline_rows():
    from intervention_training.sft_data import build_reference_rows

    rollouts = [attempt_row(), {**attempt_row(), "rollout_id": "t/1/1", "sample_id": 1}]
    other = {**PROBLEM, "problem_id": "t/2"}  # no rollouts: not a training problem here
    rows = build_reference_rows([PROBLEM, other], rollouts)
    assert len(rows) == 1
    (row,) = rows
    assert row["prompt"] == "PROMPT:" and row["completion"] == PROBLEM["reference_solution"]
    assert row["proposal_id"] == "reference/t/1" and row["location"] == 0


# -- which failed attempts are self-verified ------------------------------------------------------


def _graded_workspace(tmp_path, hard_only: bool):
    """Two problems: "easy" solved once out of three attempts, "hard" never (one wrong answer,
    one without a box, one cut off)."""
    from intervention_training.grades import write_grades

    problems = [
        {
            "problem_id": pid,
            "problem": "q",
            "answer": "42",
            "reference_solution": "s",
            "source": "t",
            "split": "train",
        }
        for pid in ("easy", "hard")
    ]
    texts = {
        "easy": [("\\boxed{42}", "stop"), ("\\boxed{41}", "stop"), ("no box", "stop")],
        "hard": [("\\boxed{7}", "stop"), ("no box", "stop"), ("\\boxed{4", "length")],
    }
    rollouts = [
        {
            "rollout_id": f"{pid}/{j}",
            "problem_id": pid,
            "sample_id": j,
            "prompt": "P",
            "completion": text,
            "n_tokens": 3,
            "finish_reason": finish,
            "seed": j,
        }
        for pid, attempts in texts.items()
        for j, (text, finish) in enumerate(attempts)
    ]
    write_artifact(problems, tmp_path / "problems.parquet", "problems")
    write_artifact(rollouts, tmp_path / "rollouts.parquet", "rollouts")
    write_grades(
        tmp_path / "problems.parquet",
        tmp_path / "rollouts.parquet",
        tmp_path / "grades.parquet",
        tmp_path / "pass_rates.parquet",
        GradingParams(workers=1, hard_only=hard_only),
    )
    return tmp_path / "grades.parquet", tmp_path / "pass_rates.parquet"


def test_failed_attempts_are_those_with_the_chosen_statuses(tmp_path):
    from intervention_training.proposals import select_failed_attempts

    grades, rates = _graded_workspace(tmp_path, hard_only=False)
    status = {g["rollout_id"]: g["status"] for g in read_artifact(grades, "grades").to_pylist()}
    assert status == {
        "easy/0": "correct",
        "easy/1": "incorrect",
        "easy/2": "no_answer",
        "hard/0": "incorrect",
        "hard/1": "no_answer",
        "hard/2": "truncated",
    }
    chosen = select_failed_attempts(grades, rates, ("incorrect", "no_answer"))
    assert chosen == {"easy/1", "easy/2", "hard/0", "hard/1"}
    with_cut = select_failed_attempts(grades, rates, ("incorrect", "no_answer", "truncated"))
    assert with_cut == chosen | {"hard/2"}


def test_hard_only_keeps_the_attempts_of_never_solved_problems(tmp_path):
    from intervention_training.proposals import select_failed_attempts

    grades, rates = _graded_workspace(tmp_path, hard_only=True)
    selected = {
        r["problem_id"]: r["selected"] for r in read_artifact(rates, "pass_rates").to_pylist()
    }
    assert selected == {"easy": False, "hard": True}
    assert select_failed_attempts(grades, rates, ("incorrect", "no_answer")) == {"hard/0", "hard/1"}
