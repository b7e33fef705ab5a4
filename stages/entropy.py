"""DVC stage `entropy`: one model's mean next-token entropy on its own evaluation samples.

The samples of data/eval/<model>.parquet, teacher-forced through the model that wrote them;
the entropy of its next-token distribution at each completion token, per benchmark
(intervention_training/diagnostics/entropy.py).
"""

from pathlib import Path

import typer

from intervention_training.diagnostics.entropy import write_entropy
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("entropy")
def main(
    name: str = typer.Option(..., help="label of the model (base, sft, rl, ...)"),
    samples: Path = typer.Option(..., help="the model's eval_samples artifact"),
    model: Path = typer.Option(..., help="folder of the model that wrote the samples"),
    problems: Path = typer.Option(..., help="problems artifact (for the held-out benchmark)"),
    benchmarks: Path = typer.Option(..., help="benchmarks artifact (the other benchmarks)"),
    pass_rates: Path = typer.Option(
        None, help="pass-rates artifact (for a `source: train, subset: selected` benchmark)"
    ),
    metrics: Path = typer.Option(..., help="metrics file to write (JSON)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg, evaluation = load_stage_params(params, "diagnostics", "evaluation")
    summary = write_entropy(
        samples,
        model,
        problems,
        benchmarks,
        metrics,
        cfg,
        evaluation,
        pass_rates_path=pass_rates,
    )
    for bench, counts in summary.items():
        log.info(summary_line(f"entropy {name} {bench}", counts))


if __name__ == "__main__":
    typer.run(main)
