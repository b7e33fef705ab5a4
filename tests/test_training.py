"""The training stages' contracts, with real TRL trainers on the tiny random model (CPU, seconds).

* SFT: two steps change the weights; only the completion carries loss, with no end-of-turn
  token after the intervention (unless ``append_eos``); the prompt tokens are exactly the
  tokens the rollouts were generated from; an interrupted run resumes from its checkpoint.
* GRPO: two steps change the weights; the reward function is the grader, called with the
  dataset's answers; the per-step log has the group statistics TRL computes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, TrainerCallback

from intervention_training.config import (
    ConfigError,
    RlParams,
    RolloutsParams,
    SamplingSection,
    SftParams,
    validate_all,
)
from intervention_training.generation import GenerationRequest
from intervention_training.generation.transformers_backend import TransformersBackend
from intervention_training.prompts import rollout_prompt
from intervention_training.rollouts import run_rollouts
from intervention_training.training.callbacks import read_curves
from intervention_training.training.rl import GraderReward, build_rl_trainer, train_rl
from intervention_training.training.sft import build_sft_trainer, train_sft

ROOT = Path(__file__).resolve().parents[1]
IM_END = "<|im_end|>"

torch.set_num_threads(1)

COMMON = {
    "use_cpu": True,
    "report_to": "none",
    "gradient_checkpointing": False,
    "logging_steps": 1,
    "save_steps": 1,
    "seed": 0,
    "learning_rate": 1e-2,
    "dataloader_num_workers": 0,
}


def sft_params(**trainer) -> SftParams:
    base = {**COMMON, "max_steps": 2, "per_device_train_batch_size": 2, "max_length": 512}
    return SftParams(trainer={**base, **trainer})


def rl_params(**trainer) -> RlParams:
    base = {
        **COMMON,
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 12,
        "beta": 0.0,
        "temperature": 1.0,
    }
    return RlParams(trainer={**base, **trainer})


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_changed(before: Path, after: Path) -> None:
    a, b = weights(before), weights(after)
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed, "no parameter changed"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def sft_rows(tokenizer) -> list[dict]:
    prompt = rollout_prompt(tokenizer, "Find x if 2x + 5 = 11.")
    prefix = "Step 1: Let x = 3.\n\n"
    intervention = "Step 2: Check the sign before dividing."
    return [
        {"prompt": prompt, "completion": prefix + intervention, "intervention": intervention},
        # starts with blank lines: must not merge with the prompt's last tokens
        {"prompt": prompt, "completion": "\n\nStep 1: Use the quadratic formula instead."},
        {"prompt": prompt, "completion": "Reasoning: a_{n+1} = a_n + d, so"},
        {"prompt": prompt, "completion": "Final: \\frac{5}{4}. Check the sign."},
    ]


# -- SFT ------------------------------------------------------------------------------------------


def test_sft_two_steps_change_weights_and_write_outputs(tmp_path, tiny_model_dir, sft_rows):
    out, live = tmp_path / "sft", tmp_path / "sft_live"
    result = train_sft(
        sft_rows,
        tiny_model_dir,
        sft_params(),
        out_dir=out,
        checkpoints=tmp_path / "ckpt",
        live_dir=live,
    )
    assert result.metrics["trained"] and result.metrics["global_step"] == 2
    assert_changed(tiny_model_dir, out)
    assert AutoTokenizer.from_pretrained(out).eos_token == IM_END  # tokenizer saved alongside
    log = read_curves(live)  # DVCLive's TSV files, one per curve
    assert [r["step"] for r in log] == [1, 2]
    assert all({"loss", "learning_rate"} <= set(r) for r in log)
    assert log == [{k: pytest.approx(v) for k, v in r.items()} for r in result.log]
    assert json.loads((live / "metrics.json").read_text())["step"] == 2
    assert not any((tmp_path / "ckpt").glob("*/checkpoint-*")), "finished runs drop checkpoints"


@pytest.mark.parametrize("append_eos", [False, True])
def test_sft_loss_is_on_the_completion_only(
    tmp_path, tiny_model_dir, tokenizer, sft_rows, append_eos
):
    params = sft_params().model_copy(update={"append_eos": append_eos})
    trainer, counts = build_sft_trainer(sft_rows, tiny_model_dir, params, tmp_path)
    assert counts["examples"] == len(sft_rows)
    # What the model is trained on: a collated batch from the trainer's own data loader.
    batch = next(iter(trainer.get_train_dataloader()))
    eot = IM_END if append_eos else ""
    expected = {r["completion"] + eot for r in sft_rows}
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        loss_ids = [int(t) for t, lab in zip(ids, labels, strict=True) if lab != -100]
        assert loss_ids == [int(lab) for lab in labels if lab != -100]  # labels = the inputs
        assert tokenizer.decode(loss_ids) in expected
    # The whole dataset, not only the first batch.
    for example, row in zip(trainer.train_dataset, sft_rows, strict=True):
        loss_ids = [t for t in example["labels"] if t != -100]
        assert tokenizer.decode(loss_ids) == row["completion"] + eot
        assert (loss_ids[-1] == tokenizer.eos_token_id) is append_eos
        if not append_eos:
            assert IM_END not in tokenizer.decode(loss_ids)
    first = trainer.train_dataset[0]
    assert tokenizer.decode([t for t in first["labels"] if t != -100]).endswith(
        sft_rows[0]["intervention"] + eot
    )


def test_sft_prompt_tokens_equal_the_rollout_prompt_tokens(tmp_path, tiny_model_dir, sft_rows):
    backend = TransformersBackend(str(tiny_model_dir), batch_size=4)
    problems = [{"problem_id": "p1", "problem": "Find x if 2x + 5 = 11.", "answer": "3"}]
    cfg = RolloutsParams(samples_per_problem=2, sampling=SamplingSection(max_new_tokens=8))
    rollouts = run_rollouts(problems, backend, cfg)
    # The exact ids the backend generated from (its own prompt encoding).
    gen_rows = backend._make_rows(
        [GenerationRequest(prompt=rollouts[0]["prompt"], n=1, seed=0)], cfg.sampling
    )
    generated_from = gen_rows[0].prompt_ids
    assert backend.count_tokens(rollouts[0]["prompt"]) == len(generated_from)
    rows = [
        {"prompt": r["prompt"], "completion": c}
        for r in rollouts
        for c in (r["completion"] or "x", "\n\n" + sft_rows[0]["completion"])
    ]
    trainer, _ = build_sft_trainer(rows, tiny_model_dir, sft_params(), tmp_path)
    for example in trainer.train_dataset:
        n_prompt = next(i for i, lab in enumerate(example["labels"]) if lab != -100)
        assert example["input_ids"][:n_prompt] == generated_from
    batch = next(iter(trainer.get_train_dataloader()))
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        n_prompt = int((labels != -100).nonzero()[0])
        assert ids[:n_prompt].tolist() == generated_from


class StopAfterSave(TrainerCallback):
    """Simulates a killed run: raises right after the checkpoint of ``step`` is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"interrupted after step {self.step}")


