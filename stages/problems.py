"""DVC stage `problems`: load, normalise, filter and split the configured problem set."""

from pathlib import Path

import typer

from intervention_training.artifacts import write_artifact
from intervention_training.problems import load_problems
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("problems")
def main(
    out: Path = typer.Option(..., help="problems artifact to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    cache_dir: Path = typer.Option(Path(".cache/datasets"), help="datasets cache for hub sources"),
) -> None:
    cfg, evaluation = load_stage_params(params, "problems", "evaluation")
    from intervention_training.grading import reference_problem

    contaminated = None
    if evaluation.contamination.remove:
        from intervention_training.evaluation.contamination import contaminated_problem_ids

        def contaminated(rows: list[dict]) -> set[str]:
            return contaminated_problem_ids(
                rows,
                evaluation.benchmarks,
                n=evaluation.contamination.ngram,
                min_shared=evaluation.contamination.min_shared,
                cache_dir=str(cache_dir),
            )

    result = load_problems(
        cfg,
        reference_check=reference_problem,
        contaminated=contaminated,
        cache_dir=str(cache_dir),
    )
    summary = result.summary()
    write_artifact(
        result.rows, out, "problems", provenance={"params": cfg.model_dump()}, summary=summary
    )
    log.info(summary_line("problems", summary))


if __name__ == "__main__":
    typer.run(main)
