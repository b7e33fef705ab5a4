"""GRPO on the training problems with TRL's GRPOTrainer; the reward is the project's grader.

Prompts are the rollouts' prompts: the problem as the only user message, rendered with the
model's own chat template (:func:`~intervention_training.prompts.rollout_prompt`), passed to
TRL as plain strings. Reward: 1.0 when :func:`~intervention_training.grading.grade_many` says
``"correct"``, else 0.0; a completion that hit ``max_completion_length`` without an end token is
graded with ``finish_reason="length"`` (status ``truncated``, reward 0), as in the grades stage.

Logged per step (TRL's own metrics over all processes, renamed in the log, see
:data:`.common.LOG_KEYS`): mean reward, the fraction of groups whose rewards are all equal
(zero advantage, nothing learned from them), mean completion length, the fraction of
completions cut at ``max_completion_length``; and the grader's status fractions.

Generation through a vLLM server (TRL's server mode, ``rl.trainer.use_vllm: true`` and
``vllm_mode: server``; the multi-node layout of ``configs/rl_server_mode.yaml`` and
``configs/cluster/rl.sbatch``): the server's address changes from job to job, so it is not a
parameter. ``INT_VLLM_SERVER_URL`` (``http://host:port``) sets TRL's ``vllm_server_base_url``
for this run (:func:`vllm_server_overrides`) without entering the params, the DVC stage hash or
the checkpoint fingerprint: a requeued job whose server lands on another node resumes.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import read_artifact
from ..config import GradingParams, RlParams
from ..generation.base import encode_prompt
from ..grading import DEFAULT_TIMEOUT_S, grade_many
from ..models import resolve_model
from ..prompts import rollout_prompt
from .common import (
    TrainingResult,
    build_trainer_config,
    check_world_size,
    copy_model_unchanged,
    empty_curves,
    fingerprint,
    finish_checkpoints,
    global_batch,
    log_rows,
    run_trainer,
    save_model,
    summarise,
    write_stage_metrics,
)

log = logging.getLogger("intervention_training")

RL_LOG_SUMMARY = ("mean_reward", "frac_zero_advantage", "completion_length", "truncation_rate")
#: the vLLM server of this job, for TRL's server mode (see the module docstring)
VLLM_SERVER_ENV = "INT_VLLM_SERVER_URL"


def vllm_server_overrides(params: RlParams, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GRPOConfig fields that point server-mode generation at ``$INT_VLLM_SERVER_URL``.

    Empty when the variable is unset (TRL's ``vllm_server_host``/``vllm_server_port`` or
    ``vllm_server_base_url`` from the params apply). Raises ``ConfigError`` when it is set but
    the trainer does not generate through a server, or is not an ``http(s)://host:port`` URL.
    """
    from urllib.parse import urlparse

    from ..config import ConfigError

    env = os.environ if env is None else env
    url = env.get(VLLM_SERVER_ENV, "").strip()
    if not url:
        return {}
    trainer = params.trainer
    if not (trainer.get("use_vllm") and trainer.get("vllm_mode") == "server"):
        raise ConfigError(
            f"{VLLM_SERVER_ENV} is set ({url}) but rl.trainer does not generate through a vLLM "
            "server (use_vllm: true and vllm_mode: server)"
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{VLLM_SERVER_ENV}={url!r} is not an http://host:port URL")
    return {"vllm_server_base_url": url}


def rl_problem_rows(problems_path: str | Path, params: RlParams) -> list[dict[str, Any]]:
    """The problems RL trains on (their ``split == "train"`` rows are used): the problems
    artifact, or the set ``params.problems`` names, loaded by the problems stage's loader (the
    same column mapping, cleaning and gradable-answer check)."""
    if params.problems is None:
        return read_artifact(problems_path, "problems").to_pylist()
    from ..grading import reference_problem
    from ..problems import load_problems

    result = load_problems(params.problems, reference_check=reference_problem)
    log.info("[rl] problems from rl.problems: %s", result.summary())
    return result.rows


def rl_rows(
    problems: Sequence[dict[str, Any]], tokenizer: Any, answer_instruction: str = ""
) -> list[dict[str, str]]:
    """Dataset rows (``prompt``, ``answer``, ``problem_id``) for the ``train`` problems."""
    return [
        {
            "prompt": rollout_prompt(tokenizer, p["problem"], answer_instruction),
            "answer": p["answer"],
            "problem_id": p["problem_id"],
        }
        for p in problems
        if p["split"] == "train"
    ]


class GraderReward:
    """TRL reward function: 1.0 for a correct answer, 0.0 otherwise (see module docstring).

    Called by GRPOTrainer with ``prompts``, ``completions`` (strings), ``completion_ids`` and the
    dataset columns (``answer``...) as keyword arguments. ``end_ids`` are the token ids that end
    a completion (eos and pad); one that ends otherwise was cut at the length limit.
    """

    __name__ = "correct"

    def __init__(
        self,
        end_ids: Sequence[int],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        workers: int | None = None,
    ) -> None:
        self.end_ids = {int(i) for i in end_ids}
        self.timeout_s = timeout_s
        self.workers = workers

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        completion_ids: Sequence[Sequence[int]],
        answer: Sequence[str],
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        items = []
        for text, ids, ref in zip(completions, completion_ids, answer, strict=True):
            ended = len(ids) > 0 and int(ids[-1]) in self.end_ids
            items.append((text, ref, "stop" if ended else "length"))
        grades = grade_many(items, timeout_s=self.timeout_s, workers=self.workers)
        if log_metric is not None and grades:
            counts = Counter(g.status for g in grades)
            for status in ("correct", "no_answer", "truncated"):
                log_metric(f"grader/{status}", counts[status] / len(grades))
        return [1.0 if g.status == "correct" else 0.0 for g in grades]


def _end_ids(tokenizer: Any, model_dir: str | Path) -> list[int]:
    from transformers import GenerationConfig

    ids: list[int] = []
    name, revision = resolve_model(model_dir)
    try:
        eos = GenerationConfig.from_pretrained(name, revision=revision).eos_token_id
    except OSError:
        eos = None
    for value in (eos, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if value is None:
            continue
        ids.extend(value if isinstance(value, list) else [value])
    return sorted(set(ids))


def _check_prompt_tokens(tokenizer: Any, prompt: str) -> None:
    # GRPOTrainer tokenizes string prompts with the tokenizer's default special tokens; the
    # rollouts used add_special_tokens=False. They agree unless the tokenizer adds a BOS.
    plain = encode_prompt(tokenizer, prompt)
    if list(tokenizer(prompt)["input_ids"]) != list(plain):
        log.warning(
            "[rl] WARNING: this tokenizer adds special tokens to a rendered prompt; GRPO sees "
            "prompt tokens that differ from the rollouts' (e.g. a doubled BOS)"
        )


def build_rl_trainer(
    problems: Sequence[dict[str, Any]],
    model_dir: str | Path,
    params: RlParams,
    output_dir: str | Path,
    *,
    answer_instruction: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    reward: Callable[..., list[float]] | None = None,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, dict[str, Any]]:
    """A ``GRPOTrainer`` on the ``train`` problems, starting from the model in ``model_dir``.

    ``reward`` replaces the grader reward (tests wrap it to observe calls). Returns the trainer
    and counts (``problems``). Raises ``ConfigError`` for a bad trainer value, ``ValueError``
    when there is no training problem.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    name, revision = resolve_model(model_dir)
    server = vllm_server_overrides(params)
    if server:
        log.info("[rl] generating through the vLLM server at %s", server["vllm_server_base_url"])
    config = build_trainer_config(
        GRPOConfig, params, "rl", output_dir=output_dir, revision=revision, **server
    )
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    rows = rl_rows(problems, tokenizer, answer_instruction)
    if not rows:
        raise ValueError("no training problems (split == 'train')")
    _check_prompt_tokens(tokenizer, rows[0]["prompt"])
    if reward is None:
        reward = GraderReward(_end_ids(tokenizer, model_dir), timeout_s=timeout_s, workers=workers)
    trainer = GRPOTrainer(
        model=name,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    return trainer, {"problems": len(rows)}


def train_rl(
    problems: Sequence[dict[str, Any]],
    model_dir: str | Path,
    params: RlParams,
    *,
    out_dir: str | Path,
    checkpoints: str | Path,
    answer_instruction: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    live_dir: str | Path | None = None,
    reward: Callable[..., list[float]] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainingResult:
    """GRPO from the model in ``model_dir``; the trained model goes to ``out_dir``.

    Checkpoints and resume as for SFT (:func:`.sft.train_sft`). With no training problem the
    model is copied unchanged and the metrics say ``trained: false``.
    """
    from .callbacks import LiveCurves

    train = [p for p in problems if p["split"] == "train"]
    if not train:
        log.warning("[rl] WARNING: no training problems; %s is an untrained copy", out_dir)
        copy_model_unchanged(model_dir, out_dir)
        if live_dir is not None:
            empty_curves(live_dir)
        return TrainingResult({"trained": False, "problems": 0, "reason": "no training problems"})
    key = fingerprint(
        params,
        [model_dir],
        extra={
            "problems": [dict(p) for p in train],
            "answer_instruction": answer_instruction,
            "timeout_s": timeout_s,
        },
    )
    ckpt_dir = Path(checkpoints) / key
    extra = [LiveCurves(live_dir)] if live_dir is not None else []
    trainer, counts = build_rl_trainer(
        train,
        model_dir,
        params,
        ckpt_dir,
        answer_instruction=answer_instruction,
        timeout_s=timeout_s,
        workers=workers,
        reward=reward,
        callbacks=[*extra, *callbacks],
    )
    run = run_trainer(trainer, ckpt_dir)
    save_model(trainer, out_dir)
    rows_log = log_rows(trainer.state.log_history)
    finish_checkpoints(ckpt_dir, params.keep_checkpoints or not trainer.is_world_process_zero())
    metrics = {
        "trained": True,
        **counts,
        **run,
        "world_size": trainer.accelerator.num_processes,
        "global_batch_size": global_batch(trainer.args, trainer.accelerator.num_processes),
        "steps": summarise(rows_log, RL_LOG_SUMMARY),
    }
    return TrainingResult(metrics, rows_log)


def write_rl_model(
    problems_path: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    live_dir: str | Path,
    checkpoints: str | Path,
    params: RlParams,
    *,
    answer_instruction: str = "",
    grading: GradingParams | None = None,
    accelerate_config: str | Path | None = None,
) -> dict[str, Any] | None:
    """The ``rl`` stage: GRPO on the training problems, write the model, metrics and DVCLive curves.

    The prompt carries ``answer_instruction`` (``rollouts.answer_instruction``) and the reward
    grades with ``grading`` (its time limit and workers). Every process of a launch calls it;
    the main process writes the metrics and returns the summary, the others return None.
    ``accelerate_config`` is checked as for SFT (:func:`~.common.check_world_size`).
    """
    world_size = check_world_size(accelerate_config)
    grading = grading or GradingParams()
    result = train_rl(
        rl_problem_rows(problems_path, params),
        model_dir,
        params,
        out_dir=out_dir,
        checkpoints=checkpoints,
        answer_instruction=answer_instruction,
        timeout_s=grading.timeout_s,
        workers=grading.workers,
        live_dir=live_dir,
    )
    keys = ("trained", "problems", "global_step", "world_size")
    summary = write_stage_metrics(result.metrics, metrics_path, world_size, keys)
    if summary is None:
        return None
    for key, value in result.metrics.get("steps", {}).items():
        summary[f"mean_{key}"] = round(value["mean"], 4)
    return summary
