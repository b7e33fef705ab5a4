"""DVC stage `benchmarks`: load every configured evaluation benchmark (but the held-out split)."""

from pathlib import Path

import typer

from intervention_training.evaluation.benchmarks import write_benchmarks
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("benchmarks")
def main(
    out: Path = typer.Option(..., help="benchmarks artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    cache_dir: Path = typer.Option(Path(".cache/datasets"), help="datasets cache for hub sources"),
) -> None:
    (cfg,) = load_stage_params(params, "evaluation")
    summary = write_benchmarks(out, cfg.benchmarks, cache_dir=str(cache_dir))
    log.info(summary_line("benchmarks", summary or {"loaded": "none (held-out only)"}))


if __name__ == "__main__":
    typer.run(main)
