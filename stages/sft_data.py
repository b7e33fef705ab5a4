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
from intervention_training.sft_data import build_sft_rows


@stage_entry("sft_data")
def main(
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
    ivs = {r["proposal_id"]: r for r in rows_of(read_artifact(interventions, "interventions"))}
    by_rollout = {r["rollout_id"]: r for r in rows_of(read_artifact(rollouts, "rollouts"))}
    sel = rows_of(read_artifact(selected, "selected"))
    rows = build_sft_rows(sel, ivs, by_rollout, end_of_turn_text=eot)
    summary = {
        "rows": len(rows),
        "problems": len({r["problem_id"] for r in rows}),
        "end_of_turn": cfg.end_of_turn,
    }
    write_artifact(rows, out, "sft", provenance={"params": cfg.model_dump()}, summary=summary)
    log.info(summary_line("sft_data", summary))


if __name__ == "__main__":
    typer.run(main)
