"""DVC stage `interventions`: parse, validate, leak-check and deduplicate the proposals."""

from pathlib import Path

import typer

from intervention_training.filters import write_interventions
from intervention_training.problems import read_answers
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("interventions")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    proposals: Path = typer.Option(..., help="proposals artifact"),
    out: Path = typer.Option(..., help="interventions artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, grading = load_stage_params(params, "interventions", "grading")
    summary = write_interventions(
        proposals,
        read_answers(problems),
        cfg,
        out,
        leak_timeout_s=grading.timeout_s,
        provenance={"params": cfg.model_dump()},
    )
    log.info(summary_line("interventions", summary))


if __name__ == "__main__":
    typer.run(main)
