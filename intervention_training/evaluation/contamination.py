"""Contamination check: training problems that overlap a benchmark problem.

Texts are normalised (Unicode NFKC, lower case, ``$`` and LaTeX punctuation dropped) and cut into
words (runs of letters and digits, so ``\\frac{1}{2}`` gives ``frac 1 2``). A training problem
and a benchmark problem are a contaminated pair when they share at least ``min_shared`` word
``n``-grams (default: one shared 13-gram, the convention of GPT-3 / OpenAI's decontamination).
A text shorter than ``n`` words contributes its whole word sequence as its one n-gram, so that
short problems are compared too (as exact normalised matches).

Removal: :func:`contaminated_train_ids` gives the training ids to drop; a stage that chooses
training problems (rollouts) would read the contamination artifact and skip them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["contaminated_train_ids", "find_contamination", "ngrams", "words"]

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
    specs: Iterable[Any],
    *,
    n: int = 13,
    min_shared: int = 1,
    cache_dir: str | None = None,
) -> set[str]:
    """Ids of ``problems`` that share n-grams with any non-held-out benchmark in ``specs``.

    Used by the ``problems`` stage when ``evaluation.contamination.remove`` is on; held-out
    benchmarks are the problem set's own eval split and are skipped.
    """
    from .benchmarks import load_benchmark

    bad: set[str] = set()
    for spec in specs:
        if spec.source == "heldout":
            continue
        bench = load_benchmark(spec, cache_dir=cache_dir)
        pairs = find_contamination(
            problems, bench.rows, benchmark_name=spec.name, n=n, min_shared=min_shared
        )
        bad |= contaminated_train_ids(pairs)
    return bad
