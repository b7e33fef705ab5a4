"""DVC stage `interventions`: parse, validate, leak-check and deduplicate the proposals."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.filters import build_interventions
from intervention_training.runtime import (
    load_stage_params,
    log,
    rows_of,
    stage_entry,
    summary_line,
)


@stage_entry("interventions")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    proposals: Path = typer.Option(..., help="proposals artifact"),
    out: Path = typer.Option(..., help="interventions artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, grading = load_stage_params(params, "interventions", "grading")
    answers = {p["problem_id"]: p["answer"] for p in rows_of(read_artifact(problems, "problems"))}
    rows, summary = build_interventions(
        rows_of(read_artifact(proposals, "proposals")),
        answers,
        cfg,
        leak_timeout_s=grading.timeout_s,
    )
    write_artifact(
        rows, out, "interventions", provenance={"params": cfg.model_dump()}, summary=summary
    )
    log.info(summary_line("interventions", summary))


if __name__ == "__main__":
    typer.run(main)
