"""DVC stage `base_model`: materialise the embedded model, or record a hub name / folder."""

from pathlib import Path

import typer

from intervention_training.models import materialise
from intervention_training.runtime import load_stage_params, log, stage_entry, summary_line


@stage_entry("base_model")
def main(
    out: Path = typer.Option(..., help="model folder to write"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    (cfg,) = load_stage_params(params, "model")
    info = materialise(cfg.name, cfg.revision, out)
    log.info(summary_line("base_model", info))


if __name__ == "__main__":
    typer.run(main)
