"""DVC stage `sft`: TRL SFTTrainer on the SFT dataset, from the base model (full fine-tune).

Launched by ``stages/launch.py`` (see dvc.yaml); only the main process writes outputs.
"""

from pathlib import Path

import typer

from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line
from intervention_training.training.sft import write_sft_model


@stage_entry("sft")
def main(
    sft_data: Path = typer.Option(..., help="SFT dataset artifact"),
    model: Path = typer.Option(..., help="starting model folder"),
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
    (cfg,) = load_stage_params(params, "sft")
    summary = write_sft_model(
        sft_data,
        model,
        out,
        metrics,
        live,
        checkpoints,
        cfg,
        accelerate_config=accelerate_config,
    )
    if summary is not None:  # the main process
        log.info(summary_line("sft", summary))


if __name__ == "__main__":
    typer.run(main)
