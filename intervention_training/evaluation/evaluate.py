"""Sample, grade and (optionally) judge a model on benchmarks: rows of ``eval_samples``.

For each benchmark problem the model gets the rollout prompt (the problem as the only user
message, in its own chat template) and draws ``samples_per_problem`` samples; the request seed is
``derive_seed(seed, "eval", benchmark, problem_id)``, so every model sees the same seeds. Samples
are graded by the project's one grader (:func:`~intervention_training.grading.grade_many`).

Problems whose reference answer the grader cannot read (``reference_problem`` is not None) are
excluded and counted, unless the judge is on and asked to handle them. Finally every problem's
answers are grouped for majority voting (:func:`answer_groups`).

Entry point of the ``evaluate`` stage: :func:`write_eval_samples`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import write_artifact
from ..config import (
    BackendParams,
    ConfigError,
    EvaluationParams,
    GradingParams,
    JudgeParams,
    backend_for_model,
    backend_with,
)
from ..generation import GenerationBackend, GenerationRequest, derive_seed, sampling_from
from ..grading import equivalent_many, grade_many
from ..progress import progress_bar
from ..prompts import rollout_prompt
from ..readers import Benchmark, read_benchmarks, read_problems, selected_problem_ids
from .judge import EQUIVALENT, JudgeItem, run_judge

__all__ = [
    "VOTING_STATUSES",
    "answer_groups",
    "answer_key",
    "evaluate_model",
    "write_eval_samples",
]

#: Statuses of samples that finished with a non-empty boxed answer: they take part in maj@k.
VOTING_STATUSES = frozenset({"correct", "incorrect", "timeout", "error"})
_NOISE = re.compile(r"\s+|\\left|\\right|\\!|\\,|\\;|\$")


def answer_key(extracted: str) -> str:
    """A cheap canonical form (no spaces, ``\\left``/``\\right``, thin spaces or ``$``) under
    which identical-looking answers are grouped without a math-verify call."""
    return _NOISE.sub("", extracted).rstrip(".")


def answer_groups(
    problems: Sequence[Sequence[tuple[str | None, bool]]],
    *,
    timeout_s: float = 5.0,
    workers: int | None = None,
) -> list[list[int | None]]:
    """Number the distinct answers of each problem for majority voting.

    ``problems[p]`` lists ``(extracted, correct)`` per sample in sample order, with ``extracted``
    None for samples that do not vote. All correct samples share one group. Wrong answers are
    grouped by :func:`answer_key`, then greedily: each new wrong answer joins the first earlier
    group whose representative math-verify finds equivalent to it (unknown counts as different).
    Groups are numbered from 0 in the order of their first sample. Cost: one parallel
    math-verify round per distinct wrong answer, comparing it with the existing groups.
    """
    # per problem: answer_key -> cluster index among wrong answers; cluster representatives
    key_cluster: list[dict[str, int]] = [{} for _ in problems]
    reps: list[list[str]] = [[] for _ in problems]
    distinct: list[list[tuple[str, str]]] = []
    for samples in problems:
        seen: dict[str, str] = {}
        for extracted, correct in samples:
            if extracted is not None and not correct:
                seen.setdefault(answer_key(extracted), extracted)
        distinct.append(list(seen.items()))
    rounds = max((len(d) for d in distinct), default=0)
    for r in range(rounds):
        pairs: list[tuple[int, int, str]] = []  # (problem, cluster, key)
        checks: list[tuple[str, str]] = []
        for p, d in enumerate(distinct):
            if r < len(d):
                key, text = d[r]
                for c, rep in enumerate(reps[p]):
                    pairs.append((p, c, key))
                    checks.append((text, rep))
        verdicts = equivalent_many(checks, timeout_s=timeout_s, workers=workers) if checks else []
        joined: dict[int, int] = {}
        for (p, c, _), same in zip(pairs, verdicts, strict=True):
            if same is True and p not in joined:
                joined[p] = c
        for p, d in enumerate(distinct):
            if r < len(d):
                key, text = d[r]
                if p in joined:
                    key_cluster[p][key] = joined[p]
                else:
                    key_cluster[p][key] = len(reps[p])
                    reps[p].append(text)
    out: list[list[int | None]] = []
    for p, samples in enumerate(problems):
        labels: dict[object, int] = {}
        groups: list[int | None] = []
        for extracted, correct in samples:
            if correct:
                label: object = "correct"
            elif extracted is None:
                groups.append(None)
                continue
            else:
                label = key_cluster[p][answer_key(extracted)]
            groups.append(labels.setdefault(label, len(labels)))
        out.append(groups)
    return out


def evaluate_model(
    benchmarks: Sequence[Benchmark],
    backend: GenerationBackend,
    params: EvaluationParams,
    *,
    model: str,
    timeout_s: float = 5.0,
    workers: int | None = None,
    judge_backend: Callable[[], GenerationBackend] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Evaluate ``backend``'s model (labelled ``model``) on ``benchmarks``.

    Returns ``(rows, summary)``: rows of the ``eval_samples`` schema, and per benchmark the
    counts of problems read, evaluated, excluded as ungradable and judged (the metrics stage
    reads ``excluded_ungradable`` from it). ``judge_backend`` is called (once, and only when
    the judge is enabled and some sample needs it) to get the judge's backend.
    """
    judge = params.judge
    judge_ungradable = judge.enabled and "ungradable_reference" in judge.when
    judge_statuses = set(judge.when) & {"timeout", "error"} if judge.enabled else set()
    gradable = check_references(
        (r["answer"] for b in benchmarks for r in b.rows), timeout_s=timeout_s
    )
    summary: dict[str, Any] = {}
    selected: list[tuple[Benchmark, dict[str, str]]] = []
    for b in benchmarks:
        ungradable = [r for r in b.rows if gradable[r["answer"]] is not None]
        kept = [r for r in b.rows if gradable[r["answer"]] is None or judge_ungradable]
        selected.extend((b, r) for r in kept)
        summary[b.name] = {
            **b.summary(),
            "evaluated": len(kept),
            "ungradable_reference": len(ungradable),
            "excluded_ungradable": len(b.rows) - len(kept),
            "ungradable_reasons": dict(
                Counter(str(gradable[r["answer"]]).split(":")[0] for r in ungradable)
            ),
        }
    requests = [
        GenerationRequest(
            prompt=rollout_prompt(backend.tokenizer, r["problem"], params.answer_instruction),
            n=params.samples_per_problem,
            seed=derive_seed(params.seed, "eval", b.name, r["problem_id"]),
        )
        for b, r in selected
    ]
    outputs = backend.generate(requests, sampling_from(params.sampling), progress=progress)
    flat = [
        (b, r, req, j, c)
        for (b, r), req, comps in zip(selected, requests, outputs, strict=True)
        for j, c in enumerate(comps)
    ]
    grades = grade_many(
        [(c.text, r["answer"], c.finish_reason) for _, r, _, _, c in flat],
        timeout_s=timeout_s,
        workers=workers,
    )

    # The judge: samples with a finished answer that math-verify did not call correct.
    verdicts: list[str | None] = [None] * len(flat)
    asks: list[tuple[int, JudgeItem]] = []
    for i, ((b, r, _, _, _), g) in enumerate(zip(flat, grades, strict=True)):
        if g.status not in VOTING_STATUSES or g.status == "correct" or not g.extracted:
            continue
        ungradable_ref = gradable[r["answer"]] is not None
        if (ungradable_ref and judge_ungradable) or g.status in judge_statuses:
            key = f"{b.name}/{r['problem_id']}"
            asks.append((i, JudgeItem(key, r["problem"], r["answer"], g.extracted.strip())))
    if asks:
        if judge_backend is None:
            raise ValueError("the judge is enabled but no judge backend was given")
        answers = run_judge([it for _, it in asks], judge_backend(), judge)
        for (i, _), v in zip(asks, answers, strict=True):
            verdicts[i] = v

    correct = [
        g.status == "correct" or v == EQUIVALENT for g, v in zip(grades, verdicts, strict=True)
    ]
    # Group answers per problem for maj@k (flat is ordered problem by problem).
    spans: list[tuple[int, int]] = []
    start = 0
    for comps in outputs:
        spans.append((start, start + len(comps)))
        start += len(comps)
    votes = [
        [
            (
                grades[i].extracted if grades[i].status in VOTING_STATUSES or correct[i] else None,
                correct[i],
            )
            for i in range(lo, hi)
        ]
        for lo, hi in spans
    ]
    groups = [g for gs in answer_groups(votes, timeout_s=timeout_s, workers=workers) for g in gs]

    rows = []
    for i, ((b, r, req, j, c), g) in enumerate(zip(flat, grades, strict=True)):
        rows.append(
            {
                "eval_id": f"{b.name}/{r['problem_id']}/{j}",
                "model": model,
                "benchmark": b.name,
                "problem_id": r["problem_id"],
                "sample_id": j,
                "reference": r["answer"],
                "reference_gradable": gradable[r["answer"]] is None,
                "completion": c.text,
                "n_tokens": c.n_tokens,
                "finish_reason": c.finish_reason,
                "seed": derive_seed(req.seed, j),
                "status": g.status,
                "extracted": g.extracted,
                "detail": g.detail,
                "judge_verdict": verdicts[i],
                "correct": correct[i],
                "answer_group": groups[i],
            }
        )
    for b in benchmarks:
        judged = Counter(v for (bb, *_), v in zip(flat, verdicts, strict=True) if bb is b and v)
        summary[b.name]["samples"] = sum(1 for bb, *_ in flat if bb is b)
        summary[b.name]["judged"] = dict(sorted(judged.items()))
    return rows, summary


