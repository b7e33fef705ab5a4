"""DVC stage `locate_eval`: does the proposer find the first wrong step a person marked?

CHAMP's human-annotated model solutions go through the project's own self-verification as
failed attempts; the predicted location is scored against the annotated step, beside three
baselines (intervention_training/locate_eval.py).
"""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.config import backend_for_model, backend_with
from intervention_training.locate_eval import write_locate_eval
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("locate_eval")
def main(
    model: Path = typer.Option(..., help="base-model folder (the policy; a proposer if set)"),
    out: Path = typer.Option(..., help="scored locations artifact to write"),
    metrics: Path = typer.Option(..., help="metrics JSON to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, proposals, backend_cfg = load_stage_params(params, "locate_eval", "proposals", "backend")
    proposer = (proposals.model, proposals.revision) if proposals.model else None
    backend_cfg = (backend_for_model if proposer else backend_with)(backend_cfg, proposals.backend)
    with open_backend(model, backend_cfg, work_dir, model_ref=proposer) as backend:
        summary = write_locate_eval(out, metrics, cfg, proposals, backend)
    log.info(summary_line("locate_eval", summary))


if __name__ == "__main__":
    typer.run(main)
