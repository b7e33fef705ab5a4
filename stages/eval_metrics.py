"""DVC stage `eval_metrics`: pass@k, maj@k, rates and intervals of one model's samples."""

from pathlib import Path

import typer

from intervention_training.evaluation.metrics import write_eval_metrics
from intervention_training.runtime import load_stage_params, log, stage_entry


@stage_entry("eval_metrics")
def main(
    samples: Path = typer.Option(..., help="eval_samples artifact"),
    metrics: Path = typer.Option(..., help="metrics JSON to write"),
    plots: Path = typer.Option(..., help="folder for the pass@k curves (one JSON per benchmark)"),
    details: Path = typer.Option(
        None, help="status and judge counts per benchmark (JSON; default: beside the metrics)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "evaluation")
    result = write_eval_metrics(samples, metrics, plots, cfg, details_path=details)
    for bench, m in result.items():
        log.info(
            f"[eval_metrics] {bench}: problems={m['problems']} pass@1={m['pass@1']} "
            f"no_answer_rate={m['no_answer_rate']} truncation_rate={m['truncation_rate']}"
        )


if __name__ == "__main__":
    typer.run(main)
