"""Table 1's continuation sources: prefixes, requests, grading and the coverage/accuracy table."""

import json

import pytest
from fakes import ScriptedBackend

from intervention_training.artifacts import read_artifact, read_metadata, write_artifact
from intervention_training.config import ContinuationSourcesParams, GradingParams
from intervention_training.continuation_sources import (
    ProblemCounts,
    count_by_problem,
    prefix_with_error,
    run_continuation_sources,
    source_metrics,
    source_prefix,
    write_continuation_sources,
)
from intervention_training.generation import derive_seed
from intervention_training.guided import guided_prefix

# p1: the error is step 2 of 3; p2: the error is the last step; p3 has a correct attempt.
ATTEMPTS = {
    "p1": "Let x be the product.\n\nAdd: 6 + 7 = 13.\n\nSo \\boxed{13}.",
    "p2": "Halve 14.\n\nIt is 6, so \\boxed{6}.",
    "p3": "Easy.\n\nWrong \\boxed{4}.",
}
ANSWERS = {"p1": "42", "p2": "7", "p3": "5"}
FIX = "FIX: multiply instead."


def rollout(pid):
    return {
        "rollout_id": f"{pid}/0",
        "problem_id": pid,
        "sample_id": 0,
        "prompt": f"<user>{pid}</user>",
        "completion": ATTEMPTS[pid],
        "n_tokens": 9,
        "finish_reason": "stop",
        "seed": 1,
    }


def intervention(pid, index=0, location=2, kept=True):
    return {
        "proposal_id": f"{pid}/0/{index}",
        "rollout_id": f"{pid}/0",
        "problem_id": pid,
        "sample_id": 0,
        "proposal_index": index,
        "n_steps": len(ATTEMPTS[pid].split("\n\n")),
        "parse_status": "ok",
        "location": location,
        "content": f"{FIX} ({pid})",
        "repairs": [],
        "leaked": False,
        "leak_evidence": None,
        "kept": kept,
        "drop_reason": None if kept else "duplicate",
    }


def script(request, j):
    """Interventions lead to the answer on the first sample; problem_only solves p1 once."""
    pid = "p1" if "p1" in request.prompt else "p2" if "p2" in request.prompt else "p3"
    if FIX in request.prompt and j == 0:
        return f" so \\boxed{{{ANSWERS[pid]}}}."
    if request.prompt.endswith("</user>") and pid == "p1" and j == 1:
        return "6 * 7 = \\boxed{42}"
    return " \\boxed{0}"


def test_each_source_prefix_is_the_right_text():
    r, iv = rollout("p1"), intervention("p1")
    assert source_prefix("problem_only", r, iv) == ""
    assert source_prefix("prefix_resample", r, iv) == "Let x be the product.\n\n"
    assert source_prefix("prefix_with_error", r, iv) == (
        "Let x be the product.\n\nAdd: 6 + 7 = 13.\n\n"
    )
    assert source_prefix("prefix_intervention", r, iv) == guided_prefix(r, iv)
    assert (
        source_prefix("prefix_intervention", r, iv) == "Let x be the product.\n\n" + iv["content"]
    )
    assert source_prefix("stronger_proposer", r, iv) == guided_prefix(r, iv)
    # the erroneous step is the last one: it is kept, then a separator
    assert prefix_with_error(ATTEMPTS["p2"], 2) == ATTEMPTS["p2"] + "\n\n"
    # separators are kept as written
    assert prefix_with_error("a\r\n\r\n\r\nb\n\nc", 2) == "a\r\n\r\n\r\nb\n\n"
    assert source_prefix("prefix_resample", r, intervention("p1", location=1)) == ""
    with pytest.raises(ValueError):
        prefix_with_error(ATTEMPTS["p1"], 4)
    with pytest.raises(ValueError):
        source_prefix("made_up", r, iv)


