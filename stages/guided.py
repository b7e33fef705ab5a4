"""DVC stage `guided`: continue from prefix + intervention, grade, select interventions."""

from pathlib import Path

import typer

from intervention_training.artifacts import write_artifact
from intervention_training.guided import (
    kept_interventions,
    run_guided,
    write_unchecked_selection,
)
from intervention_training.problems import read_answers
from intervention_training.rollouts import read_rollouts
from intervention_training.runtime import (
    finish_backend,
    load_stage_params,
    log,
    open_backend,
    progress,
    stage_entry,
    summary_line,
)


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
    provenance = {"params": cfg.model_dump()}
    if not cfg.enabled:  # select every kept intervention, streamed; no model
        summary = write_unchecked_selection(
            interventions, out, continuations_out, cfg, provenance=provenance
        )
        log.info(summary_line("guided", summary))
        return
    answers = read_answers(problems)
    ivs = kept_interventions(interventions)
    columns = ("prompt", "completion")
    by_rollout = read_rollouts(rollouts, {iv["rollout_id"] for iv in ivs}, columns=columns)
    backend = open_backend(model, backend_cfg, work_dir)
    with progress(len(ivs), "guided") as tick:
        conts, selected = run_guided(ivs, by_rollout, answers, backend, cfg, grading, progress=tick)
    summary = {
        "enabled": cfg.enabled,
        "interventions": len(selected),
        "continuations": len(conts),
        "correct_continuations": sum(c["correct"] for c in conts),
        "selected": sum(s["selected"] for s in selected),
    }
    provenance["backend"] = backend.describe()
    write_artifact(
        conts, continuations_out, "continuations", provenance=provenance, summary=summary
    )
    write_artifact(selected, out, "selected", provenance=provenance, summary=summary)
    finish_backend(backend)
    log.info(summary_line("guided", summary))


if __name__ == "__main__":
    typer.run(main)