def test_sft_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir, sft_rows):
    params = sft_params(max_steps=4, save_steps=1)
    kwargs = {"out_dir": tmp_path / "out", "checkpoints": tmp_path / "ckpt"}
    live = tmp_path / "live"
    with pytest.raises(KeyboardInterrupt):
        train_sft(
            sft_rows,
            tiny_model_dir,
            params,
            live_dir=live,
            callbacks=[StopAfterSave(2)],
            **kwargs,
        )
    assert not (tmp_path / "out").exists()
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*/checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2"]
    assert [r["step"] for r in read_curves(live)] == [1, 2]
    # DVC deletes a stage's outputs before rerunning it: the curves must come back whole
    shutil.rmtree(live)

    result = train_sft(sft_rows, tiny_model_dir, params, live_dir=live, **kwargs)
    assert result.metrics["resumed_from"].endswith("checkpoint-2")
    assert result.metrics["resumed_from_step"] == 2
    assert result.metrics["global_step"] == 4
    assert [r["step"] for r in result.log] == [1, 2, 3, 4]  # history restored from checkpoint
    assert [r["step"] for r in read_curves(live)] == [1, 2, 3, 4]
    assert read_curves(live) == [{k: pytest.approx(v) for k, v in r.items()} for r in result.log]
    assert_changed(tiny_model_dir, tmp_path / "out")


