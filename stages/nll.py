"""DVC stage `nll`: how likely each source of SFT data is under the base model (on-policy check).

For InT's rows, its Table 2 variants and the reference solutions: the per-token negative
log-likelihood of the completion tokens (the ones SFT trains on) under the base model
(intervention_training/diagnostics/nll.py).
"""

from pathlib import Path

import typer

from intervention_training.diagnostics.nll import sft_max_length, write_nll
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("nll")
def main(
    problems: Path = typer.Option(..., help="problems artifact (the reference solutions)"),
    rollouts: Path = typer.Option(..., help="rollouts artifact"),
    interventions: Path = typer.Option(..., help="interventions artifact"),
    selected: Path = typer.Option(..., help="selection artifact from the guided stage"),
    continuations: Path = typer.Option(
        None, help="guided continuations (for the prefix_intervention_suffix source)"
    ),
    model: Path = typer.Option(..., help="base-model folder (the model that scores)"),
    out: Path = typer.Option(..., help="per-row NLL artifact to write"),
    metrics: Path = typer.Option(..., help="metrics file to write (JSON)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, sft_data, sft = load_stage_params(params, "diagnostics", "sft_data", "sft")
    summary = write_nll(
        problems,
        rollouts,
        interventions,
        selected,
        model,
        out,
        metrics,
        cfg,
        continuations_path=continuations,
        end_of_turn=sft_data.end_of_turn,
        append_eos=sft.append_eos,
        max_length=sft_max_length(sft.trainer),
    )
    log.info(summary_line("nll", summary))


if __name__ == "__main__":
    typer.run(main)
