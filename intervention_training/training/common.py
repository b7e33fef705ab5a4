"""What the SFT and RL stages share: config, checkpoint folder, resume, output, step names.

Contracts:

* :func:`build_trainer_config` turns a validated ``sft``/``rl`` params section into TRL's own
  config object; a bad value fails with :class:`~intervention_training.config.ConfigError`
  naming the section.
* Checkpoints live in ``<checkpoints>/<fingerprint>``, outside the DVC outputs. The fingerprint
  covers the params section, the training data and the starting model, so a rerun of an
  interrupted stage with the same inputs resumes from the last checkpoint, while any change of
  input starts afresh. A finished run deletes its checkpoints unless ``keep_checkpoints``.
* The final model folder is written atomically (``<out>.tmp`` renamed into place) with its
  tokenizer, so the next stage (or :func:`~intervention_training.models.resolve_model`) loads
  it as a plain transformers folder.
* :func:`check_world_size`: a run whose process count is not the one its launch asked for
  (``accelerate launch`` with ``use_cpu`` starts one plain process whatever ``num_processes``
  says; a node that never joined) is an error, never a silent single-process run.
* The per-step curves go through DVCLive (:class:`.callbacks.LiveCurves`) under the names of
  :data:`LOG_KEYS`, written at every logging step: DVC plots them, and a killed run leaves the
  steps done so far.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import replace_dir, temporary_dir_beside, write_json
from ..config import ConfigError, TrainingSection
from ..models import resolve_model

log = logging.getLogger("intervention_training")

#: TRL/transformers log names -> the names in our per-step log (only those present are kept).
LOG_KEYS: dict[str, str] = {
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
    "entropy": "entropy",
    "mean_token_accuracy": "mean_token_accuracy",
    "num_tokens": "num_tokens",
    "step_time": "step_time_s",
    # GRPO (computed by TRL over the gathered rewards of all processes)
    "reward": "mean_reward",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_zero_advantage",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "truncation_rate",
    # our reward function's own status counts (see rl.GraderReward)
    "grader/correct": "frac_correct",
    "grader/no_answer": "frac_no_answer",
    "grader/truncated": "frac_truncated",
}


@dataclass
class TrainingResult:
    """What a training run produced: final metrics and the per-step log rows."""

    metrics: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)


# -- configuration --------------------------------------------------------------------------------


def build_trainer_config(
    config_class: type,
    section: TrainingSection,
    name: str,
    *,
    output_dir: str | Path,
    revision: str | None = None,
    **overrides: Any,
) -> Any:
    """TRL's ``config_class`` from ``section.trainer`` plus what the stage sets itself.

    Defaults the stage supplies unless the section says otherwise: ``report_to="none"``.
    ``revision`` (from the model folder) is added to ``model_init_kwargs``. With
    ``section.global_batch_size`` the gradient accumulation comes from
    :func:`accumulation_steps` and this run's process count.
    """
    kwargs: dict[str, Any] = {"report_to": "none", **section.trainer, **overrides}
    kwargs["report_to"] = without_dvclive(kwargs["report_to"], name)
    if section.global_batch_size is not None:
        per_device = int(kwargs.get("per_device_train_batch_size", 8))  # TRL's default
        kwargs["gradient_accumulation_steps"] = accumulation_steps(
            section.global_batch_size, per_device, launched_world_size(), name
        )
    kwargs["output_dir"] = str(output_dir)
    if revision is not None:
        kwargs["model_init_kwargs"] = {
            "revision": revision,
            **(kwargs.get("model_init_kwargs") or {}),
        }
    try:
        return config_class(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}.trainer: {exc}") from None


def without_dvclive(report_to: Any, name: str) -> Any:
    """``report_to`` less ``dvclive``: the stages always log to DVCLive themselves (in the folder
    dvc.yaml declares); transformers' own DVCLive callback would write a second ``dvclive/``
    folder and edit dvc.yaml. Other integrations (wandb, tensorboard, trackio ...) pass."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "all" in names:  # transformers' "all": every installed integration, dvclive among them
        from transformers.integrations import get_available_reporting_integrations

        names = [n for n in names if n != "all"] + get_available_reporting_integrations()
        names = list(dict.fromkeys(names))
    if "dvclive" not in names:
        return report_to
    log.warning(
        "%s.trainer.report_to: dvclive is always on (the stage's curves folder); dropped", name
    )
    rest = [n for n in names if n != "dvclive"]
    return rest or "none"


def launched_world_size() -> int:
    """The number of training processes the launcher started (1 without a launcher)."""
    names = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    return next((int(os.environ[n]) for n in names if os.environ.get(n)), 1)


