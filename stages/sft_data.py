"""DVC stage `sft_data`: TRL prompt-completion rows from the selected interventions."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.runtime import (
    load_stage_params,
    log,
    rows_of,
    stage_entry,
    summary_line,
)
from intervention_training.sft_data import build_reference_rows, build_sft_rows


@stage_entry("sft_data")
def main(
    problems: Path = typer.Option(..., help="problems artifact (for sft_data.source=reference)"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    interventions: Path = typer.Option(..., help="interventions artifact"),
    selected: Path = typer.Option(..., help="selection artifact from the guided stage"),
    model: Path = typer.Option(..., help="base-model folder (its tokenizer's end-of-turn token)"),
    out: Path = typer.Option(..., help="SFT dataset to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "sft_data")
    eot = None
    if cfg.end_of_turn:
        from transformers import AutoTokenizer

        from intervention_training.models import resolve_model

        name, revision = resolve_model(model)
        eot = AutoTokenizer.from_pretrained(name, revision=revision).eos_token
    attempts = rows_of(read_artifact(rollouts, "rollouts"))
    if cfg.source == "reference":
        train = [p for p in rows_of(read_artifact(problems, "problems")) if p["split"] == "train"]
        rows = build_reference_rows(train, attempts, end_of_turn_text=eot)
    else:
        ivs = {r["proposal_id"]: r for r in rows_of(read_artifact(interventions, "interventions"))}
        by_rollout = {r["rollout_id"]: r for r in attempts}
        sel = rows_of(read_artifact(selected, "selected"))
        rows = build_sft_rows(sel, ivs, by_rollout, end_of_turn_text=eot)
    summary = {
        "rows": len(rows),
        "problems": len({r["problem_id"] for r in rows}),
        "end_of_turn": cfg.end_of_turn,
        "source": cfg.source,
    }
    write_artifact(rows, out, "sft", provenance={"params": cfg.model_dump()}, summary=summary)
    log.info(summary_line("sft_data", summary))


if __name__ == "__main__":
    typer.run(main)
