"""DVC stage `interventions`: parse, validate, leak-check and deduplicate the proposals."""

from pathlib import Path

import typer

from intervention_training.interventions import write_interventions
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("interventions")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    proposals: Path = typer.Option(..., help="proposals artifact"),
    out: Path = typer.Option(..., help="interventions artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, grading = load_stage_params(params, "interventions", "grading")
    summary = write_interventions(problems, proposals, out, cfg, leak_timeout_s=grading.timeout_s)
    log.info(summary_line("interventions", summary))


if __name__ == "__main__":
    typer.run(main)
