"""DVC stage `rollouts`: K attempts per training problem from the base model."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.rollouts import run_rollouts
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
    train = [p for p in rows_of(read_artifact(problems, "problems")) if p["split"] == "train"]
    backend = open_backend(model, backend_cfg, work_dir)
    with progress(len(train), "rollouts") as tick:
        rows = run_rollouts(train, backend, cfg, progress=tick)
    summary = {
        "problems": len(train),
        "attempts": len(rows),
        "length_limited": sum(r["finish_reason"] == "length" for r in rows),
        "tokens": sum(r["n_tokens"] for r in rows),
    }
    provenance = {"backend": backend.describe(), "params": cfg.model_dump()}
    write_artifact(rows, out, "rollouts", provenance=provenance, summary=summary)
    finish_backend(backend)
    log.info(summary_line("rollouts", summary))


if __name__ == "__main__":
    typer.run(main)
