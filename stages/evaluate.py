"""DVC stage `evaluate`: sample one model on every benchmark, grade (and optionally judge)."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact
from intervention_training.config import ConfigError
from intervention_training.evaluation.benchmarks import load_benchmark
from intervention_training.evaluation.run import evaluate_model
from intervention_training.runtime import (
    finish_backend,
    load_stage_params,
    log,
    open_backend,
    progress,
    rows_of,
    stage_entry,
    summary_line,
)


@stage_entry("evaluate")
def main(
    name: str = typer.Option(..., help="label of the evaluated model (base, sft, rl, ...)"),
    model: Path = typer.Option(..., help="model folder to evaluate"),
    problems: Path = typer.Option(..., help="problems artifact (for the held-out benchmark)"),
    out: Path = typer.Option(..., help="eval_samples artifact to write"),
    judge_model: Path = typer.Option(None, help="model folder of the judge (if enabled)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    cache_dir: Path = typer.Option(Path(".cache/datasets"), help="datasets cache for hub sources"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, backend_cfg, grading = load_stage_params(params, "evaluation", "backend", "grading")
    heldout = rows_of(read_artifact(problems, "problems"))
    benchmarks = [
        load_benchmark(b, heldout=heldout, cache_dir=str(cache_dir)) for b in cfg.benchmarks
    ]
    backend = open_backend(model, backend_cfg, work_dir)

    def judge_backend():
        if judge_model is None:
            raise ConfigError("evaluation.judge.enabled needs the stage's --judge-model")
        if judge_model.resolve() == model.resolve():
            return backend
        return open_backend(judge_model, backend_cfg)

    total = sum(len(b.rows) for b in benchmarks)
    with progress(total, f"evaluate {name}") as tick:
        rows, summary = evaluate_model(
            benchmarks,
            backend,
            cfg,
            model=name,
            timeout_s=grading.timeout_s,
            workers=grading.workers,
            judge_backend=judge_backend,
            progress=tick,
        )
    provenance = {
        "model": name,
        "backend": backend.describe(),
        "params": cfg.model_dump(mode="json"),
    }
    write_artifact(rows, out, "eval_samples", provenance=provenance, summary=summary)
    finish_backend(backend)
    for bench, counts in summary.items():
        log.info(summary_line(f"evaluate {name} {bench}", counts))


if __name__ == "__main__":
    typer.run(main)
