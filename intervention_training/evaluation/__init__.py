"""Evaluation: benchmarks, sampling and grading, metrics, an optional judge, contamination.

Importing this package registers the ``eval_samples`` and ``contamination`` artifact schemas
(:mod:`.schema`). The metric functions are re-exported here; the modules that sample from a
model (:mod:`.run`, :mod:`.judge`) are imported on demand.
"""

from __future__ import annotations

from . import schema as schema
from .metrics import (
    ProblemSamples,
    benchmark_metrics,
    bootstrap_interval,
    evaluation_metrics,
    maj_at_k,
    majority_correct,
    pass_at_k,
)

__all__ = [
    "ProblemSamples",
    "benchmark_metrics",
    "bootstrap_interval",
    "evaluation_metrics",
    "maj_at_k",
    "majority_correct",
    "pass_at_k",
]
