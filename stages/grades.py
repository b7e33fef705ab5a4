"""DVC stage `grades`: verification labels for every rollout and the pass rate per problem."""

from pathlib import Path

import typer

from intervention_training.grades import write_grades
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("grades")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    out: Path = typer.Option(..., help="grades artifact to write"),
    pass_rates: Path = typer.Option(..., help="pass-rates artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "grading")
    summary = write_grades(problems, rollouts, out, pass_rates, cfg)
    log.info(summary_line("grades", summary))


if __name__ == "__main__":
    typer.run(main)
