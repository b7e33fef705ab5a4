"""DVC stage `sft_data`: TRL prompt-completion rows from the selected interventions."""

from pathlib import Path

import typer

from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line
from intervention_training.sft_data import write_sft_data


@stage_entry("sft_data")
def main(
    problems: Path = typer.Option(..., help="problems artifact (for sft_data.source=reference)"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    interventions: Path = typer.Option(..., help="interventions artifact"),
    selected: Path = typer.Option(..., help="selection artifact from the guided stage"),
    continuations: Path = typer.Option(
        None, help="guided continuations (for sft_data.variant prefix_intervention_suffix)"
    ),
    model: Path = typer.Option(..., help="base-model folder (its tokenizer's end-of-turn token)"),
    out: Path = typer.Option(..., help="SFT dataset to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "sft_data")
    summary = write_sft_data(
        problems,
        rollouts,
        interventions,
        selected,
        model,
        out,
        cfg,
        continuations_path=continuations,
    )
    log.info(summary_line("sft_data", summary))


if __name__ == "__main__":
    typer.run(main)
