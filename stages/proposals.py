"""DVC stage `proposals`: two-turn self-verification of every failed attempt."""

from pathlib import Path

import typer

from intervention_training.artifacts import iter_artifact, read_artifact, write_artifact
from intervention_training.proposals import run_proposals
from intervention_training.rollouts import read_rollouts
from intervention_training.runtime import (
    finish_backend,
    load_stage_params,
    log,
    open_backend,
    progress,
    rows_of,
    stage_entry,
    summary_line,
)


@stage_entry("proposals")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    grades: Path = typer.Option(..., help="grades artifact"),
    pass_rates: Path = typer.Option(..., help="pass-rates artifact"),
    model: Path = typer.Option(..., help="base-model folder"),
    out: Path = typer.Option(..., help="proposals artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, backend_cfg = load_stage_params(params, "proposals", "backend")
    by_problem = {p["problem_id"]: p for p in rows_of(read_artifact(problems, "problems"))}
    selected = {
        r["problem_id"] for r in rows_of(read_artifact(pass_rates, "pass_rates")) if r["selected"]
    }
    failed = {
        g["rollout_id"]
        for batch in iter_artifact(grades, "grades", columns=("rollout_id", "problem_id", "status"))
        for g in batch
        if g["status"] in cfg.attempt_statuses and g["problem_id"] in selected
    }
    attempts = list(read_rollouts(rollouts, failed).values())
    backend = open_backend(model, backend_cfg, work_dir)
    with progress(len(attempts), "proposals") as tick:
        rows = run_proposals(by_problem, attempts, backend, cfg, progress=tick)
    summary = {
        "failed_attempts": len(attempts),
        "proposals": len(rows),
        "generated": sum(r["status"] == "generated" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
    }
    provenance = {"backend": backend.describe(), "params": cfg.model_dump()}
    write_artifact(rows, out, "proposals", provenance=provenance, summary=summary)
    finish_backend(backend)
    log.info(summary_line("proposals", summary))


if __name__ == "__main__":
    typer.run(main)
