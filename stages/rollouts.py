"""DVC stage `rollouts`: K attempts per training problem from the base model."""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.rollouts import write_rollouts
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("rollouts")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    model: Path = typer.Option(..., help="base-model folder"),
    out: Path = typer.Option(..., help="rollouts artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, backend_cfg = load_stage_params(params, "rollouts", "backend")
    with open_backend(model, backend_cfg, work_dir) as backend:
        summary = write_rollouts(problems, out, cfg, backend)
    log.info(summary_line("rollouts", summary))


if __name__ == "__main__":
    typer.run(main)
