"""Evaluation metrics over graded samples: pass@k, maj@k, rates and bootstrap intervals.

Definitions (per benchmark; every problem has ``n`` samples, ``c`` of them correct):

- **pass@k** is the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``: the
  chance that at least one of ``k`` samples drawn without replacement from the ``n`` is correct,
  averaged over problems. ``pass@1 = c / n`` is the mean accuracy over samples.
- **maj@k** (majority vote) is averaged over the ``n // k`` disjoint blocks of ``k`` consecutive
  samples (samples ``0..k-1``, ``k..2k-1``, ...; samples beyond the last full block are not used).
  In each block, every sample with a finished boxed answer votes for its answer group
  (equivalent answers share a group, all correct samples form one group); samples without an
  answer (``no_answer``, ``truncated``) do not vote. The block counts as correct when the group
  with the most votes is correct. **Tie rule:** among groups with equally many votes, the group
  whose first vote came earliest in the block wins. A block without any vote is wrong.
- **no-answer rate** and **truncation rate** are fractions of all samples with status
  ``no_answer`` and ``truncated``.
- **coverage** is the number of problems with at least one correct sample (``coverage_share``:
  that count over ``problems``); **accuracy** is the mean correctness over samples, taken per
  problem and then averaged, so it equals pass@1 (and the pooled share of correct samples, since
  every problem of a benchmark gets the same number of samples). These are the columns of the
  paper's Table 2, named as in ``continuation_sources.json`` (Table 1).
- **Bootstrap interval**: resample the problems with replacement (``resamples`` times, seeded),
  take the mean of the per-problem values each time, report the central ``confidence`` percentile
  interval. All metrics of one benchmark use the same resampled index sets. Intervals sit beside
  their metric as ``<metric>_lo`` / ``<metric>_hi`` (``coverage_lo`` / ``coverage_hi`` are counts
  of problems, like ``coverage``).

Files (:func:`write_eval_metrics`): the metrics JSON holds what a table compares across models
and experiments (``dvc metrics show``, ``dvc exp show``, ``int compare``); the per-status sample
counts and the judge's counts go to a details JSON beside it (``eval_<model>.details.json``,
a plain output in dvc.yaml, not a metrics file); the judge's counts also enter the metrics
when it judged any sample.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import read_artifact, read_metadata, replace_dir, temporary_dir_beside, write_json
from ..config import EvaluationParams

__all__ = [
    "ProblemSamples",
    "benchmark_details",
    "benchmark_metrics",
    "bootstrap_interval",
    "details_path_for",
    "evaluation_details",
    "evaluation_metrics",
    "group_problems",
    "maj_at_k",
    "majority_correct",
    "pass_at_k",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` are correct.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` (no factorials, safe for n = 128 and far
    beyond); exactly 1.0 when ``k > n - c`` (every k-subset holds a correct sample) and exactly 0.0
    when ``c == 0``. Raises ValueError unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    if c == 0:
        return 0.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def majority_correct(votes: Sequence[tuple[int | None, bool]]) -> bool:
    """Whether the plurality answer among ``votes`` is correct.

    ``votes`` are ``(answer_group, correct)`` pairs in sample order; ``answer_group is None`` means
    the sample does not vote. Ties go to the group whose first vote came earliest; the winning
    group's correctness is that of its first vote. No votes at all -> False.
    """
    counts: Counter[int] = Counter()
    first: dict[int, int] = {}
    first_correct: dict[int, bool] = {}
    for pos, (group, correct) in enumerate(votes):
        if group is None:
            continue
        counts[group] += 1
        if group not in first:
            first[group] = pos
            first_correct[group] = bool(correct)
    if not counts:
        return False
    winner = min(counts, key=lambda g: (-counts[g], first[g]))
    return first_correct[winner]


def maj_at_k(votes: Sequence[tuple[int | None, bool]], k: int) -> float:
    """maj@k of one problem: the mean of :func:`majority_correct` over the ``len(votes) // k``
    disjoint blocks of ``k`` consecutive samples. Raises ValueError unless ``1 <= k <= len(votes)``.
    """
    n = len(votes)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    blocks = n // k
    return sum(majority_correct(votes[b * k : (b + 1) * k]) for b in range(blocks)) / blocks


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    indices: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per problem).

    Deterministic for a seed. ``indices`` (shape ``(resamples, len(values))``) may be passed to
    share the resampled problem sets between metrics. Raises ValueError on empty ``values``.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if indices is None:
        indices = resample_indices(arr.size, resamples=resamples, seed=seed)
    means = arr[indices].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def resample_indices(n_problems: int, *, resamples: int, seed: int) -> np.ndarray:
    """The bootstrap's resampled problem indices, shape ``(resamples, n_problems)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_problems, size=(resamples, n_problems))


