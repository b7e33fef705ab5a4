"""DVC stage `continuation_sources`: the paper's Table 1, continuation sources on hard problems."""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.continuation_sources import write_continuation_sources
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("continuation_sources")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    pass_rates: Path = typer.Option(..., help="pass-rates artifact (hard: no correct attempt)"),
    interventions: Path = typer.Option(..., help="interventions artifact"),
    model: Path = typer.Option(..., help="base-model folder (the policy)"),
    out: Path = typer.Option(..., help="continuation-sources artifact to write"),
    metrics: Path = typer.Option(..., help="metrics file to write (JSON)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, grading, proposals, backend_cfg = load_stage_params(
        params, "continuation_sources", "grading", "proposals", "backend"
    )
    # the policy continues every source; proposals.model only says who wrote the interventions
    with open_backend(model, backend_cfg, work_dir) as backend:
        summary = write_continuation_sources(
            problems,
            rollouts,
            pass_rates,
            interventions,
            out,
            metrics,
            cfg,
            grading,
            backend,
            proposer=proposals.model,
        )
    log.info(summary_line("continuation_sources", summary))


if __name__ == "__main__":
    typer.run(main)
