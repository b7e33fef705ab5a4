"""DVC stage `proposals`: two-turn self-verification of every failed attempt."""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.config import backend_for_model, backend_with
from intervention_training.proposals import write_proposals
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("proposals")
def main(
    problems: Path = typer.Option(..., help="problems artifact"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    grades: Path = typer.Option(..., help="grades artifact"),
    pass_rates: Path = typer.Option(..., help="pass-rates artifact"),
    model: Path = typer.Option(..., help="base-model folder (the policy)"),
    out: Path = typer.Option(..., help="proposals artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, backend_cfg = load_stage_params(params, "proposals", "backend")
    proposer = (cfg.model, cfg.revision) if cfg.model else None  # null: the policy
    # proposals.backend overrides; for another model, not the policy's served name or length
    backend_cfg = (backend_for_model if proposer else backend_with)(backend_cfg, cfg.backend)
    with open_backend(model, backend_cfg, work_dir, model_ref=proposer) as backend:
        summary = write_proposals(problems, rollouts, grades, pass_rates, out, cfg, backend)
    log.info(summary_line("proposals", summary))


if __name__ == "__main__":
    typer.run(main)