def test_sft_on_an_empty_dataset_copies_the_model_untrained(tmp_path, tiny_model_dir):
    live = tmp_path / "live"
    result = train_sft(
        [],
        tiny_model_dir,
        sft_params(),
        out_dir=tmp_path / "out",
        checkpoints=tmp_path / "c",
        live_dir=live,
    )
    assert result.metrics["trained"] is False
    assert read_curves(live) == [] and (live / "plots/metrics").is_dir()  # DVC finds its outputs
    a, b = weights(tiny_model_dir), weights(tmp_path / "out")
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- GRPO -----------------------------------------------------------------------------------------


PROBLEMS = [
    {"problem_id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1), "split": s}
    for i, s in enumerate(["train", "train", "train", "train", "eval"])
]


class RecordingReward:
    """Wraps the real grader reward; records its inputs and outputs per call.

    A random model never answers correctly, so every group would have equal rewards and no
    gradient; a small bonus from the token ids (tests only) makes the advantages non-zero.
    """

    __name__ = "recorded"

    def __init__(self, inner: GraderReward) -> None:
        self.inner = inner
        self.calls: list[dict] = []

    def __call__(self, prompts, completions, completion_ids, answer, **kwargs):
        graded = self.inner(prompts, completions, completion_ids, answer, **kwargs)
        rewards = [g + 0.1 * (sum(ids) % 5) for g, ids in zip(graded, completion_ids, strict=True)]
        self.calls.append(
            {
                "prompts": list(prompts),
                "answers": list(answer),
                "graded": graded,
                "rewards": rewards,
            }
        )
        return rewards


def test_grpo_two_steps_reward_sees_the_answers(tmp_path, tiny_model_dir, tokenizer):
    reward = RecordingReward(GraderReward([tokenizer.eos_token_id, tokenizer.pad_token_id]))
    params = rl_params()
    result = train_rl(
        PROBLEMS,
        tiny_model_dir,
        params,
        out_dir=tmp_path / "rl",
        checkpoints=tmp_path / "ckpt",
        live_dir=tmp_path / "rl_live",
        reward=reward,
    )
    assert result.metrics["trained"] and result.metrics["global_step"] == 2
    assert result.metrics["problems"] == 4
    assert_changed(tiny_model_dir, tmp_path / "rl")

    answers = {p["problem"]: p["answer"] for p in PROBLEMS if p["split"] == "train"}
    prompts = {rollout_prompt(tokenizer, q): a for q, a in answers.items()}
    assert len(reward.calls) == 2
    seen = [
        (p, a)
        for call in reward.calls
        for p, a in zip(call["prompts"], call["answers"], strict=True)
    ]
    assert all(prompts[p] == a for p, a in seen), "each prompt comes with its own answer"
    assert {a for _, a in seen} == set(answers.values())  # one epoch over the 4 train problems
    assert all(g in (0.0, 1.0) for call in reward.calls for g in call["graded"])

    log = read_curves(tmp_path / "rl_live")
    assert [r["step"] for r in log] == [1, 2]
    for row, call in zip(log, reward.calls, strict=True):
        g = params.trainer["num_generations"]
        groups = [call["rewards"][i : i + g] for i in range(0, len(call["rewards"]), g)]
        assert all(
            len(set(call["prompts"][i : i + g])) == 1 for i in range(0, len(call["prompts"]), g)
        )
        frac_equal = sum(len(set(grp)) == 1 for grp in groups) / len(groups)
        assert row["frac_zero_advantage"] == pytest.approx(frac_equal)
        assert row["mean_reward"] == pytest.approx(sum(call["rewards"]) / len(call["rewards"]))
        assert 0 < row["completion_length"] <= params.trainer["max_completion_length"]
        assert 0.0 <= row["truncation_rate"] <= 1.0
        assert row["frac_truncated"] == pytest.approx(row["truncation_rate"])


def test_grpo_prompt_tokens_equal_the_rollout_prompt_tokens(tmp_path, tiny_model_dir):
    trainer, _ = build_rl_trainer(PROBLEMS, tiny_model_dir, rl_params(), tmp_path)
    backend = TransformersBackend(str(tiny_model_dir))
    train = [p for p in PROBLEMS if p["split"] == "train"]
    for row, problem in zip(trainer.train_dataset, train, strict=True):
        assert row["prompt"] == rollout_prompt(backend.tokenizer, problem["problem"])
        assert row["answer"] == problem["answer"]
        ids = trainer.processing_class(text=[row["prompt"]])["input_ids"][0]  # GRPO's encoding
        req = GenerationRequest(prompt=row["prompt"], n=1, seed=0)
        assert ids == backend._make_rows([req], SamplingSection())[0].prompt_ids


def test_grader_reward_is_one_only_for_a_correct_finished_answer():
    reward = GraderReward([0], timeout_s=5.0, workers=1)
    logged: dict[str, float] = {}
    out = reward(
        prompts=["q"] * 4,
        completions=["so \\boxed{4}", "so \\boxed{4}", "so \\boxed{5}", "no box"],
        completion_ids=[[7, 0], [7, 7], [7, 0], [7, 0]],  # the second hit the length limit
        answer=["4"] * 4,
        log_metric=logged.__setitem__,
    )
    assert out == [1.0, 0.0, 0.0, 0.0]
    assert logged == {"grader/correct": 0.25, "grader/no_answer": 0.25, "grader/truncated": 0.25}


# -- params ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, words",
    [
        ({"sft": {"trainer": {"lerning_rate": 1e-5}}}, ["sft.trainer", "lerning_rate"]),
        ({"rl": {"trainer": {"num_generation": 8}}}, ["rl.trainer", "num_generation"]),
        ({"sft": {"trainer": {"output_dir": "x"}}}, ["sft.trainer", "output_dir"]),
        ({"sft": {"trainer": {"completion_only_loss": False}}}, ["completion_only_loss"]),
        ({"sft": {"append_eos": "maybe"}}, ["sft.append_eos"]),
        ({"rl": {"epochs": 3}}, ["rl.epochs"]),
    ],
)
def test_training_params_name_the_bad_key(tmp_path, data, words):
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        validate_all(path)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bad_trainer_value_fails_when_the_config_is_built(tmp_path, tiny_model_dir, sft_rows):
    params = sft_params(lr_scheduler_type="cosine_sometimes")
    with pytest.raises(ConfigError, match="sft.trainer"):
        build_sft_trainer(sft_rows, tiny_model_dir, params, tmp_path)


