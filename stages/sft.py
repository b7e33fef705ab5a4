"""DVC stage `sft`: TRL SFTTrainer on the SFT dataset, from the base model (full fine-tune).

Launched through ``accelerate launch`` (see dvc.yaml); only the main process writes outputs.
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
from intervention_training.training.sft import train_sft


@stage_entry("sft")
def main(
    sft_data: Path = typer.Option(..., help="SFT dataset artifact"),
    model: Path = typer.Option(..., help="starting model folder"),
    out: Path = typer.Option(..., help="trained model folder to write"),
    metrics: Path = typer.Option(..., help="final metrics (JSON) to write"),
    log_file: Path = typer.Option(..., "--log", help="per-step training log (JSON) to write"),
    checkpoints: Path = typer.Option(..., help="folder for resumable checkpoints (not an output)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "sft")
    rows = rows_of(read_artifact(sft_data, "sft"))
    result = train_sft(
        rows,
        model,
        cfg,
        out_dir=out,
        checkpoints=checkpoints,
        log_path=log_file,
        data_path=sft_data,
    )
    if is_main_process():
        write_json(metrics, result.metrics)
        m = result.metrics
        keys = ("trained", "rows", "examples", "global_step", "resumed_from_step")
        summary = {k: m[k] for k in keys if k in m}
        if "loss" in m.get("steps", {}):
            summary["loss"] = {k: round(v, 4) for k, v in m["steps"]["loss"].items()}
        log.info(summary_line("sft", summary))


if __name__ == "__main__":
    typer.run(main)