def accumulation_steps(global_batch: int, per_device: int, world_size: int, name: str) -> int:
    """Gradient accumulation steps that make ``global_batch`` sequences per optimiser step
    with ``per_device`` sequences per process and ``world_size`` processes; a
    :class:`ConfigError` when it does not divide."""
    per_pass = per_device * world_size
    if global_batch % per_pass:
        raise ConfigError(
            f"{name}.global_batch_size {global_batch} is not a multiple of "
            f"per_device_train_batch_size {per_device} x {world_size} process(es) = {per_pass}; "
            "change one of them so that every optimiser step sees the same number of sequences"
        )
    return global_batch // per_pass


def global_batch(args: Any, world_size: int) -> int:
    """Sequences per optimiser step of a built trainer config over ``world_size`` processes."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size


# -- fingerprints and checkpoints -----------------------------------------------------------------


def hash_path(path: str | Path) -> str:
    """SHA-256 over a file, or over a folder's relative file names and contents (sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path) if f != path else f.name).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint(section: TrainingSection, inputs: Iterable[str | Path], extra: Any = None) -> str:
    """A short key for (params section, input files/folders, extra JSON-able data)."""
    payload = {
        "params": section.model_dump(mode="json"),
        "inputs": [hash_path(p) for p in inputs],
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``folder`` holding a trainer state, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
    ]
    if not found:
        return None
    return str(max(found, key=lambda p: int(p.name.split("-")[-1])))


# -- running and saving ---------------------------------------------------------------------------


def check_world_size(accelerate_config: str | Path | None) -> int:
    """The number of training processes of this run; a :class:`ConfigError` when it is not the
    number the launch asked for.

    The number asked for is ``INT_EXPECTED_WORLD_SIZE`` when ``stages/launch.py`` started the
    run (nodes x processes per node), else the ``num_processes`` of ``accelerate_config``
    (nothing to check without either). Several CPU processes come from torchrun (gloo), GPU
    processes from ``accelerate launch``; both set the launcher's world-size variable, read here
    without initialising accelerate's state (the trainer does that, with its own CPU/GPU
    choice).
    """
    actual = launched_world_size()
    launched = os.environ.get("INT_EXPECTED_WORLD_SIZE", "").strip()
    if launched:
        expected = int(launched)
        origin = f"stages/launch.py asked for {expected} processes (INT_EXPECTED_WORLD_SIZE)"
    elif accelerate_config is not None:
        import yaml

        cfg = yaml.safe_load(Path(accelerate_config).read_text(encoding="utf-8")) or {}
        expected = int(cfg.get("num_processes", 1) or 1)
        origin = f"{accelerate_config}: num_processes is {expected}"
    else:
        return actual
    if actual == expected:
        return actual
    if actual == 1:
        raise ConfigError(
            f"{origin} but this run has 1 process; accelerate fell back to a single process "
            "(with use_cpu it always does, and without the GPUs a multi-GPU file asks for). "
            "Launch the stage script through stages/launch.py (torchrun for CPU files); on GPUs "
            "check that they are visible."
        )
    raise ConfigError(
        f"{origin} but this run has {actual} processes; start the stage through "
        "stages/launch.py, once per node, with the same file and node count on every node"
    )


def is_main_process() -> bool:
    """True in the process that writes outputs (rank 0 under ``accelerate launch``; alone: yes)."""
    return int(os.environ.get("RANK", "0")) == 0


def agreed_checkpoint(trainer: Any, resume: str | None, checkpoint_dir: str | Path) -> str | None:
    """``resume`` once every process has found the same last checkpoint; a
    :class:`ConfigError` otherwise.

    In a multi-node run each node looks in its own view of ``checkpoint_dir``. When that folder
    is node-local rather than shared, node 0 finds the checkpoint it wrote and the others find
    nothing (or an older one); resuming then would mix states or hang, so it is refused.
    """
    if getattr(trainer.accelerator, "num_processes", 1) <= 1:
        return resume
    from accelerate.utils import gather_object

    names = gather_object([Path(resume).name if resume else None])
    if len(set(names)) > 1:
        seen = ", ".join(f"rank {i}: {n or 'none'}" for i, n in enumerate(names))
        raise ConfigError(
            f"the training processes see different last checkpoints in {checkpoint_dir} "
            f"({seen}); the checkpoint folder must be on storage shared by every node"
        )
    return resume


_INDEXED_CPU_REGISTERED = False


def _allow_indexed_cpu_locations(trainer: Any) -> None:
    """Let ``torch.load`` map storages to ``cpu:N``, as the trainer asks when it resumes a
    multi-process CPU run.

    transformers loads ``optimizer.pt`` with ``map_location=args.device`` when there are several
    processes, and on CPU that device is ``cpu:0`` (accelerate's device for MULTI_CPU), a
    location torch's own CPU deserializer does not accept ("don't know how to restore data
    location ... cpu:0"). The storage is already in CPU memory; this keeps it there.
    """
    global _INDEXED_CPU_REGISTERED
    device = getattr(trainer.args, "device", None)
    if _INDEXED_CPU_REGISTERED or getattr(device, "type", None) != "cpu" or device.index is None:
        return
    import torch

    def restore(storage: Any, location: str) -> Any:
        return storage if location.startswith("cpu:") else None

    torch.serialization.register_package(99, lambda _obj: None, restore)
    _INDEXED_CPU_REGISTERED = True


