"""Map the InT authors' released data onto this project's artifacts, to compare or to inspect.

Usage (from the repository root, with hub access or a local copy of the files):

    python scripts/import_authors_data.py interventions --out data/authors \
        [--source CMU-AIRe/InT-hard-set-with-incorrect-attempts-and-interventions | FILE] \
        [--model data/models/base] [--double-newlines]
    python scripts/import_authors_data.py attempts --out data/authors [--source ...]

Writes ``problems``, ``rollouts`` (and for ``interventions`` also ``interventions`` and ``sft``)
Parquet files under ``--out``, each checked against the project's schema, so ``int show``,
``int funnel --data-dir``, pandas or DuckDB read them beside the pipeline's own artifacts. The
column mapping is unverified against the published files (intervention_training/authors_data.py).
Not a DVC stage: the output is outside the pipeline's artifacts and nothing downstream reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from intervention_training.authors_data import (
    ATTEMPTS_HUB,
    INTERVENTIONS_HUB,
    load_attempts,
    load_interventions,
    write_authors_data,
)


def main(
    kind: Literal["attempts", "interventions"] = typer.Argument(..., help="which release"),
    out: Path = typer.Option(..., help="folder for the Parquet files"),
    source: str = typer.Option(None, help="hub name or local file (default: the authors' set)"),
    split: str = typer.Option("train"),
    model: Path = typer.Option(
        None, help="model folder whose tokenizer renders prompts and counts tokens"
    ),
    double_newlines: bool = typer.Option(False, help="double the interventions' newlines"),
) -> None:
    tokenizer = None
    if model is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
    if kind == "attempts":
        data = load_attempts(source or ATTEMPTS_HUB, split=split, tokenizer=tokenizer)
    else:
        data = load_interventions(
            source or INTERVENTIONS_HUB,
            split=split,
            tokenizer=tokenizer,
            double_newlines=double_newlines,
        )
    summary = write_authors_data(data, out)
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    typer.run(main)
