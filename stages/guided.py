"""DVC stage `guided`: continue from prefix + intervention, grade, select interventions."""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.guided import write_guided
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("guided")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    interventions: Path = typer.Option(..., help="interventions artifact"),
    model: Path = typer.Option(..., help="base-model folder"),
    continuations_out: Path = typer.Option(..., help="continuations artifact to write"),
    out: Path = typer.Option(..., help="selection artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, grading, backend_cfg = load_stage_params(params, "guided", "grading", "backend")
    # the model loads on first use: switched off, the stage never loads it
    with open_backend(model, backend_cfg, work_dir) as backend:
        summary = write_guided(
            problems, rollouts, interventions, continuations_out, out, cfg, grading, backend
        )
    log.info(summary_line("guided", summary))


if __name__ == "__main__":
    typer.run(main)
