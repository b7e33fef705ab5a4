"""SFT on the intervention data with TRL's SFTTrainer (full fine-tune, loss on the completion).

Tokenization is done here, not by TRL, for two reasons (TRL 1.16 ``SFTTrainer``, for plain-string
prompt-completion rows, appends ``tokenizer.eos_token`` to every completion unconditionally and
tokenizes ``prompt + completion`` jointly with ``add_special_tokens=True``):

* **No end-of-turn token after the intervention** unless ``sft.append_eos`` is set: the paper
  trains the model on "own prefix + fix" without teaching it to stop after the fix.
* **The prompt tokens are the rollout's prompt tokens**: ``tokenizer(prompt,
  add_special_tokens=False)``, exactly as both generation backends encode a prompt. The
  completion is encoded the same way and appended, as the model's own tokens followed the
  prompt when it generated the attempt.

Each example is ``{"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids)
+ completion_ids}``. TRL treats a dataset with ``input_ids`` as already processed: it adds no eos,
keeps our labels (only completion tokens carry loss), truncates to ``max_length`` and drops
examples whose loss tokens were all cut off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..artifacts import read_artifact
from ..config import SftParams
from ..generation.base import encode_prompt
from ..models import resolve_model
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

IGNORE_INDEX = -100


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as the generation backends encode prompts (no special tokens)."""
    return encode_prompt(tokenizer, text)


def tokenize_sft_rows(
    rows: Sequence[dict[str, Any]], tokenizer: Any, *, append_eos: bool = False
) -> tuple[list[dict[str, list[int]]], int]:
    """Training examples (``input_ids``, ``labels``) from SFT rows; also the number skipped.

    ``append_eos`` adds ``tokenizer.eos_token_id`` after the completion unless the completion
    already ends with it (when ``sft_data.end_of_turn`` put the end-of-turn text in). Rows whose
    completion encodes to no tokens carry no loss and are skipped.
    """
    eos_id = tokenizer.eos_token_id
    if append_eos and eos_id is None:
        raise ValueError("sft.append_eos is set but the tokenizer has no eos token")
    examples, skipped = [], 0
    for row in rows:
        prompt_ids = encode(tokenizer, row["prompt"])
        completion_ids = encode(tokenizer, row["completion"])
        if append_eos and (not completion_ids or completion_ids[-1] != eos_id):
            completion_ids.append(eos_id)
        if not completion_ids:
            skipped += 1
            continue
        examples.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
            }
        )
    return examples, skipped


def build_sft_trainer(
    rows: Sequence[dict[str, Any]],
    model_dir: str | Path,
    params: SftParams,
    output_dir: str | Path,
    *,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, dict[str, Any]]:
    """An ``SFTTrainer`` for ``rows`` starting from the model folder ``model_dir``.

    Returns the trainer and counts (``examples``, ``skipped_empty``). ``output_dir`` is where
    the trainer writes its checkpoints. Raises ``ConfigError`` for a bad trainer value and
    ``ValueError`` when no row is left to train on.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    name, revision = resolve_model(model_dir)
    config = build_trainer_config(
        SFTConfig, params, "sft", output_dir=output_dir, revision=revision
    )
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    examples, skipped = tokenize_sft_rows(rows, tokenizer, append_eos=params.append_eos)
    if not examples:
        raise ValueError("no SFT example has a non-empty completion")
    trainer = SFTTrainer(
        model=name,
        args=config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    return trainer, {"examples": len(examples), "skipped_empty": skipped}


def train_sft(
    rows: Sequence[dict[str, Any]],
    model_dir: str | Path,
    params: SftParams,
    *,
    out_dir: str | Path,
    checkpoints: str | Path,
    live_dir: str | Path | None = None,
    data_path: str | Path | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainingResult:
    """Fine-tune the model in ``model_dir`` on ``rows``; write the result to ``out_dir``.

    Checkpoints go to ``<checkpoints>/<fingerprint>`` (params, ``data_path`` or the rows, and
    the model folder) and a rerun resumes from the newest. ``live_dir`` receives the DVCLive
    training curves. With no rows the model is copied unchanged and the metrics say
    ``trained: false`` (a loud warning, not an error, so the CPU default pipeline completes).
    """
    from .callbacks import LiveCurves

    if not rows:
        log.warning(
            "[sft] WARNING: the SFT dataset is empty; %s is a copy of the base model, untrained",
            out_dir,
        )
        copy_model_unchanged(model_dir, out_dir)
        if live_dir is not None:
            empty_curves(live_dir)
        return TrainingResult({"trained": False, "rows": 0, "reason": "empty SFT dataset"})
    key = fingerprint(
        params,
        [model_dir] + ([data_path] if data_path is not None else []),
        extra=None if data_path is not None else [dict(r) for r in rows],
    )
    ckpt_dir = Path(checkpoints) / key
    extra = [LiveCurves(live_dir)] if live_dir is not None else []
    trainer, counts = build_sft_trainer(
        rows, model_dir, params, ckpt_dir, callbacks=[*extra, *callbacks]
    )
    run = run_trainer(trainer, ckpt_dir)
    save_model(trainer, out_dir)
    rows_log = log_rows(trainer.state.log_history)
    finish_checkpoints(ckpt_dir, params.keep_checkpoints or not trainer.is_world_process_zero())
    metrics = {
        "trained": True,
        "rows": len(rows),
        **counts,
        **run,
        "append_eos": params.append_eos,
        "world_size": trainer.accelerator.num_processes,
        "global_batch_size": global_batch(trainer.args, trainer.accelerator.num_processes),
        "steps": summarise(rows_log, ["loss", "learning_rate"]),
    }
    return TrainingResult(metrics, rows_log)


def write_sft_model(
    sft_data_path: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    live_dir: str | Path,
    checkpoints: str | Path,
    params: SftParams,
    *,
    accelerate_config: str | Path | None = None,
) -> dict[str, Any] | None:
    """The ``sft`` stage: train on the SFT artifact, write the model, metrics and DVCLive curves.

    Every process of a multi-process launch calls it; the main process writes the metrics and
    returns the summary, the others return None. ``accelerate_config`` (the file the stage was
    launched with) is checked against the processes actually running
    (:func:`~.common.check_world_size`).
    """
    world_size = check_world_size(accelerate_config)
    rows = read_artifact(sft_data_path, "sft").to_pylist()
    result = train_sft(
        rows,
        model_dir,
        params,
        out_dir=out_dir,
        checkpoints=checkpoints,
        live_dir=live_dir,
        data_path=sft_data_path,
    )
    keys = ("trained", "rows", "examples", "global_step", "resumed_from_step", "world_size")
    summary = write_stage_metrics(result.metrics, metrics_path, world_size, keys)
    if summary is None:
        return None
    m = result.metrics
    if "loss" in m.get("steps", {}):
        summary["loss"] = {k: round(v, 4) for k, v in m["steps"]["loss"].items()}
    return summary
