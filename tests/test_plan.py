"""`int plan` on N nodes: wall time and GPU-hours per stage from stated per-GPU speeds.

The numbers are worked out by hand on a small constructed params file (every trainer key that
matters is set, so no TRL default enters): 10 problems, 2 held out, 8 training problems.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from intervention_training.cli import app
from intervention_training.cli.data import CliInputError
from intervention_training.cli.plan import Cluster, estimate

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _params(tmp_path: Path, **overrides) -> Path:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        "".join(json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                for i in range(3))
    )  # fmt: skip
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
        "sft": {
            "trainer": {
                "per_device_train_batch_size": 1,
                "gradient_accumulation_steps": 2,
                "num_train_epochs": 2,
                "max_length": 1000,
            }
        },
        "rl": {
            "trainer": {
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 2,
                "num_generations": 4,
                "max_completion_length": 100,
                "max_steps": 5,
            }
        },
        "evaluation": {
            "benchmarks": [
                {"name": "heldout", "source": "heldout"},
                {"name": "bench", "path": str(bench)},
            ],
            "samples_per_problem": 2,
            "ks": [1, 2],
            "sampling": {"max_new_tokens": 10},
        },
        **overrides,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _plan(path: Path, **cluster) -> dict:
    """``estimate`` with failure 0.5, keep 0.5, select 0.5 on 2-GPU nodes; stages by name."""
    settings = {"gpus_per_node": 2, "gen_tokens_per_gpu": 10.0, "train_tokens_per_gpu": 100.0,
                "train_efficiency": 1.0, **cluster}  # fmt: skip
    plan = estimate(path, failure_rate=0.5, keep_rate=0.5, select_rate=0.5,
                    cluster=Cluster(**settings))  # fmt: skip
    return {s.stage: s for s in plan.stages} | {"plan": plan}


def test_counts_of_the_training_and_evaluation_stages(tmp_path):
    s = _plan(_params(tmp_path))
    # 16 failed attempts -> 8 kept interventions -> 4 selected x 2 epochs = 8 sequences of 1000
    assert (s["sft"].items, s["sft"].train_tokens, s["sft"].generations) == (8, 8000, 0)
    # global batch 1 x 2 x 2 GPUs; RL: 5 steps x (2 x 2 x 2 GPUs) = 8 completions of 100 tokens
    assert (s["rl"].items, s["rl"].generations, s["rl"].new_tokens) == (5, 40, 4000)
    assert s["rl"].train_tokens == 4000
    # 3 models x (2 held-out + 3 file problems) x 2 samples of 10 tokens
    assert (s["evaluate"].generations, s["evaluate"].new_tokens) == (30, 300)
    assert [st.stage for st in s["plan"].stages] == [
        "rollouts", "proposals", "guided", "sft", "rl", "evaluate"
    ]  # fmt: skip
    assert s["plan"].assumptions["sft_examples"] == 4


def test_doubling_nodes_halves_generation_time_with_the_same_gpu_hours(tmp_path):
    path = _params(tmp_path)
    one, two = _plan(path, nodes=1), _plan(path, nodes=2)
    for stage in ("rollouts", "proposals", "guided", "evaluate"):
        assert one[stage].gpus == 2 and two[stage].gpus == 4
        assert two[stage].seconds == pytest.approx(one[stage].seconds / 2)
        assert two[stage].gpu_hours == pytest.approx(one[stage].gpu_hours)
    assert one["rollouts"].seconds == pytest.approx(3200 / (10 * 2))  # 160 s
    assert one["rollouts"].gpu_hours == pytest.approx(160 * 2 / 3600)
    # a node's --throughput is the per-GPU speed x the node's GPUs
    node = _plan(path, nodes=2, gen_tokens_per_gpu=None, throughput=20.0)
    assert node["guided"].seconds == pytest.approx(two["guided"].seconds)
    assert node["rl"].seconds == pytest.approx(two["rl"].seconds)


def test_training_scales_up_to_its_global_batch_with_the_stated_efficiency(tmp_path):
    path = _params(tmp_path)
    one, two, four = (_plan(path, nodes=n) for n in (1, 2, 4))
    assert one["sft"].seconds == pytest.approx(8000 / (100 * 2))  # 40 s on 2 GPUs
    assert two["sft"].seconds == pytest.approx(20.0)
    # the global batch is 4 sequences: on 8 GPUs 4 work, 4 wait (and are paid for)
    assert four["sft"].gpus == 4 and four["sft"].seconds == pytest.approx(20.0)
    assert four["sft"].gpu_hours == pytest.approx(2 * two["sft"].gpu_hours)
    # efficiency 0.5 per doubling of nodes: 2 nodes train at half the linear speed-up
    lossy = _plan(path, nodes=2, train_efficiency=0.5)
    assert lossy["sft"].seconds == pytest.approx(8000 / (100 * 4 * 0.5))
    sixteen = _plan(path, nodes=16, gpus_per_node=1, train_efficiency=0.8)
    # batch 1 x 2 x 1 GPU = 2 sequences: 2 GPUs on 2 nodes, one doubling
    assert sixteen["sft"].gpus == 2
    assert sixteen["sft"].seconds == pytest.approx(8000 / (100 * 2 * 0.8))
    assert Cluster(nodes=16, train_efficiency=0.9).train_efficiency_on(128) == pytest.approx(0.9**4)


def test_rl_steps_generate_then_train_and_wait_for_the_longest_completion(tmp_path):
    path = _params(tmp_path)
    # per step 8 completions x 100 tokens: generated at 10/s on 2 GPUs (40 s), trained at 100/s
    # on 2 GPUs (4 s); 5 steps
    assert _plan(path)["rl"].seconds == pytest.approx(5 * (40 + 4))
    # 8 nodes: 16 GPUs, 8 take part (one per completion): 10 s + 1 s a step
    eight = _plan(path, nodes=8)
    assert eight["rl"].gpus == 8 and eight["rl"].seconds == pytest.approx(5 * 11)
    # one sequence decoded at 1 token/s: no step ends before 100 s
    slow = _plan(path, nodes=8, seq_tokens_per_s=1.0)
    assert slow["rl"].seconds == pytest.approx(5 * (100 + 1))
    # the floor holds generating stages too: rollouts take at least 100 tokens / 1 per s
    assert slow["rollouts"].seconds == pytest.approx(max(3200 / 160, 100.0))
    # without a training speed there is no RL time (its steps need both)
    assert _plan(path, train_tokens_per_gpu=None)["rl"].seconds is None


def test_tensor_parallel_replicas_use_whole_groups_of_gpus(tmp_path):
    path = _params(tmp_path, backend={"name": "vllm", "tensor_parallel_size": 3})
    s = _plan(path, nodes=2, gpus_per_node=8)
    assert s["rollouts"].gpus == 12  # 2 replicas of 3 GPUs a node; 2 GPUs a node idle
    assert s["rollouts"].gpu_hours == pytest.approx(s["rollouts"].seconds * 16 / 3600)
    with pytest.raises(CliInputError, match="tensor_parallel_size 3 .* --gpus-per-node 2"):
        _plan(path)


def test_totals_and_json(tmp_path):
    path = _params(tmp_path)
    speeds = ("--gen-tokens-per-gpu", "10", "--train-tokens-per-gpu", "100",
              "--train-efficiency", "1")  # fmt: skip
    result = invoke("plan", "--params", path, "--failure-rate", "0.5", "--select-rate", "0.5",
                    "--nodes", "2", "--gpus-per-node", "2", *speeds, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    stages = {s["stage"]: s for s in plan["stages"]}
    gen = sum(stages[n]["seconds"] for n in ("rollouts", "proposals", "guided", "evaluate"))
    assert plan["total"]["generation_seconds"] == pytest.approx(gen)
    assert plan["total"]["seconds"] == pytest.approx(
        gen + stages["sft"]["seconds"] + stages["rl"]["seconds"]
    )
    assert plan["total"]["gpu_hours"] == pytest.approx(plan["total"]["seconds"] * 4 / 3600)
    assert plan["assumptions"]["cluster"]["gpus"] == 4


def test_table_states_the_speeds_it_assumed(tmp_path):
    path = _params(tmp_path)
    out = invoke("plan", "--params", path, "--nodes", "4", "--gen-tokens-per-gpu", "2500",
                 "--train-tokens-per-gpu", "6000", "--seq-tokens-per-s", "100").stdout  # fmt: skip
    out = " ".join(out.split())  # rich wraps long lines at 120 columns
    assert "on 4 node(s) x 8 GPUs" in out and "GPU-hours" in out and "32 held" in out
    assert "generation 2,500 new tokens/s per GPU" in out
    assert "training 6,000 tokens/s per GPU, efficiency 0.9 per doubling" in out
    assert "decode 100 tokens/s" in out
    bare = " ".join(invoke("plan", "--params", path).stdout.split())
    assert "not given (--gen-tokens-per-gpu or --throughput for times)" in bare


def test_benchmarks_it_cannot_count_are_named(tmp_path):
    path = _params(
        tmp_path,
        evaluation={
            "benchmarks": [
                {"name": "gone", "path": str(tmp_path / "missing.jsonl")},
                {"name": "remote", "source": "hub", "hub_name": "org/set"},
            ],
            "samples_per_problem": 2,
            "ks": [1],
        },
    )
    s = _plan(path)
    assert s["evaluate"].generations == 0
    assert "NOT COUNTED: gone" in s["evaluate"].note and "remote (hub" in s["evaluate"].note
    given = estimate(path, eval_problems=7, cluster=Cluster(gpus_per_node=2))
    assert {st.stage: st for st in given.stages}["evaluate"].generations == 3 * 7 * 2


def test_reference_sft_trains_on_one_solution_per_training_problem(tmp_path):
    s = _plan(_params(tmp_path, sft_data={"source": "reference"}))
    assert s["sft"].items == 8 * 2  # 8 training problems x 2 epochs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "0"), "--nodes must be a whole number >= 1"),
        (("--gpus-per-node", "0"), "--gpus-per-node must be a whole number >= 1"),
        (("--gen-tokens-per-gpu", "-5"), "--gen-tokens-per-gpu must be a positive number"),
        (("--train-tokens-per-gpu", "0"), "--train-tokens-per-gpu must be a positive number"),
        (("--seq-tokens-per-s", "nan"), "--seq-tokens-per-s must be a positive number"),
        (("--throughput", "0"), "--throughput must be a positive number"),
        (("--train-efficiency", "0"), "--train-efficiency must lie in (0, 1]"),
        (("--train-efficiency", "1.5"), "--train-efficiency must lie in (0, 1]"),
        (("--throughput", "10", "--gen-tokens-per-gpu", "1"), "give one generation speed"),
        (("--select-rate", "2"), "--select-rate must lie in [0, 1]"),
        (("--eval-problems", "-1"), "--eval-problems must be >= 0"),
    ],
)
def test_bad_cluster_input_is_refused_with_its_option_named(tmp_path, args, message):
    result = invoke("plan", "--params", _params(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_non_integer_node_count_is_refused(tmp_path):
    assert invoke("plan", "--params", _params(tmp_path), "--nodes", "1.5").exit_code == 2
    with pytest.raises(CliInputError, match="--nodes"):
        Cluster(nodes=math.pi).check()  # type: ignore[arg-type]


def test_table_1_and_locator_stages_are_counted_when_configured(tmp_path):
    path = _params(
        tmp_path,
        continuation_sources={"continuations": 3, "max_problems": None,
                              "sampling": {"max_new_tokens": 50}},
        locate_eval={"items": 10},
    )  # fmt: skip
    s = _plan(path)
    # 8 training problems; no correct attempt in all K=4 at failure 0.5: 0.5**4 = 1/16 -> 0.5 ->
    # round() = 0 problems; say 0.5 of them are hard instead: 4 problems x 4 failed attempts x
    # min(M=2, max_per_attempt=1) x keep 0.5 = 8 kept interventions x 4 sources x 3
    assert s["continuation_sources"].generations == 0
    plan = estimate(path, failure_rate=0.5, keep_rate=0.5, hard_rate=0.5,
                    cluster=Cluster(gpus_per_node=2, gen_tokens_per_gpu=10.0))  # fmt: skip
    cs = {st.stage: st for st in plan.stages}["continuation_sources"]
    assert (cs.generations, cs.new_tokens) == (8 * 4 * 3, 8 * 4 * 3 * 50)
    assert cs.seconds == pytest.approx(8 * 4 * 3 * 50 / 20.0)  # 2 GPUs x 10 tokens/s
    # a cap on the problems: max_problems 1 -> 1 x 4 x 1 x 0.5 = 2 kept x 4 sources x 3
    capped = _params(tmp_path, continuation_sources={"continuations": 3, "max_problems": 1})
    cs = {st.stage: st for st in estimate(capped, failure_rate=0.5, keep_rate=0.5,
                                         hard_rate=0.5).stages}["continuation_sources"]  # fmt: skip
    assert cs.generations == 2 * 4 * 3
    # locate_eval: 10 solutions x (reference turn + audit + constrained block), 50 + 30 + 20
    le = s["locate_eval"]
    assert (le.items, le.generations, le.new_tokens) == (10, 30, 1000)
    assert [st.stage for st in plan.stages][-2:] == ["continuation_sources", "locate_eval"]
    with pytest.raises(CliInputError, match="--hard-rate"):
        estimate(path, hard_rate=1.5)