def run_trainer(trainer: Any, checkpoint_dir: str | Path) -> dict[str, Any]:
    """``trainer.train()``, resumed from the last checkpoint in ``checkpoint_dir`` if any (the
    same one on every process, :func:`agreed_checkpoint`).

    Returns ``{"resumed_from": <checkpoint path or None>, "resumed_from_step": int}`` plus the
    ``TrainOutput`` metrics.
    """
    resume = agreed_checkpoint(trainer, last_checkpoint(checkpoint_dir), checkpoint_dir)
    resumed_step = 0
    if resume is not None:
        _allow_indexed_cpu_locations(trainer)
        state = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))
        resumed_step = int(state.get("global_step", 0))
        log.warning("resuming from %s (step %d)", resume, resumed_step)
    output = trainer.train(resume_from_checkpoint=resume)
    return {
        "resumed_from": resume,
        "resumed_from_step": resumed_step,
        "global_step": int(output.global_step),
        **{k: v for k, v in output.metrics.items() if isinstance(v, int | float)},
    }


def save_model(trainer: Any, out_dir: str | Path) -> None:
    """Write the trained model and its tokenizer to ``out_dir`` atomically (all processes call)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")  # the same path on every process
    if trainer.is_world_process_zero():
        temporary_dir_beside(out_dir)  # removes a killed run's leftover at that path
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # gathers sharded weights on every process; writes on main
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(tmp))
        replace_dir(tmp, out_dir)
    trainer.accelerator.wait_for_everyone()


def copy_model_unchanged(model_dir: str | Path, out_dir: str | Path) -> None:
    """Copy a model folder (full weights or a ``model_ref.json``) to ``out_dir`` atomically."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    resolve_model(model_dir)  # fails clearly if it is not a model folder
    if not is_main_process():
        return
    tmp = temporary_dir_beside(out_dir)
    shutil.copytree(model_dir, tmp)
    replace_dir(tmp, out_dir)


def finish_checkpoints(checkpoint_dir: str | Path, keep: bool) -> None:
    """Delete a finished run's checkpoints unless ``keep``."""
    if not keep:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


# -- logs -----------------------------------------------------------------------------------------


def log_rows(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-step records from a trainer's ``log_history`` (training steps only, renamed keys)."""
    rows: dict[int, dict[str, Any]] = {}
    for entry in history:
        if "step" not in entry or "train_runtime" in entry:
            continue
        values = {
            LOG_KEYS[k]: float(v)
            for k, v in entry.items()
            if k in LOG_KEYS and isinstance(v, int | float)
        }
        if values:
            rows.setdefault(int(entry["step"]), {"step": int(entry["step"])}).update(values)
    return [rows[s] for s in sorted(rows)]


def empty_curves(live_dir: str | Path) -> None:
    """The training-curves folder of a stage that trained nothing: DVCLive's layout (an empty
    ``plots/metrics`` folder and a ``metrics.json`` of ``{}``) so that DVC finds its outputs;
    main process only."""
    if is_main_process():
        live_dir = Path(live_dir)
        (live_dir / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
        write_json(live_dir / "metrics.json", {})


def write_stage_metrics(
    metrics: dict[str, Any], metrics_path: str | Path, world_size: int, keys: Sequence[str]
) -> dict[str, Any] | None:
    """End of a training stage on every process: the main process records ``world_size`` (when
    the trainer did not), writes ``metrics`` less :data:`NOT_WRITTEN` and returns the ``keys``
    present as the summary; the others return None."""
    if not is_main_process():
        return None
    metrics.setdefault("world_size", world_size)
    write_json(metrics_path, {k: v for k, v in metrics.items() if k not in NOT_WRITTEN})
    return {k: metrics[k] for k in keys if k in metrics}


#: Kept out of metrics/{sft,rl}.json so that `dvc metrics show` and `dvc exp show` stay narrow:
#: the checkpoint's path (the log names it; ``resumed_from_step`` is written) and two rates
#: that ``train_runtime`` and ``global_step`` already give.
NOT_WRITTEN = frozenset({"resumed_from", "train_samples_per_second", "train_steps_per_second"})


def summarise(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """``{key: {"first", "last", "mean"}}`` over the logged steps, for the final metrics."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = {
                "first": values[0],
                "last": values[-1],
                "mean": sum(values) / len(values),
            }
    return out
