r"""The project's one grader: rollouts, leak filtering, RL reward and evaluation all call this.

Statuses (:data:`Status`) and the order in which they are decided for :func:`grade`:

1. ``extracted`` is :func:`~intervention_training.answers.extract_last_boxed` of the prediction
   (content of the last ``\boxed{}``/``\fbox{}``), computed in every case.
2. ``finish_reason == "length"`` -> ``"truncated"``, *whatever the box says*: a cut-off output is
   not a finished answer (its last box may be an intermediate result), and the pipeline must
   tell it apart from a wrong one. ``extracted`` is still filled for analysis. No equivalence
   check is run.
3. No box, or an empty box -> ``"no_answer"``.
4. Otherwise the extracted answer is compared with the reference by mathematical equivalence
   (math-verify, configured as in ``_equivalence.py``: units are not stripped from references,
   symbol case is kept, ``50\%`` means 0.5) -> ``"correct"`` or ``"incorrect"``.
5. The comparison ran past ``timeout_s`` -> ``"timeout"`` (the worker process is killed and
   replaced; the limit is hard, in any thread). An exception inside math-verify/sympy, or a
   crashed worker -> ``"error"`` with the exception in ``detail``.

Only ``"correct"`` is a success. Time limits: the comparison runs in a pool of persistent worker
processes (``_pool.py``), started lazily, shared by all calls in the process, killed at exit.

Untrusted text never reaches ``eval``/``exec``/``sympify``/``parse_expr``; only the LaTeX grammar
of latex2sympy parses it, in a worker process.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from ..answers import extract_last_boxed
from ._pool import WorkerCrash, WorkerTimeout, default_workers, get_pool, shutdown_pool

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Grade",
    "Status",
    "STATUSES",
    "grade",
    "grade_many",
    "is_equivalent",
    "reference_problem",
    "shutdown_pool",
]

Status = Literal["correct", "incorrect", "no_answer", "truncated", "timeout", "error"]
STATUSES: tuple[str, ...] = ("correct", "incorrect", "no_answer", "truncated", "timeout", "error")

#: Per-item limit in seconds. Ordinary answers take 1-30 ms; 5 s leaves ample room.
DEFAULT_TIMEOUT_S: float = 5.0
_GROUP_CHUNK = 8


@dataclass(frozen=True)
class Grade:
    """Outcome of grading one prediction.

    Attributes:
        status: one of :data:`STATUSES`.
        extracted: content of the prediction's last ``\\boxed{}`` (``None`` when there is none).
        detail: why, when useful: the error message, the time limit hit, the rule that decided
            (e.g. ``"equal after removing the candidate's unit"``), or ``None``.
    """

    status: str
    extracted: str | None
    detail: str | None = None

    @property
    def is_correct(self) -> bool:
        """True only for status ``"correct"``."""
        return self.status == "correct"


# -- worker calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["value", "timeout", "error"]
    value: Any = None
    detail: str | None = None


def _outcome(fn: Callable[[], dict[str, Any]], timeout_s: float) -> _Outcome:
    try:
        resp = fn()
    except WorkerTimeout:
        return _Outcome("timeout", detail=f"exceeded {timeout_s:g} s")
    except WorkerCrash as exc:
        return _Outcome("error", detail=f"WorkerCrash: {exc}")
    except Exception as exc:  # noqa: BLE001 - protocol failures become "error", never raise
        return _Outcome("error", detail=f"{type(exc).__name__}: {exc}")
    if resp.get("ok"):
        return _Outcome("value", value=resp.get("value"), detail=resp.get("detail"))
    return _Outcome("error", detail=str(resp.get("error")))


def _check_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise ValueError("timeout_s must be positive")


def _call(request: dict[str, Any], timeout_s: float) -> _Outcome:
    _check_timeout(timeout_s)
    return _outcome(lambda: get_pool().call(request, timeout_s), timeout_s)


def _call_many(
    requests: Sequence[dict[str, Any]], timeout_s: float, workers: int | None
) -> list[_Outcome]:
    """Run requests on up to ``workers`` worker processes in parallel; order preserved.

    Requests are grouped by reference (in chunks of at most ``_GROUP_CHUNK``); each thread
    leases one worker and takes whole chunks from a shared queue, so a reference is mostly
    parsed once per worker (workers cache parses) and the load stays balanced.
    """
    _check_timeout(timeout_s)
    if not requests:
        return []
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(str(r.get("reference")), []).append(i)
    # Chunks of at most _GROUP_CHUNK keep the queue balanced when one reference has many
    # slow items (each may cost the full timeout).
    chunks = [
        g[k : k + _GROUP_CHUNK] for g in groups.values() for k in range(0, len(g), _GROUP_CHUNK)
    ]
    queue = deque(sorted(chunks, key=len, reverse=True))
    n = min(max(1, workers or default_workers()), len(queue))
    pool = get_pool()
    pool.ensure_capacity(n)
    results: list[_Outcome | None] = [None] * len(requests)
    lock = threading.Lock()

    def run() -> None:
        with pool.lease() as lease:
            while True:
                with lock:
                    if not queue:
                        return
                    idxs = queue.popleft()
                for i in idxs:
                    req = requests[i]
                    results[i] = _outcome(lambda req=req: lease.call(req, timeout_s), timeout_s)

    if n == 1:
        run()
    else:
        with ThreadPoolExecutor(max_workers=n) as ex:
            for fut in [ex.submit(run) for _ in range(n)]:
                fut.result()
    return [r if r is not None else _Outcome("error", detail="not run") for r in results]


def _equiv_request(candidate: str, reference: str) -> dict[str, Any]:
    return {"op": "equiv", "candidate": candidate, "reference": reference}


def _grade_from_outcome(extracted: str, out: _Outcome) -> Grade:
    if out.kind == "timeout":
        return Grade("timeout", extracted, out.detail)
    if out.kind == "error":
        return Grade("error", extracted, out.detail)
    return Grade("correct" if out.value else "incorrect", extracted, out.detail)


def _pre_grade(prediction: str, finish_reason: str | None) -> tuple[Grade | None, str | None]:
    """Decide the statuses that need no equivalence check; return (grade or None, extracted)."""
    extracted = extract_last_boxed(prediction or "")
    if finish_reason == "length":
        return Grade("truncated", extracted, "finish_reason=length"), extracted
    if extracted is None:
        return Grade("no_answer", None, "no \\boxed{} answer"), None
    if not extracted.strip():
        return Grade("no_answer", extracted, "empty \\boxed{}"), extracted
    return None, extracted


# -- public API -----------------------------------------------------------------------------------


def grade(
    prediction: str,
    reference: str,
    *,
    finish_reason: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Grade:
    """Grade one full model output against a reference answer.

    Args:
        prediction: the complete model output (untrusted).
        reference: the reference short answer (LaTeX, with or without ``$...$``).
        finish_reason: the generator's finish reason; ``"length"`` means cut off.
        timeout_s: hard limit in seconds for the equivalence check (not counting a worker's
            first start-up).

    Returns:
        A :class:`Grade`; never raises for bad input (failures become ``"error"``).
    """
    pre, extracted = _pre_grade(prediction, finish_reason)
    if pre is not None:
        return pre
    assert extracted is not None
    return _grade_from_outcome(extracted, _call(_equiv_request(extracted, reference), timeout_s))


def grade_many(
    items: Iterable[tuple[str, str]] | Iterable[tuple[str, str, str | None]],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    cache: MutableMapping[tuple[str, str], Grade] | None = None,
) -> list[Grade]:
    """Grade many ``(prediction, reference[, finish_reason])`` items; order preserved.

    Identical ``(extracted answer, reference)`` pairs are verified once. The checks run on up to
    ``workers`` processes in parallel (default: the CPU count, at most 8); each item keeps its
    own hard ``timeout_s``. Safe to call from any thread. ``cache``, when given, carries verdicts
    of ``(extracted, reference)`` pairs across calls (a caller grading a stream batch by batch
    passes the same mapping each time): pairs found there are not verified again, new verdicts
    are added to it.
    """
    grades: list[Grade | None] = []
    pending: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        if len(item) == 2:
            prediction, reference = item  # type: ignore[misc]
            finish_reason = None
        elif len(item) == 3:
            prediction, reference, finish_reason = item  # type: ignore[misc]
        else:
            raise ValueError(f"item {i}: expected 2 or 3 fields, got {len(item)}")
        pre, extracted = _pre_grade(prediction, finish_reason)
        grades.append(pre)
        if pre is None:
            assert extracted is not None
            known = cache.get((extracted, reference)) if cache is not None else None
            if known is not None:
                grades[-1] = known
            else:
                pending.setdefault((extracted, reference), []).append(i)
    keys = list(pending)
    outcomes = _call_many([_equiv_request(c, r) for c, r in keys], timeout_s, workers)
    for key, out in zip(keys, outcomes, strict=True):
        g = _grade_from_outcome(key[0], out)
        if cache is not None:
            cache[key] = g
        for i in pending[key]:
            grades[i] = g
    return [g for g in grades if g is not None]


def is_equivalent(
    candidate: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool | None:
    """Whether two bare answers (no ``\\boxed``) are mathematically equal.

    ``reference``'s symbols keep their meaning (see module notes). Returns ``None`` on timeout
    or error, so callers must treat ``None`` as "unknown", not as "different".
    """
    out = _call(_equiv_request(candidate, reference), timeout_s)
    return bool(out.value) if out.kind == "value" else None


def equivalent_many(
    pairs: Sequence[tuple[str, str]],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
) -> list[bool | None]:
    """:func:`is_equivalent` for many ``(candidate, reference)`` pairs, deduplicated, parallel."""
    uniq = list(dict.fromkeys(pairs))
    outs = _call_many([_equiv_request(c, r) for c, r in uniq], timeout_s, workers)
    verdict = {
        k: (bool(o.value) if o.kind == "value" else None) for k, o in zip(uniq, outs, strict=True)
    }
    return [verdict[p] for p in pairs]


def reference_problem(reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """``None`` if the grader can check answers against ``reference``, else a short reason.

    Reasons: ``"empty"``, ``"unparseable: <parser message>"``, ``"prose: <words>"`` (the answer
    is words or carries conditions in words), ``"ellipsis"`` (``1,2,\\ldots,n`` would lose its
    meaning), ``"timeout: ..."``/``"error: ..."`` (parsing the reference itself failed).
    Problems with a non-``None`` reason should be dropped: answers to them cannot be checked.
    """
    if not reference or not reference.strip():
        return "empty"
    out = _call({"op": "reference", "reference": reference}, timeout_s)
    if out.kind == "value":
        return out.value
    return f"{out.kind}: {out.detail}"