def test_one_generate_call_c_continuations_per_source_distinct_seeds_graded():
    backend = ScriptedBackend(None, script)
    ivs = [intervention("p1"), intervention("p2")]
    params = ContinuationSourcesParams(continuations=3, seed=4)
    rows = run_continuation_sources(
        ivs,
        {f"{p}/0": rollout(p) for p in ("p1", "p2")},
        ANSWERS,
        backend,
        params,
        GradingParams(workers=1),
    )
    (requests,) = backend.calls  # one call for every source
    sources = ["problem_only", "prefix_resample", "prefix_with_error", "prefix_intervention"]
    assert len(requests) == 4 * 2 and all(r.n == 3 for r in requests)
    for req, (source, iv) in zip(requests, [(s, iv) for s in sources for iv in ivs], strict=True):
        r = rollout(iv["problem_id"])
        assert req.prompt == r["prompt"] + source_prefix(source, r, iv)
        assert req.seed == derive_seed(4, "continuation_sources", source, iv["proposal_id"])
    assert len({r.seed for r in requests}) == len(requests)
    assert len(rows) == 4 * 2 * 3
    assert len({r["seed"] for r in rows}) == len(rows)
    assert len({r["continuation_id"] for r in rows}) == len(rows)
    by_source = {s: [r for r in rows if r["source"] == s] for s in sources}
    assert all(len(v) == 6 for v in by_source.values())
    assert all(r["prefix"] == "" for r in by_source["problem_only"])
    correct = {
        s: [(r["problem_id"], r["continuation_index"]) for r in v if r["correct"]]
        for s, v in by_source.items()
    }
    assert correct == {
        "problem_only": [("p1", 1)],
        "prefix_resample": [],
        "prefix_with_error": [],
        "prefix_intervention": [("p1", 0), ("p2", 0)],
    }
    wrong = by_source["prefix_resample"][0]
    assert wrong["status"] == "incorrect" and wrong["extracted"] == "0"


def test_full_answer_text_is_graded():
    """A continuation without an answer after a prefix that ends with one is graded on both."""
    r = {**rollout("p2"), "completion": "Halve 14.\n\nIt is \\boxed{7}."}
    backend = ScriptedBackend(None, lambda req, j: " Done.")
    rows = run_continuation_sources(
        [intervention("p2")],
        {"p2/0": r},
        ANSWERS,
        backend,
        ContinuationSourcesParams(continuations=1),
        GradingParams(workers=1),
        sources=("problem_only", "prefix_with_error"),
    )
    assert [(x["source"], x["correct"]) for x in rows] == [
        ("problem_only", False),
        ("prefix_with_error", True),
    ]


def write_inputs(tmp_path):
    pids = ("p1", "p2", "p3")
    problems = [
        {
            "problem_id": p,
            "problem": f"problem {p}",
            "answer": ANSWERS[p],
            "reference_solution": "ref",
            "source": "t",
            "split": "train",
        }
        for p in pids
    ]
    pass_rates = [
        {
            "problem_id": p,
            "n_samples": 4,
            "n_correct": int(p == "p3"),
            "pass_rate": 0.25 * (p == "p3"),
            "selected": p != "p3",
        }
        for p in pids
    ]
    ivs = [
        intervention("p1"),
        intervention("p1", index=1, kept=False),  # dropped: never continued
        intervention("p2"),
        intervention("p3"),  # its problem was solved once: not hard
    ]
    paths = {name: tmp_path / f"{name}.parquet" for name in ("problems", "rollouts", "pr", "iv")}
    write_artifact(problems, paths["problems"], "problems")
    write_artifact([rollout(p) for p in pids], paths["rollouts"], "rollouts")
    write_artifact(pass_rates, paths["pr"], "pass_rates")
    write_artifact(ivs, paths["iv"], "interventions")
    return paths


def run_stage(tmp_path, **kwargs):
    paths = write_inputs(tmp_path)
    proposer = kwargs.pop("proposer", None)
    params = ContinuationSourcesParams(continuations=2, bootstrap=50, **kwargs)
    backend = ScriptedBackend(None, script)
    summary = write_continuation_sources(
        paths["problems"],
        paths["rollouts"],
        paths["pr"],
        paths["iv"],
        tmp_path / "out.parquet",
        tmp_path / "metrics.json",
        params,
        GradingParams(workers=1),
        backend,
        proposer=proposer,
    )
    rows = read_artifact(tmp_path / "out.parquet", "continuation_sources").to_pylist()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    return summary, rows, metrics


def test_stage_on_hard_problems_with_the_policy_as_proposer(tmp_path):
    summary, rows, metrics = run_stage(tmp_path)
    assert {r["problem_id"] for r in rows} == {"p1", "p2"}  # p3 is not hard
    assert {r["proposal_id"] for r in rows} == {"p1/0/0", "p2/0/0"}  # the dropped one is not
    assert [s for s in metrics if "skipped" not in metrics[s]] == [
        "prefix_intervention",
        "prefix_resample",
        "prefix_with_error",
        "problem_only",
    ]
    assert "proposals.model is null" in metrics["stronger_proposer"]["skipped"]
    assert summary["hard_problems"] == 2 and summary["interventions"] == 2
    assert summary["continuations"] == len(rows) == 4 * 2 * 2
    assert summary["skipped"] == ["stronger_proposer"]
    po, pi = metrics["problem_only"], metrics["prefix_intervention"]
    assert (po["coverage"], po["correct"], po["continuations"]) == (1, 1, 4)
    assert (pi["coverage"], pi["correct"], pi["continuations"]) == (2, 2, 4)
    assert pi["coverage_ratio"] == 2.0 and pi["accuracy_ratio"] == 2.0
    assert metrics["prefix_resample"]["coverage_ratio"] == 0.0
    meta = read_metadata(tmp_path / "out.parquet")
    assert meta["provenance"]["proposer_model"] is None


