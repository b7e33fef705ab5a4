"""Small readers over artifacts that several stages share: answers by problem, rows by id.

Kept apart from the stages that write these artifacts, so that a stage which only reads the
reference answers does not depend on the problem loaders, one that reads rollouts does not
depend on the rollout sampler, and one that reads benchmarks does not depend on the benchmark
loaders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import ArtifactError, iter_artifact, read_artifact, read_metadata, select_rows
from .config import BenchmarkSpec


def read_answers(path: str | Path) -> dict[str, str]:
    """``problem_id -> reference answer`` from a problems artifact (reads only those columns)."""
    table = read_artifact(path, "problems", columns=("problem_id", "answer"))
    ids = table.column("problem_id").to_pylist()
    return dict(zip(ids, table.column("answer").to_pylist(), strict=True))


def read_problems(path: str | Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a problems artifact in file order; only those of ``split`` when given."""
    rows = read_artifact(path, "problems").to_pylist()
    return [r for r in rows if split is None or r["split"] == split]


def read_rollouts(
    path: str | Path, rollout_ids: Collection[str], *, columns: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The rollouts whose id is in ``rollout_ids``, by id, in file order (streamed: no other row
    is held in memory). ``columns`` limits the fields read (``rollout_id`` is always read)."""
    rows = select_rows(path, "rollouts", "rollout_id", rollout_ids, columns=columns)
    return {r["rollout_id"]: r for r in rows}


@dataclass
class Benchmark:
    """A loaded benchmark: rows (``problem_id``, ``problem``, ``answer``) and what was dropped."""

    name: str
    rows: list[dict[str, str]]
    format: str
    n_read: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "read": self.n_read,
            "kept": len(self.rows),
            "dropped": dict(sorted(self.dropped.items())),
        }


def heldout_benchmark(spec: BenchmarkSpec, problems: Sequence[Mapping[str, Any]]) -> Benchmark:
    """The ``heldout`` benchmark: the ``split == "eval"`` rows of the problems artifact (the first
    ``spec.limit`` of them when set)."""
    rows = [
        {"problem_id": r["problem_id"], "problem": r["problem"], "answer": r["answer"]}
        for r in problems
        if r["split"] == "eval"
    ]
    if spec.limit is not None:
        rows = rows[: spec.limit]
    return Benchmark(spec.name, rows, "heldout", n_read=len(rows))


def selected_problem_ids(pass_rates_path: str | Path) -> set[str]:
    """The problems the grades stage passed on (``selected`` in the pass-rates artifact)."""
    cols = ("problem_id", "selected")
    return {
        r["problem_id"]
        for batch in iter_artifact(pass_rates_path, "pass_rates", columns=cols)
        for r in batch
        if r["selected"]
    }


def train_benchmark(
    spec: BenchmarkSpec,
    problems: Sequence[Mapping[str, Any]],
    selected: Collection[str] | None = None,
) -> Benchmark:
    """The ``train`` benchmark: the ``split == "train"`` rows of the problems artifact, in its
    order; with ``spec.subset == "selected"`` only those whose id is in ``selected`` (see
    :func:`selected_problem_ids`), which is then required; the first ``spec.limit`` when set."""
    if spec.source != "train":
        raise ValueError(f"benchmark {spec.name!r}: source is {spec.source!r}, not 'train'")
    if spec.subset == "selected" and selected is None:
        raise ArtifactError(
            f"benchmark {spec.name!r}: subset 'selected' needs the pass-rates artifact "
            "(data/pass_rates.parquet)"
        )
    keep = None if spec.subset == "all" else set(selected or ())
    rows = [
        {"problem_id": r["problem_id"], "problem": r["problem"], "answer": r["answer"]}
        for r in problems
        if r["split"] == "train" and (keep is None or r["problem_id"] in keep)
    ]
    if not rows:
        which = "training problems" if keep is None else "selected training problems"
        raise ArtifactError(f"benchmark {spec.name!r}: the problems artifact has no {which}")
    if spec.limit is not None:
        rows = rows[: spec.limit]
    return Benchmark(spec.name, rows, "train", n_read=len(rows))


def read_benchmark_rows(path: str | Path) -> dict[str, list[dict[str, str]]]:
    """``benchmark name -> rows`` (``problem_id``, ``problem``, ``answer``) of a benchmarks
    artifact, in file order."""
    by_name: dict[str, list[dict[str, str]]] = {}
    for r in read_artifact(path, "benchmarks").to_pylist():
        by_name.setdefault(r["benchmark"], []).append(
            {"problem_id": r["problem_id"], "problem": r["problem"], "answer": r["answer"]}
        )
    return by_name


def read_benchmarks(
    benchmarks_path: str | Path,
    specs: Sequence[BenchmarkSpec],
    problems: Sequence[Mapping[str, Any]] | None = None,
    selected: Collection[str] | None = None,
) -> list[Benchmark]:
    """The benchmarks of ``specs``, in that order: ``heldout`` and ``train`` from the problems
    rows (``selected``: see :func:`train_benchmark`), the others from the ``benchmarks`` artifact
    with the counts it recorded when loading them.

    Raises :class:`ArtifactError` naming the file when a configured benchmark is not in it
    (the benchmarks stage ran with other params).
    """
    by_name = read_benchmark_rows(benchmarks_path)
    loaded = read_metadata(benchmarks_path).get("summary") or {}
    out = []
    for spec in specs:
        if spec.source == "heldout":
            if problems is None:
                raise ArtifactError(f"benchmark {spec.name!r}: the problems artifact is needed")
            out.append(heldout_benchmark(spec, problems))
            continue
        if spec.source == "train":
            if problems is None:
                raise ArtifactError(f"benchmark {spec.name!r}: the problems artifact is needed")
            out.append(train_benchmark(spec, problems, selected))
            continue
        if spec.name not in loaded:
            raise ArtifactError(
                f"{benchmarks_path}: benchmark {spec.name!r} is not in it; rerun the "
                "benchmarks stage (dvc repro benchmarks)"
            )
        counts = loaded[spec.name]
        out.append(
            Benchmark(
                spec.name,
                by_name.get(spec.name, []),
                counts["format"],
                n_read=counts["read"],
                dropped=Counter(counts["dropped"]),
            )
        )
    return out