def test_report_to_keeps_other_loggers_and_drops_a_second_dvclive(
    tmp_path, tiny_model_dir, sft_rows
):
    # The stage's own DVCLive callback is always on; transformers' would add a dvclive/ folder
    # and edit dvc.yaml. Other loggers (checked on the config: none is installed here) pass.
    from trl import SFTConfig

    from intervention_training.training.common import build_trainer_config

    for report_to, expected in (
        (["dvclive", "wandb"], ["wandb"]),
        (["tensorboard"], ["tensorboard"]),
        ("dvclive", []),
    ):
        section = sft_params(report_to=report_to)
        args = build_trainer_config(SFTConfig, section, "sft", output_dir=tmp_path / "o")
        assert args.report_to == expected
    # "all" is every installed integration: dvclive is installed, so it is taken out of it
    from transformers.integrations import get_available_reporting_integrations

    args = build_trainer_config(SFTConfig, sft_params(report_to="all"), "sft", output_dir=tmp_path)
    assert "dvclive" in get_available_reporting_integrations()
    assert args.report_to == [n for n in get_available_reporting_integrations() if n != "dvclive"]
    trainer, _ = build_sft_trainer(
        sft_rows, tiny_model_dir, sft_params(report_to=["dvclive"]), tmp_path / "o"
    )
    assert "DVCLiveCallback" not in {type(c).__name__ for c in trainer.callback_handler.callbacks}


