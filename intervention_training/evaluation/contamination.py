"""Contamination check: training problems that overlap a benchmark problem.

Texts are normalised (Unicode NFKC, lower case, ``$`` and LaTeX punctuation dropped) and cut into
words (runs of letters and digits, so ``\\frac{1}{2}`` gives ``frac 1 2``). A training problem
and a benchmark problem are a contaminated pair when they share at least ``min_shared`` word
``n``-grams (default: one shared 13-gram, the convention of GPT-3 / OpenAI's decontamination).
A text shorter than ``n`` words contributes its whole word sequence as its one n-gram, so that
short problems are compared too (as exact normalised matches).

Removal: with ``evaluation.contamination.remove`` the ``problems`` stage drops the training
problems :func:`contaminated_problem_ids` finds (it reads the ``benchmarks`` artifact, never the
benchmark loaders). Entry point of the ``contamination`` stage: :func:`write_contamination`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import write_artifact, write_json
from ..config import EvaluationParams
from ..readers import read_benchmarks, read_problems

__all__ = [
    "contaminated_problem_ids",
    "contaminated_train_ids",
    "find_contamination",
    "ngrams",
    "words",
    "write_contamination",
]

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Normalised words of ``text`` (NFKC, lower case, letters and digits only)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The set of word ``n``-grams of ``text``; the whole sequence when it is shorter than n."""
    w = words(text)
    if not w:
        return set()
    if len(w) < n:
        return {tuple(w)}
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def find_contamination(
    train: Sequence[Mapping[str, Any]],
    benchmark: Sequence[Mapping[str, Any]],
    *,
    benchmark_name: str,
    n: int = 13,
    min_shared: int = 1,
) -> list[dict[str, Any]]:
    """Contaminated (training problem, benchmark problem) pairs, as ``contamination`` rows.

    Both inputs are rows with ``problem_id`` and ``problem``. Rows are ordered by benchmark id,
    then training id; ``example`` is the first shared n-gram in sorted order.
    """
    index: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for b in benchmark:
        for g in ngrams(b["problem"], n):
            index[g].append(b["problem_id"])
    shared: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    for t in train:
        for g in ngrams(t["problem"], n):
            for bid in index.get(g, ()):
                shared[(bid, t["problem_id"])].append(g)
    rows = []
    for (bid, tid), grams in sorted(shared.items()):
        if len(grams) >= min_shared:
            rows.append(
                {
                    "benchmark": benchmark_name,
                    "benchmark_problem_id": bid,
                    "train_problem_id": tid,
                    "shared_ngrams": len(grams),
                    "example": " ".join(min(grams)),
                }
            )
    return rows


def contamination_summary(
    pairs: Iterable[Mapping[str, Any]], sizes: Mapping[str, int], n_train: int
) -> dict[str, Any]:
    """Counts per benchmark: its problems, those contaminated, and training problems involved."""
    by_bench: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in pairs:
        by_bench[p["benchmark"]].append(p)
    out: dict[str, Any] = {"train_problems": n_train}
    for name in sorted(sizes):
        ps = by_bench.get(name, [])
        out[name] = {
            "benchmark_problems": sizes[name],
            "contaminated_benchmark_problems": len({p["benchmark_problem_id"] for p in ps}),
            "contaminated_train_problems": len({p["train_problem_id"] for p in ps}),
            "pairs": len(ps),
        }
    return out


def contaminated_train_ids(pairs: Iterable[Mapping[str, Any]]) -> set[str]:
    """Training problem ids that appear in any contaminated pair (the ones removal would drop)."""
    return {p["train_problem_id"] for p in pairs}


def contaminated_problem_ids(
    problems: Sequence[Mapping[str, Any]],
    benchmarks: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    n: int = 13,
    min_shared: int = 1,
) -> set[str]:
    """Ids of ``problems`` that share n-grams with any benchmark's rows (``name -> rows``).

    Used by the ``problems`` stage when ``evaluation.contamination.remove`` is on, with the
    rows of the ``benchmarks`` artifact (the held-out benchmark, the problem set's own split,
    is not in it).
    """
    bad: set[str] = set()
    for name, rows in benchmarks.items():
        pairs = find_contamination(problems, rows, benchmark_name=name, n=n, min_shared=min_shared)
        bad |= contaminated_train_ids(pairs)
    return bad


def write_contamination(
    problems_path: str | Path,
    benchmarks_path: str | Path,
    out_path: str | Path,
    metrics_path: str | Path,
    params: EvaluationParams,
) -> dict[str, Any]:
    """The ``contamination`` stage: pairs of (training problem, benchmark problem) sharing
    n-grams, for every configured benchmark; writes the artifact and the metrics; summary."""
    problems = read_problems(problems_path)
    train = [r for r in problems if r["split"] == "train"]
    pairs: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    cfg = params.contamination
    # `source: train` is the training split itself: overlapping it with itself means nothing
    specs = [s for s in params.benchmarks if s.source != "train"]
    for bench in read_benchmarks(benchmarks_path, specs, problems):
        sizes[bench.name] = len(bench.rows)
        pairs += find_contamination(
            train, bench.rows, benchmark_name=bench.name, n=cfg.ngram, min_shared=cfg.min_shared
        )
    summary = contamination_summary(pairs, sizes, len(train))
    provenance = {"params": cfg.model_dump()}
    write_artifact(pairs, out_path, "contamination", provenance=provenance, summary=summary)
    write_json(metrics_path, summary)
    return summary
