"""DVC stage `grades`: verification labels for every rollout and the pass rate per problem."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.labels import grade_rollouts
from intervention_training.runtime import (
    load_stage_params,
    log,
    rows_of,
    stage_entry,
    summary_line,
)


@stage_entry("grades")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    out: Path = typer.Option(..., help="grades artifact to write"),
    pass_rates: Path = typer.Option(..., help="pass-rates artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "grading")
    answers = {p["problem_id"]: p["answer"] for p in rows_of(read_artifact(problems, "problems"))}
    rows, rates, summary = grade_rollouts(
        rows_of(read_artifact(rollouts, "rollouts")), answers, cfg
    )
    provenance = {"params": cfg.model_dump()}
    write_artifact(rows, out, "grades", provenance=provenance, summary=summary)
    write_artifact(rates, pass_rates, "pass_rates", provenance=provenance, summary=summary)
    log.info(summary_line("grades", summary))


if __name__ == "__main__":
    typer.run(main)