@dataclass
class ProblemSamples:
    """The graded samples of one problem, in sample order."""

    problem_id: str
    correct: list[bool] = field(default_factory=list)
    groups: list[int | None] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    math_verify_correct: list[bool] = field(default_factory=list)
    judge: list[str | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def votes(self) -> list[tuple[int | None, bool]]:
        return list(zip(self.groups, self.correct, strict=True))


def group_problems(rows: Iterable[Mapping[str, Any]]) -> list[ProblemSamples]:
    """Rows of ``eval_samples`` (one benchmark) -> one :class:`ProblemSamples` per problem,
    ordered by problem id, samples ordered by ``sample_id``."""
    by_problem: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem_id"]].append(r)
    out = []
    for pid in sorted(by_problem):
        ps = ProblemSamples(pid)
        for r in sorted(by_problem[pid], key=lambda r: r["sample_id"]):
            ps.correct.append(bool(r["correct"]))
            ps.groups.append(r["answer_group"])
            ps.statuses.append(r["status"])
            ps.n_tokens.append(int(r["n_tokens"]))
            ps.math_verify_correct.append(r["status"] == "correct")
            ps.judge.append(r["judge_verdict"])
        out.append(ps)
    return out


def _judge_counts(problems: Sequence[ProblemSamples]) -> dict[str, Any]:
    """The judge's verdict counts and pass@1 by math-verify alone (None without samples)."""
    judge = Counter(v for p in problems for v in p.judge if v is not None)
    counts: dict[str, Any] = {
        "judged": sum(judge.values()),
        **{v: judge.get(v, 0) for v in ("equivalent", "different", "invalid")},
    }
    if any(p.n for p in problems):
        mv = [pass_at_k(p.n, sum(p.math_verify_correct), 1) for p in problems if p.n]
        counts["pass@1_math_verify"] = float(np.mean(mv))
    else:
        counts["pass@1_math_verify"] = None
    return counts


def benchmark_details(problems: Sequence[ProblemSamples]) -> dict[str, Any]:
    """What the metrics leave out: ``status`` (samples per grade status) and ``judge`` (the
    judge's verdict counts and ``pass@1_math_verify``), for the details JSON."""
    statuses = Counter(s for p in problems for s in p.statuses)
    return {
        "status": {s: statuses[s] for s in sorted(statuses)},
        "judge": _judge_counts(problems),
    }


def benchmark_metrics(
    problems: Sequence[ProblemSamples],
    ks: Iterable[int],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics of one benchmark and its pass@k curve.

    Returns ``(metrics, curve)``. ``metrics`` holds ``problems``, ``samples``,
    ``samples_per_problem`` (the smallest n over problems), ``pass@k`` and ``maj@k`` for each
    ``k`` in ``ks`` (and always ``pass@1``, with its bootstrap interval ``pass@1_lo`` /
    ``pass@1_hi``), ``coverage`` / ``coverage_lo`` / ``coverage_hi`` (problems with a correct
    sample), ``coverage_share``, ``accuracy`` / ``accuracy_lo`` / ``accuracy_hi`` (equal to
    pass@1 and its interval), ``no_answer_rate``, ``truncation_rate`` and ``mean_tokens``; and
    ``judge`` (see :func:`benchmark_details`) only when the judge judged a sample. ``curve`` has
    one row per k: ``k``, ``pass_at_k`` and ``maj_at_k``, each with its interval (``*_low``,
    ``*_high``). A k larger than some problem's sample count is skipped. With no problems, every
    rate, share and interval is None (``coverage`` is 0).
    """
    statuses = Counter(s for p in problems for s in p.statuses)
    n_samples = sum(p.n for p in problems)
    metrics: dict[str, Any] = {
        "problems": len(problems),
        "samples": n_samples,
        "samples_per_problem": min((p.n for p in problems), default=0),
    }
    judge = _judge_counts(problems)
    if judge["judged"]:
        metrics["judge"] = judge
    if not problems or n_samples == 0:
        metrics.update(
            {
                "pass@1": None,
                "pass@1_lo": None,
                "pass@1_hi": None,
                "coverage": 0,
                "coverage_lo": None,
                "coverage_hi": None,
                "coverage_share": None,
                "accuracy": None,
                "accuracy_lo": None,
                "accuracy_hi": None,
                "no_answer_rate": None,
                "truncation_rate": None,
                "mean_tokens": None,
            }
        )
        return metrics, []
    metrics["no_answer_rate"] = statuses["no_answer"] / n_samples
    metrics["truncation_rate"] = statuses["truncated"] / n_samples
    metrics["mean_tokens"] = sum(sum(p.n_tokens) for p in problems) / n_samples
    idx = resample_indices(len(problems), resamples=resamples, seed=seed)
    n_min = metrics["samples_per_problem"]
    ks = sorted({1, *(k for k in ks if 1 <= k <= n_min)})
    ci: dict[str, tuple[float, float]] = {}
    curve = []
    for k in ks:
        pk = [pass_at_k(p.n, sum(p.correct), k) for p in problems]
        mk = [maj_at_k(p.votes, k) for p in problems]
        for name, values in ((f"pass@{k}", pk), (f"maj@{k}", mk)):
            metrics[name] = float(np.mean(values))
            ci[name] = bootstrap_interval(values, confidence=confidence, indices=idx)
        curve.append(
            {
                "k": k,
                "pass_at_k": metrics[f"pass@{k}"],
                "pass_at_k_low": ci[f"pass@{k}"][0],
                "pass_at_k_high": ci[f"pass@{k}"][1],
                "maj_at_k": metrics[f"maj@{k}"],
                "maj_at_k_low": ci[f"maj@{k}"][0],
                "maj_at_k_high": ci[f"maj@{k}"][1],
            }
        )
    # Only pass@1's interval goes into the metrics (the curve has them all): it keeps
    # `dvc metrics show` readable.
    metrics["pass@1_lo"], metrics["pass@1_hi"] = ci["pass@1"]
    # Coverage on the same resampled problems: the share of covered problems, times their number.
    covered = [float(any(p.correct)) for p in problems]
    share_lo, share_hi = bootstrap_interval(covered, confidence=confidence, indices=idx)
    metrics["coverage"] = int(sum(covered))
    metrics["coverage_lo"] = share_lo * len(problems)
    metrics["coverage_hi"] = share_hi * len(problems)
    metrics["coverage_share"] = metrics["coverage"] / len(problems)
    metrics["accuracy"] = metrics["pass@1"]
    metrics["accuracy_lo"], metrics["accuracy_hi"] = ci["pass@1"]
    return metrics, curve


def evaluation_metrics(
    rows: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, Any]],
    ks: Iterable[int],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Metrics and pass@k curves of every benchmark of one model's ``eval_samples`` rows.

    ``summary`` is the evaluate stage's summary (per benchmark); its ``excluded_ungradable``
    and ``ungradable_reference`` counts are copied into the metrics. Benchmarks named in the
    summary without any rows still get an entry (with None rates). Returns
    ``({benchmark: metrics}, {benchmark: curve rows})``; see :func:`benchmark_metrics`.
    """
    by_bench: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_bench[r["benchmark"]].append(r)
    ks = list(ks)
    metrics: dict[str, Any] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(set(by_bench) | set(summary)):
        m, curve = benchmark_metrics(
            group_problems(by_bench.get(name, [])),
            ks,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
        info = summary.get(name, {})
        m["excluded_ungradable"] = int(info.get("excluded_ungradable", 0))
        m["ungradable_reference"] = int(info.get("ungradable_reference", 0))
        metrics[name] = m
        curves[name] = curve
    return metrics, curves


def evaluation_details(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{benchmark: details}`` of one model's ``eval_samples`` rows (:func:`benchmark_details`)."""
    by_bench: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_bench[r["benchmark"]].append(r)
    return {name: benchmark_details(group_problems(by_bench[name])) for name in sorted(by_bench)}


def details_path_for(metrics_path: str | Path) -> Path:
    """Where the details JSON of ``metrics_path`` goes: beside it, ``<stem>.details.json``."""
    metrics_path = Path(metrics_path)
    return metrics_path.with_name(f"{metrics_path.stem}.details.json")


def write_eval_metrics(
    samples_path: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
    params: EvaluationParams,
    *,
    details_path: str | Path | None = None,
) -> dict[str, Any]:
    """The ``eval_metrics`` stage: metrics JSON per benchmark, one pass@k curve JSON per
    benchmark in ``plots_dir`` (replaced as a whole), and the status and judge counts per
    benchmark in ``details_path`` (default: :func:`details_path_for` the metrics); returns the
    metrics."""
    rows = read_artifact(samples_path, "eval_samples").to_pylist()
    boot = params.bootstrap
    result, curves = evaluation_metrics(
        rows,
        read_metadata(samples_path)["summary"],
        params.ks,
        resamples=boot.resamples,
        confidence=boot.confidence,
        seed=boot.seed,
    )
    tmp = temporary_dir_beside(plots_dir)
    tmp.mkdir(parents=True)
    for bench, curve in curves.items():
        write_json(tmp / f"{bench}.json", curve)
    replace_dir(tmp, plots_dir)
    details = details_path if details_path is not None else details_path_for(metrics_path)
    write_json(details, evaluation_details(rows))
    write_json(metrics_path, result)
    return result
