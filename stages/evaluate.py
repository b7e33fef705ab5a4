"""DVC stage `evaluate`: sample one model on every benchmark, grade (and optionally judge)."""

from pathlib import Path

import typer

from intervention_training.backends import open_backend
from intervention_training.config import backend_with
from intervention_training.evaluation.evaluate import write_eval_samples
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("evaluate")
def main(
    name: str = typer.Option(..., help="label of the evaluated model (base, sft, rl, ...)"),
    model: Path = typer.Option(..., help="model folder to evaluate"),
    problems: Path = typer.Option(..., help="problems artifact (for the held-out benchmark)"),
    benchmarks: Path = typer.Option(..., help="benchmarks artifact (the other benchmarks)"),
    pass_rates: Path = typer.Option(
        None, help="pass-rates artifact (for a `source: train, subset: selected` benchmark)"
    ),
    out: Path = typer.Option(..., help="eval_samples artifact to write"),
    judge_model: Path = typer.Option(None, help="model folder of the judge (if enabled)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    work_dir: Path = typer.Option(
        None, help="keep finished generation shards here so a crashed run resumes"
    ),
) -> None:
    cfg, backend_cfg, grading = load_stage_params(params, "evaluation", "backend", "grading")
    backend_cfg = backend_with(backend_cfg, cfg.backend)  # evaluation.backend overrides
    with open_backend(model, backend_cfg, work_dir) as backend:
        summary = write_eval_samples(
            name,
            model,
            problems,
            benchmarks,
            out,
            cfg,
            grading,
            backend,
            judge_model_dir=judge_model,
            backend_params=backend_cfg,
            pass_rates_path=pass_rates,
        )
    for bench, counts in summary.items():
        log.info(summary_line(f"evaluate {name} {bench}", counts))


if __name__ == "__main__":
    typer.run(main)
