"""The whole data pipeline under real DVC, in a temporary copy, with a tiny random model.

Runs `dvc repro sft_data` (every data stage, up to the SFT dataset) and checks every artifact's
schema and the invariants users rely on, that a second run reruns nothing, and that changing a
proposals parameter reruns proposals and what follows only. Training and evaluation stages have
their own end-to-end test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from workspace import make_workspace, run, stages_run

from intervention_training.artifacts import read_artifact
from intervention_training.grading import is_equivalent
from intervention_training.leakage import leaks_answer
from intervention_training.steps import prefix_before_step, split_steps

pytestmark = pytest.mark.slow

ARTIFACTS = {
    "problems": "problems",
    "rollouts": "rollouts",
    "grades": "grades",
    "pass_rates": "pass_rates",
    "proposals": "proposals",
    "interventions": "interventions",
    "continuations": "continuations",
    "selected": "selected",
    "sft": "sft",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("pipeline") / "ws")
    run([sys.executable, "-m", "dvc", "repro", "sft_data"], ws)
    return ws


def load(ws: Path, name: str) -> list[dict]:
    return read_artifact(ws / "data" / f"{name}.parquet", ARTIFACTS[name]).to_pylist()


def test_every_artifact_matches_its_schema(workspace):
    for name in ARTIFACTS:
        assert isinstance(load(workspace, name), list)
    assert (workspace / "data/models/base/model_ref.json").exists()


def test_rollouts_cover_train_problems_with_k_samples(workspace):
    problems = load(workspace, "problems")
    train = {p["problem_id"] for p in problems if p["split"] == "train"}
    rollouts = load(workspace, "rollouts")
    assert len(problems) == 6 and len(train) == 4
    assert {r["problem_id"] for r in rollouts} == train
    assert len(rollouts) == 2 * len(train)
    assert all(r["finish_reason"] in {"stop", "length"} for r in rollouts)
    assert {g["rollout_id"] for g in load(workspace, "grades")} == {
        r["rollout_id"] for r in rollouts
    }


def test_intervention_locations_lie_within_their_attempt(workspace):
    rollouts = {r["rollout_id"]: r for r in load(workspace, "rollouts")}
    ivs = load(workspace, "interventions")
    assert ivs, "no interventions were produced"
    parsed = [iv for iv in ivs if iv["parse_status"] == "ok"]
    assert parsed, "the constrained block should make proposals parse"
    for iv in parsed:
        n = len(split_steps(rollouts[iv["rollout_id"]]["completion"]))
        assert iv["n_steps"] == n
        assert 1 <= iv["location"] <= n


def test_sft_rows_are_prefix_plus_intervention_and_do_not_leak(workspace):
    rollouts = {r["rollout_id"]: r for r in load(workspace, "rollouts")}
    answers = {p["problem_id"]: p["answer"] for p in load(workspace, "problems")}
    ivs = {iv["proposal_id"]: iv for iv in load(workspace, "interventions")}
    sft = load(workspace, "sft")
    assert sft, "the SFT dataset is empty"
    for row in sft:
        iv = ivs[row["proposal_id"]]
        assert iv["kept"]
        attempt = rollouts[row["rollout_id"]]
        assert row["prompt"] == attempt["prompt"]
        expected = prefix_before_step(attempt["completion"], iv["location"]) + iv["content"]
        assert row["completion"] == expected
        assert not row["completion"].endswith("<|im_end|>")
        assert not leaks_answer(iv["content"], answers[row["problem_id"]]).leaked
        assert is_equivalent(iv["content"].strip(), answers[row["problem_id"]]) is not True


def test_second_repro_reruns_nothing(workspace):
    out = run([sys.executable, "-m", "dvc", "repro", "sft_data"], workspace)
    assert stages_run(out) == set(), out
    # bytecode Python writes beside the library (a dependency of every stage) changes nothing
    for folder in ("intervention_training", "intervention_training/grading", "stages"):
        cache = workspace / folder / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "written_by_python.cpython-311.pyc").write_bytes(b"\x00bytecode")
    out = run([sys.executable, "-m", "dvc", "status", "--with-deps", "sft_data"], workspace)
    assert "up to date" in out, out


def test_changing_a_proposals_param_reruns_only_downstream(workspace):
    path = workspace / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["proposals"]["per_attempt"] = 1
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro", "sft_data"], workspace)
    assert stages_run(out) == {"proposals", "interventions", "guided", "sft_data"}, out
    assert {p["proposal_index"] for p in load(workspace, "proposals")} == {0}


def test_editing_a_benchmark_loader_does_not_rerun_generation(workspace):
    loader = workspace / "intervention_training/evaluation/benchmarks.py"
    original = loader.read_text()
    loader.write_text(original + "\n# an edit that changes no loaded row\n")
    try:
        out = run(
            [sys.executable, "-m", "dvc", "status", "--json", "sft_data", "--with-deps"], workspace
        )
        changed = set(json.loads(out[out.index("{") :]))
        assert changed == {"benchmarks"}, out
        out = run([sys.executable, "-m", "dvc", "repro", "sft_data"], workspace)
        # the benchmarks artifact comes out the same, so the problems stage (and everything
        # generated from it) is not rerun
        assert stages_run(out) == {"benchmarks"}, out
    finally:
        loader.write_text(original)
