"""DVC stage `contamination`: word n-gram overlap between training problems and benchmarks."""

from pathlib import Path

import typer

from intervention_training.artifacts import read_artifact, write_artifact, write_json
from intervention_training.evaluation.benchmarks import load_benchmark
from intervention_training.evaluation.contamination import (
    contamination_summary,
    find_contamination,
)
from intervention_training.runtime import load_stage_params, log, rows_of, stage_entry


@stage_entry("contamination")
def main(
    problems: Path = typer.Option(..., help="problems artifact (its train split is checked)"),
    out: Path = typer.Option(..., help="contamination artifact to write (contaminated pairs)"),
    metrics: Path = typer.Option(..., help="metrics JSON to write (counts per benchmark)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    cache_dir: Path = typer.Option(Path(".cache/datasets"), help="datasets cache for hub sources"),
) -> None:
    (cfg,) = load_stage_params(params, "evaluation")
    rows = rows_of(read_artifact(problems, "problems"))
    train = [r for r in rows if r["split"] == "train"]
    pairs, sizes = [], {}
    for spec in cfg.benchmarks:
        bench = load_benchmark(spec, heldout=rows, cache_dir=str(cache_dir))
        sizes[spec.name] = len(bench.rows)
        pairs += find_contamination(
            train,
            bench.rows,
            benchmark_name=spec.name,
            n=cfg.contamination.ngram,
            min_shared=cfg.contamination.min_shared,
        )
    summary = contamination_summary(pairs, sizes, len(train))
    provenance = {"params": cfg.contamination.model_dump()}
    write_artifact(pairs, out, "contamination", provenance=provenance, summary=summary)
    write_json(metrics, summary)
    log.info(f"[contamination] {summary}")


if __name__ == "__main__":
    typer.run(main)
