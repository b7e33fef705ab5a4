"""DVC stage `problems`: load, normalise, filter and split the configured problem set."""

from pathlib import Path

import typer

from intervention_training.problems import write_problems
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("problems")
def main(
    out: Path = typer.Option(..., help="problems artifact to write"),
    benchmarks: Path = typer.Option(
        None, help="benchmarks artifact (read when evaluation.contamination.remove is on)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    cache_dir: Path = typer.Option(Path(".cache/datasets"), help="datasets cache for hub sources"),
) -> None:
    cfg, evaluation = load_stage_params(params, "problems", "evaluation")
    summary = write_problems(
        out,
        cfg,
        benchmarks_path=benchmarks,
        contamination=evaluation.contamination,
        cache_dir=str(cache_dir),
    )
    log.info(summary_line("problems", summary))


if __name__ == "__main__":
    typer.run(main)