def check_references(answers: Iterable[str], *, timeout_s: float = 5.0) -> dict[str, str | None]:
    """``reference_problem`` of each distinct answer: None where the grader can check answers
    against it, else the reason (prose, ellipsis, unparseable, ...)."""
    from ..grading import reference_problem

    return {a: reference_problem(a, timeout_s=timeout_s) for a in dict.fromkeys(answers)}


def open_judge(
    model_dir: str | Path,
    backend: GenerationBackend,
    judge_model_dir: str | Path | None,
    backend_params: BackendParams | None,
    judge: JudgeParams,
) -> GenerationBackend:
    """The judge's backend: the evaluated one when the judge is the evaluated model and
    ``judge.backend`` is unset; otherwise ``judge_model_dir`` loaded with ``backend_params`` and
    the keys of ``judge.backend`` (its own server, say)."""
    from ..backends import load_backend

    if judge_model_dir is None:
        raise ConfigError("evaluation.judge.enabled needs the stage's --judge-model")
    same_model = Path(judge_model_dir).resolve() == Path(model_dir).resolve()
    if same_model and not judge.backend:
        return backend
    if backend_params is None:
        raise ValueError("a judge on another model or backend needs backend_params")
    merge = backend_with if same_model else backend_for_model
    params = merge(backend_params, judge.backend)
    params.check_complete("evaluation.judge.backend")
    return load_backend(judge_model_dir, params)


