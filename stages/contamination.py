"""DVC stage `contamination`: word n-gram overlap between training problems and benchmarks."""

from pathlib import Path

import typer

from intervention_training.evaluation.contamination import write_contamination
from intervention_training.runtime import load_stage_params, log, stage_entry


@stage_entry("contamination")
def main(
    problems: Path = typer.Option(..., help="problems artifact (its train split is checked)"),
    benchmarks: Path = typer.Option(..., help="benchmarks artifact"),
    out: Path = typer.Option(..., help="contamination artifact to write (contaminated pairs)"),
    metrics: Path = typer.Option(..., help="metrics JSON to write (counts per benchmark)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "evaluation")
    summary = write_contamination(problems, benchmarks, out, metrics, cfg)
    log.info(f"[contamination] {summary}")


if __name__ == "__main__":
    typer.run(main)