def test_paper_training_settings(tmp_path):
    from intervention_training.training.common import accumulation_steps

    s = validate_all(ROOT / "configs/paper.yaml")
    sft, rl = s["sft"].trainer, s["rl"].trainer
    assert sft["learning_rate"] == 1e-6 and sft["num_train_epochs"] == 4
    assert sft["lr_scheduler_type"] == "cosine_with_min_lr"
    assert sft["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1} and sft["warmup_steps"] == 0.1
    assert sft["max_length"] == 16384 and sft["bf16"] and not s["sft"].append_eos
    # effective batch 64; 8 GPUs (configs/accelerate/multi_gpu_fsdp.yaml) accumulate 8 steps
    assert s["sft"].global_batch_size == 64 and sft["per_device_train_batch_size"] == 1
    assert accumulation_steps(64, sft["per_device_train_batch_size"], 8, "sft") == 8
    assert (rl["num_generations"], rl["learning_rate"], rl["beta"]) == (8, 1e-6, 0.0)
    assert (rl["temperature"], rl["max_steps"], rl["entropy_coef"]) == (0.8, 400, 0.0)
    # PipelineRL's objective: no std scaling, token sum over a constant (TRL's dr_grpo)
    assert (rl["loss_type"], rl["scale_rewards"]) == ("dr_grpo", "none")
    from trl import GRPOConfig

    config = GRPOConfig(output_dir=str(tmp_path / "o"), **{**rl, "bf16": False, "use_cpu": True})
    assert (config.loss_type, config.scale_rewards, config.temperature) == ("dr_grpo", "none", 0.8)
    assert s["rl"].global_batch_size // rl["num_generations"] == 32  # problems per step
    assert accumulation_steps(256, rl["per_device_train_batch_size"], 8, "rl") == 4
    assert rl["use_vllm"] and rl["vllm_mode"] == "colocate"
    for section in (s["sft"], s["rl"]):
        assert (ROOT / "configs/accelerate" / f"{section.accelerate_config}.yaml").exists()
    cpu = validate_all(ROOT / "params.yaml")
    for name in ("sft", "rl"):
        assert (ROOT / "configs/accelerate" / f"{cpu[name].accelerate_config}.yaml").exists()


def test_trainer_field_names_checked_for_training_stages_only(tmp_path):
    from intervention_training.runtime import load_stage_params

    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"sft": {"trainer": {"lerning_rate": 1e-5}}}))
    # a data stage does not import TRL to check trainer fields; the sft stage does and fails
    (grading,) = load_stage_params(path, "grading")
    assert grading.workers >= 1
    with pytest.raises(ConfigError, match="lerning_rate"):
        load_stage_params(path, "sft")
    # reserved keys and types are still checked everywhere
    path.write_text(json.dumps({"sft": {"trainer": {"output_dir": "x"}}}))
    with pytest.raises(ConfigError, match="output_dir"):
        load_stage_params(path, "grading")


def test_data_stage_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from intervention_training.runtime import load_stage_params, setup_logging;"
        "setup_logging(); load_stage_params('params.yaml', 'grading', 'interventions');"
        "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_rl_trains_on_the_problems_artifact_or_on_the_set_rl_problems_names(tmp_path):
    from intervention_training.artifacts import write_artifact
    from intervention_training.config import RlParams
    from intervention_training.training.rl import rl_problem_rows

    ours = [
        {"problem_id": "p/1", "problem": "1+1?", "answer": "2", "reference_solution": "2",
         "source": "p", "split": "train"},
    ]  # fmt: skip
    artifact = tmp_path / "problems.parquet"
    write_artifact(ours, artifact, "problems")
    assert [r["problem_id"] for r in rl_problem_rows(artifact, RlParams())] == ["p/1"]

    # an RL set with no worked solutions (as the authors' InT-RL): the answer stands in
    other = tmp_path / "rl.jsonl"
    other.write_text(
        "".join(
            json.dumps({"problem": f"What is {k} squared?", "answer": str(k * k), "source": "x"})
            + "\n"
            for k in (3, 4, 5)
        )
    )
    params = RlParams(
        problems={
            "source": "file",
            "path": str(other),
            "columns": {"problem": "problem", "answer": "answer", "reference_solution": "answer"},
            "eval_fraction": 0.0,
        }
    )
    rows = rl_problem_rows(artifact, params)
    assert sorted(r["answer"] for r in rows) == ["16", "25", "9"]
    assert all(r["split"] == "train" for r in rows)
    assert not any(r["problem_id"] == "p/1" for r in rows)  # the artifact is not read


def test_curves_start_in_a_git_repo_without_commits(tmp_path, monkeypatch):
    # `git init && dvc init && dvc repro` before the first commit: DVCLive must not stop the stage
    import subprocess
    import sys

    from intervention_training.training.callbacks import _live_class

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    live = _live_class()(dir="live", dvcyaml=None, save_dvc_exp=False, report=None)
    live.step = 3
    live.log_metric("train/loss", 1.5)
    live.make_summary()
    live.end()
    assert read_curves(tmp_path / "live") == [{"step": 3, "loss": 1.5}]