def write_eval_samples(
    name: str,
    model_dir: str | Path,
    problems_path: str | Path,
    benchmarks_path: str | Path,
    out_path: str | Path,
    params: EvaluationParams,
    grading: GradingParams,
    backend: GenerationBackend,
    *,
    judge_model_dir: str | Path | None = None,
    backend_params: BackendParams | None = None,
    pass_rates_path: str | Path | None = None,
) -> dict[str, Any]:
    """The ``evaluate`` stage for the model labelled ``name`` (loaded in ``backend`` from
    ``model_dir``); returns the summary per benchmark.

    The judge (when enabled and needed) is the model at ``judge_model_dir``: the same backend
    when it is the evaluated model and ``evaluation.judge.backend`` is unset, otherwise one
    loaded with ``backend_params`` and the keys of ``evaluation.judge.backend`` (its own
    server, say).
    """
    # a `source: train, subset: selected` benchmark keeps the problems the grades stage passed on
    selected = selected_problem_ids(pass_rates_path) if pass_rates_path is not None else None
    benchmarks = read_benchmarks(
        benchmarks_path, params.benchmarks, read_problems(problems_path), selected
    )

    judges: list[GenerationBackend] = []

    def judge_backend() -> GenerationBackend:
        judges.append(open_judge(model_dir, backend, judge_model_dir, backend_params, params.judge))
        return judges[-1]

    total = sum(len(b.rows) for b in benchmarks)
    with progress_bar(total, f"evaluate {name}") as tick:
        rows, summary = evaluate_model(
            benchmarks,
            backend,
            params,
            model=name,
            timeout_s=grading.timeout_s,
            workers=grading.workers,
            judge_backend=judge_backend,
            progress=tick,
        )
    provenance = {
        "model": name,
        "backend": backend.describe(),
        "judge_backend": judges[0].describe() if judges else None,
        "params": params.model_dump(mode="json"),
    }
    write_artifact(rows, out_path, "eval_samples", provenance=provenance, summary=summary)
    return summary
