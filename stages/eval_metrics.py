"""DVC stage `eval_metrics`: pass@k, maj@k, rates and intervals of one model's samples."""

import shutil
from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, read_metadata, write_json
from intervention_training.evaluation import evaluation_metrics
from intervention_training.runtime import load_stage_params, log, rows_of, stage_entry


@stage_entry("eval_metrics")
def main(
    samples: Path = typer.Option(..., help="eval_samples artifact"),
    metrics: Path = typer.Option(..., help="metrics JSON to write"),
    plots: Path = typer.Option(..., help="folder for the pass@k curves (one JSON per benchmark)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "evaluation")
    rows = rows_of(read_artifact(samples, "eval_samples"))
    summary = read_metadata(samples)["summary"]
    boot = cfg.bootstrap
    result, curves = evaluation_metrics(
        rows,
        summary,
        cfg.ks,
        resamples=boot.resamples,
        confidence=boot.confidence,
        seed=boot.seed,
    )
    tmp = plots.with_name(plots.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for bench, curve in curves.items():
        write_json(tmp / f"{bench}.json", curve)
    shutil.rmtree(plots, ignore_errors=True)
    tmp.rename(plots)
    write_json(metrics, result)
    for bench, m in result.items():
        log.info(
            f"[eval_metrics] {bench}: problems={m['problems']} pass@1={m['pass@1']} "
            f"no_answer_rate={m['no_answer_rate']} truncation_rate={m['truncation_rate']}"
        )


if __name__ == "__main__":
    typer.run(main)
