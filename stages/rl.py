"""DVC stage `rl`: TRL GRPOTrainer on the training problems, from the SFT model.

The prompt is the rollouts' prompt (``rollouts.answer_instruction`` included); the reward is
the grader (``grading``). Launched by ``stages/launch.py`` (see dvc.yaml); only the main
process writes outputs.
"""

from pathlib import Path

import typer

from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line
from intervention_training.training.rl import write_rl_model


@stage_entry("rl")
def main(
    problems: Path = typer.Option(..., help="problems artifact (split == train is used)"),
    model: Path = typer.Option(..., help="starting model folder (the SFT model)"),
    out: Path = typer.Option(..., help="trained model folder to write"),
    metrics: Path = typer.Option(..., help="final metrics (JSON) to write"),
    live: Path = typer.Option(
        ..., help="DVCLive folder for the per-step training curves (dvc.yaml: plots)"
    ),
    checkpoints: Path = typer.Option(..., help="folder for resumable checkpoints (not an output)"),
    accelerate_config: Path = typer.Option(
        None, help="the accelerate file the stage is launched with (its process count is checked)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, rollouts_cfg, grading = load_stage_params(params, "rl", "rollouts", "grading")
    summary = write_rl_model(
        problems,
        model,
        out,
        metrics,
        live,
        checkpoints,
        cfg,
        answer_instruction=rollouts_cfg.answer_instruction,
        grading=grading,
        accelerate_config=accelerate_config,
    )
    if summary is not None:  # the main process
        log.info(summary_line("rl", summary))


if __name__ == "__main__":
    typer.run(main)
