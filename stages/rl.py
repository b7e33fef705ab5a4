"""DVC stage `rl`: TRL GRPOTrainer on the training problems, from the SFT model.

The prompt is the rollouts' prompt (``rollouts.answer_instruction`` included); the reward is
the grader (``grading.timeout_s``). Launched through ``accelerate launch`` (see dvc.yaml); only
the main process writes outputs.
"""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_json
from intervention_training.runtime import (
    load_stage_params,
    log,
    rows_of,
    stage_entry,
    summary_line,
)
from intervention_training.training.common import is_main_process
from intervention_training.training.rl import train_rl


@stage_entry("rl")
def main(
    problems: Path = typer.Option(..., help="problems artifact (split == train is used)"),
    model: Path = typer.Option(..., help="starting model folder (the SFT model)"),
    out: Path = typer.Option(..., help="trained model folder to write"),
    metrics: Path = typer.Option(..., help="final metrics (JSON) to write"),
    log_file: Path = typer.Option(..., "--log", help="per-step training log (JSON) to write"),
    checkpoints: Path = typer.Option(..., help="folder for resumable checkpoints (not an output)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, rollouts_cfg, grading_cfg = load_stage_params(params, "rl", "rollouts", "grading")
    result = train_rl(
        rows_of(read_artifact(problems, "problems")),
        model,
        cfg,
        out_dir=out,
        checkpoints=checkpoints,
        answer_instruction=rollouts_cfg.answer_instruction,
        timeout_s=grading_cfg.timeout_s,
        workers=grading_cfg.workers,
        log_path=log_file,
    )
    if is_main_process():
        write_json(metrics, result.metrics)
        m = result.metrics
        summary = {k: m[k] for k in ("trained", "problems", "global_step") if k in m}
        for key, value in m.get("steps", {}).items():
            summary[f"mean_{key}"] = round(value["mean"], 4)
        log.info(summary_line("rl", summary))


if __name__ == "__main__":
    typer.run(main)