def test_stage_labels_a_separate_proposers_interventions(tmp_path):
    _, rows, metrics = run_stage(tmp_path, proposer="org/bigger")
    assert "stronger_proposer" in {r["source"] for r in rows}
    assert "prefix_intervention" not in {r["source"] for r in rows}
    assert metrics["stronger_proposer"]["coverage"] == 2
    assert "org/bigger" in metrics["prefix_intervention"]["skipped"]


def test_max_problems_takes_a_seeded_subset(tmp_path):
    summary, rows, metrics = run_stage(tmp_path, max_problems=1, seed=3)
    assert summary["problems"] == 1 and len({r["problem_id"] for r in rows}) == 1
    assert metrics["problem_only"]["problems"] == 1
    again, rows2, _ = run_stage(tmp_path, max_problems=1, seed=3)
    assert rows2 == rows


def test_coverage_and_accuracy_by_hand():
    counts = {
        "problem_only": {"a": ProblemCounts(4, 1), "b": ProblemCounts(4, 0)},
        "prefix_intervention": {"a": ProblemCounts(4, 2), "b": ProblemCounts(4, 1)},
        "prefix_resample": {"a": ProblemCounts(4, 0)},  # b missing: not covered
    }
    m = source_metrics(counts, n_boot=200, seed=0)
    po, pi, pr = m["problem_only"], m["prefix_intervention"], m["prefix_resample"]
    assert (po["problems"], po["coverage"], po["coverage_share"]) == (2, 1, 0.5)
    assert po["accuracy"] == pytest.approx(1 / 8) and po["continuations"] == 8
    assert (pi["coverage"], pi["coverage_share"]) == (2, 1.0)
    assert pi["accuracy"] == pytest.approx(3 / 8)
    assert pi["coverage_ratio"] == 2.0 and pi["accuracy_ratio"] == pytest.approx(3.0)
    assert po["coverage_ratio"] == 1.0 and po["accuracy_ratio"] == 1.0
    assert (pr["problems"], pr["coverage"], pr["continuations"], pr["accuracy"]) == (2, 0, 4, 0.0)
    assert list(m) == ["problem_only", "prefix_resample", "prefix_intervention"]
    # problem_only never correct: no ratio
    zero = source_metrics(
        {"problem_only": {"a": ProblemCounts(2, 0)}, "prefix_resample": {"a": ProblemCounts(2, 1)}},
        n_boot=10,
    )
    assert zero["prefix_resample"]["coverage_ratio"] is None
    assert zero["prefix_resample"]["accuracy_ratio"] is None
    assert zero["problem_only"]["coverage_ratio"] is None


def test_count_by_problem_from_rows():
    rows = [
        {"source": "problem_only", "problem_id": "a", "correct": True},
        {"source": "problem_only", "problem_id": "a", "correct": False},
        {"source": "prefix_resample", "problem_id": "b", "correct": False},
    ]
    assert count_by_problem(rows) == {
        "problem_only": {"a": ProblemCounts(2, 1)},
        "prefix_resample": {"b": ProblemCounts(1, 0)},
    }


def test_bootstrap_interval_holds_the_estimate_and_is_deterministic():
    counts = {
        "problem_only": {f"q{i}": ProblemCounts(4, int(i % 5 == 0)) for i in range(30)},
        "prefix_intervention": {f"q{i}": ProblemCounts(4, i % 3) for i in range(30)},
    }
    first = source_metrics(counts, n_boot=300, seed=7)
    assert source_metrics(counts, n_boot=300, seed=7) == first
    assert source_metrics(counts, n_boot=300, seed=8) != first
    for row in first.values():
        assert row["coverage_lo"] <= row["coverage"] <= row["coverage_hi"]
        assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
        assert row["coverage_lo"] < row["coverage_hi"]
    empty = source_metrics({}, problems=[], n_boot=5, skipped={"stronger_proposer": "why"})
    assert empty == {"stronger_proposer": {"skipped": "why"}}
