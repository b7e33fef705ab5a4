r"""Grading throughput: the project's grader against the paper authors' fork-per-answer approach.

Usage (from the repository root):

    .venv/bin/python bench/grading.py [--quick] [--pairs N] [--problems P] [--timeout S]

Part 1 (distinct pairs). Reference answers come from ``../shared/data`` (IMO-AnswerBench v2,
MATH-500, AIME 2024/2025, HMMT February; MATH train tops up when needed); references the grader
cannot check (``reference_problem`` not None: prose, ellipsis, unparseable) are left out. Each
reference yields predictions in equivalent forms (boxed inside a sentence, extra spaces,
``\dfrac``, ``a/b``, a decimal, ``n.0``) and wrong forms (``n+1``, the reciprocal, ``17``, the
expression plus one). Both graders see the same full predictions:

* ``grade_many`` -- the project's grader (persistent worker pool, one process per CPU, parse
  cache, hard per-item deadline);
* ``fork per answer`` -- what the authors' scripts do: for every answer a
  ``multiprocessing.Process`` (fork) runs ``math_verify.verify(parse("$ref$"), parse(pred))``,
  the parent ``join``s it with the time limit and kills it if it is still alive.

Both sides get their imports done before timing (the forked child inherits the parent's loaded
math-verify; the worker pool is started and warmed). Reported: throughput, ratio, verdict
agreement (and the disagreements), and a pathological answer under a 1 s limit in both.

Part 2 (repetition). Evaluation with 128 samples per problem where the extracted answers repeat:
per problem, 128 predictions (distinct texts) drawn from 4 distinct boxed answers. Compared:
``grade_many`` (verifies each distinct (answer, reference) once), the same worker pool without
the deduplication (every sample verified, same parallelism), a sequential loop of ``grade()``
calls, and fork-per-sample. Verdicts must be identical across the project's three paths.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing as mp
import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, machine, table

from intervention_training.grading import (
    _call_many,
    _equiv_request,
    _grade_from_outcome,
    _pre_grade,
    grade,
    grade_many,
    reference_problem,
    shutdown_pool,
)

logging.getLogger("math_verify").setLevel(logging.CRITICAL)
logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)

PATHOLOGICAL = ("The answer is \\boxed{9^{9^{9^{9^{9}}}}}.", "2")

# -- data -----------------------------------------------------------------------------------------


def _jsonl(path: Path, key: str) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                v = json.loads(line).get(key)
                if isinstance(v, str | int) and str(v).strip():
                    out.append(str(v))
    return out


def load_references(data: Path = SHARED_DATA) -> list[tuple[str, str]]:
    """(source, reference) for every benchmark answer, then MATH train answers."""
    b = data / "benchmarks"
    refs: list[tuple[str, str]] = []
    with (b / "imo_answerbench_v2.csv").open(newline="", encoding="utf-8") as f:
        refs += [("imo_answerbench", row["Short Answer"]) for row in csv.DictReader(f)]
    refs += [("math500", a) for a in _jsonl(b / "math500.jsonl", "answer")]
    for name in ("aime_2024_I", "aime_2024_II", "aime_2025_I", "aime_2025_II"):
        refs += [("aime", a) for a in _jsonl(b / f"{name}.jsonl", "answer")]
    for name in ("hmmt_feb_2024", "hmmt_feb_2025"):
        refs += [("hmmt", a) for a in _jsonl(b / f"{name}.jsonl", "answer")]
    refs += [("math_train", a) for a in _jsonl(data / "train" / "math_train.jsonl", "answer")]
    return refs


def checkable(refs: list[tuple[str, str]], need: int) -> list[tuple[str, str]]:
    """The first references (in order, deduplicated) the grader can check, about ``need`` many."""
    seen: dict[str, str] = {}
    for src, r in refs:
        seen.setdefault(r, src)
    # Interleave the sources (round robin) so that every data set is represented.
    by_src: dict[str, list[str]] = {}
    for r, src in seen.items():
        by_src.setdefault(src, []).append(r)
    order = [
        (r, src)
        for k in range(len(seen))
        for src, rs in by_src.items()
        if k < len(rs)
        for r in [rs[k]]
    ]
    cands = order[: max(need * 2, 50)]
    with ThreadPoolExecutor(max_workers=4) as ex:
        reasons = list(ex.map(lambda rs: reference_problem(rs[0]), cands))
    return [(src, r) for (r, src), why in zip(cands, reasons, strict=True) if why is None][:need]


_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_INT = re.compile(r"^-?\d+$")


def _core(ref: str) -> str:
    s = ref.strip().rstrip(".").strip()
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$").strip().rstrip(".").strip()
    return s


def variants(ref: str) -> list[tuple[str, str]]:
    """(form name, bare answer) pairs: equivalent forms first, then wrong ones."""
    c = _core(ref)
    out = [("same", c), ("spaces", re.sub(r"\s*([,+=]|\\cdot)\s*", r" \1 ", c).strip())]
    if "\\frac" in c:
        out.append(("dfrac", c.replace("\\frac", "\\dfrac")))
    m = _FRAC.match(c)
    if m:
        sign, a, bb = m.group(1), int(m.group(2)), int(m.group(3))
        out.append(("a/b", f"{sign}{a}/{bb}"))
        v = Fraction(a, bb)
        d = bb
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1 and bb > 0:
            out.append(("decimal", f"{sign}{float(v):g}"))
        if a:
            out.append(("wrong: reciprocal", f"{sign}\\frac{{{bb}}}{{{a}}}"))
    elif _INT.match(c):
        out.append(("n.0", f"{int(c)}.0"))
        out.append(("wrong: n+1", str(int(c) + 1)))
    else:
        out.append(("wrong: +1", f"{c}+1"))
    out.append(("wrong: 17", "17"))
    return out


def prediction(form: str, answer: str, k: int) -> str:
    """A full model output carrying ``answer`` in a box (three sentence styles)."""
    if k % 3 == 0:
        return f"Reasoning... so we conclude.\n\nThe answer is $\\boxed{{{answer}}}$."
    if k % 3 == 1:
        return f"Step 1: compute.\n\nStep 2: simplify.\n\nFinal answer: \\boxed{{{answer}}}"
    return f"Thus the value is \\boxed{{{answer}}}, as required."


@dataclass
class Pair:
    source: str
    reference: str
    form: str
    prediction: str


def build_pairs(n_pairs: int, data: Path = SHARED_DATA) -> list[Pair]:
    """At least ``n_pairs`` (prediction, reference) pairs, a few forms per reference."""
    refs = load_references(data)
    pairs: list[Pair] = []
    want = max(4, n_pairs // 4 + 8)
    while True:
        chosen = checkable(refs, want)
        pairs = []
        for src, r in chosen:
            for k, (form, ans) in enumerate(variants(r)):
                pairs.append(Pair(src, r, form, prediction(form, ans, k)))
        if len(pairs) >= n_pairs or want >= len(refs):
            return pairs[:n_pairs]
        want *= 2


# -- the authors' approach: one forked process per answer -----------------------------------------


def _fork_child(pred: str, ref: str, conn: Any) -> None:
    from math_verify import parse, verify

    try:
        conn.send(bool(verify(parse(f"${ref}$"), parse(pred))))
    except Exception:  # noqa: BLE001
        conn.send(False)
    finally:
        conn.close()


def fork_verify(pred: str, ref: str, timeout_s: float) -> bool | None:
    """The authors' pattern: Process per answer, join with timeout, kill if alive.

    Returns the verdict, or None when the limit was hit (counted as wrong by the authors).
    """
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_fork_child, args=(pred, ref, send))
    p.start()
    send.close()
    p.join(timeout_s)
    if p.is_alive():
        p.kill()
        p.join()
        recv.close()
        return None
    try:
        return recv.recv() if recv.poll() else False
    except EOFError:
        return False
    finally:
        recv.close()


def warm_fork_parent() -> None:
    """Import and warm math-verify in the parent so every forked child inherits it."""
    from math_verify import parse, verify

    verify(parse("$1$"), parse("\\boxed{1}"))


# -- the project's grader -------------------------------------------------------------------------


def fresh_pool(workers: int | None) -> None:
    """A new, started and warm worker pool (start-up is not timed)."""
    shutdown_pool()
    grade_many([(f"\\boxed{{{i}}}", str(i)) for i in range(16)], workers=workers)


def grade_every_sample(items: list[tuple[str, str]], timeout_s: float, workers: int | None):
    """grade_many's parallel path with the (answer, reference) deduplication switched off."""
    pre = [_pre_grade(p, None) for p, _ in items]
    todo = [i for i, (g, _) in enumerate(pre) if g is None]
    outs = _call_many(
        [_equiv_request(pre[i][1], items[i][1]) for i in todo],
        timeout_s,
        workers,  # type: ignore[arg-type]
    )
    grades = [g for g, _ in pre]
    for i, o in zip(todo, outs, strict=True):
        grades[i] = _grade_from_outcome(pre[i][1], o)  # type: ignore[arg-type]
    return grades


# -- benchmarks -----------------------------------------------------------------------------------


@dataclass
class Result:
    rows: list[list[Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def bench_distinct(
    n_pairs: int, timeout_s: float, workers: int | None, data: Path = SHARED_DATA
) -> Result:
    pairs = build_pairs(n_pairs, data)
    items = [(p.prediction, p.reference) for p in pairs]
    res = Result()
    res.info["pairs"] = len(pairs)
    res.info["references"] = len({p.reference for p in pairs})
    res.info["by_source"] = dict(Counter(p.source for p in pairs))

    fresh_pool(workers)
    t0 = time.perf_counter()
    ours = grade_many(items, timeout_s=timeout_s, workers=workers)
    t_ours1 = time.perf_counter() - t0

    warm_fork_parent()
    t0 = time.perf_counter()
    theirs = [fork_verify(p, r, timeout_s) for p, r in items]
    t_fork = time.perf_counter() - t0

    fresh_pool(workers)  # second run of ours after the baseline, to see the noise
    t0 = time.perf_counter()
    ours2 = grade_many(items, timeout_s=timeout_s, workers=workers)
    t_ours2 = time.perf_counter() - t0
    assert [g.status for g in ours] == [g.status for g in ours2]

    n = len(items)
    t_ours = min(t_ours1, t_ours2)
    res.rows = [
        ["fork per answer (authors)", n, t_fork, n / t_fork, 1.0],
        ["grade_many, run 1", n, t_ours1, n / t_ours1, t_fork / t_ours1],
        ["grade_many, run 2", n, t_ours2, n / t_ours2, t_fork / t_ours2],
    ]
    res.info["ratio"] = t_fork / t_ours
    res.info["ratio_worst"] = t_fork / max(t_ours1, t_ours2)

    ours_ok = [g.status == "correct" for g in ours]
    theirs_ok = [bool(v) for v in theirs]
    agree = sum(a == b for a, b in zip(ours_ok, theirs_ok, strict=True))
    res.info["agreement"] = agree / n
    res.info["statuses"] = dict(Counter(g.status for g in ours))
    res.info["fork_timeouts"] = sum(v is None for v in theirs)
    dis = []
    for p, g, t in zip(pairs, ours, theirs, strict=True):
        if (g.status == "correct") != bool(t):
            dis.append((p.source, p.reference, p.form, g.extracted, g.status, t))
    res.info["disagreements"] = dis
    # expected answer: 'same'..'n.0' forms are equivalent, 'wrong:' forms are not
    expect = [not p.form.startswith("wrong") for p in pairs]
    res.info["ours_vs_expected"] = sum(a == b for a, b in zip(ours_ok, expect, strict=True)) / n
    res.info["fork_vs_expected"] = sum(a == b for a, b in zip(theirs_ok, expect, strict=True)) / n
    return res


def bench_limits(limit_s: float, workers: int | None) -> list[list[Any]]:
    """A pathological answer under a ``limit_s`` hard limit in both approaches."""
    pred, ref = PATHOLOGICAL
    fresh_pool(workers)
    t0 = time.perf_counter()
    g = grade(pred, ref, timeout_s=limit_s)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = fork_verify(pred, ref, limit_s)
    t_fork = time.perf_counter() - t0
    return [
        ["grade()", limit_s, t_ours, g.status, t_ours <= limit_s + 1.0],
        [
            "fork per answer",
            limit_s,
            t_fork,
            "timeout" if v is None else str(v),
            t_fork <= limit_s + 1.0,
        ],
    ]


def repetition_items(n_problems: int, samples: int, seed: int, data: Path = SHARED_DATA):
    """Per problem ``samples`` predictions drawn from 4 distinct answers (2 right, 2 wrong)."""
    rng = random.Random(seed)
    refs = checkable(load_references(data), n_problems * 2)
    items: list[tuple[str, str]] = []
    for _, r in refs[:n_problems]:
        forms = variants(r)
        right = [a for f, a in forms if not f.startswith("wrong")][:2]
        wrong = [a for f, a in forms if f.startswith("wrong")][:2]
        pool = (right + wrong)[:4]
        weights = [rng.random() + 0.1 for _ in pool]
        for j in range(samples):
            ans = rng.choices(pool, weights)[0]
            items.append((f"Sample {j}: a long reasoning trace...\n\n\\boxed{{{ans}}}", r))
    return items


def bench_repetition(
    n_problems: int,
    samples: int,
    timeout_s: float,
    workers: int | None,
    fork_problems: int,
    data: Path = SHARED_DATA,
) -> Result:
    items = repetition_items(n_problems, samples, 0, data)
    res = Result()
    n = len(items)
    distinct = len({(_pre_grade(p, None)[1], r) for p, r in items})
    res.info.update(samples=n, distinct=distinct, problems=n_problems)

    fresh_pool(workers)
    t0 = time.perf_counter()
    dedup = grade_many(items, timeout_s=timeout_s, workers=workers)
    t_dedup = time.perf_counter() - t0

    fresh_pool(workers)
    t0 = time.perf_counter()
    every = grade_every_sample(items, timeout_s, workers)
    t_every = time.perf_counter() - t0

    fresh_pool(1)
    t0 = time.perf_counter()
    seq = [grade(p, r, timeout_s=timeout_s) for p, r in items]
    t_seq = time.perf_counter() - t0

    same = [g.status for g in dedup] == [g.status for g in every] == [g.status for g in seq]
    res.info["identical_verdicts"] = same

    sub = items[: fork_problems * samples]
    warm_fork_parent()
    t0 = time.perf_counter()
    forks = [fork_verify(p, r, timeout_s) for p, r in sub]
    t_fork = time.perf_counter() - t0
    fork_rate = len(sub) / t_fork
    res.info["fork_agreement"] = sum(
        bool(v) == (g.status == "correct") for v, g in zip(forks, dedup, strict=False)
    ) / max(1, len(sub))
    rate_dedup = n / t_dedup
    res.rows = [
        ["fork per sample (authors)", len(sub), t_fork, fork_rate, rate_dedup / fork_rate],
        ["sequential grade() per sample", n, t_seq, n / t_seq, t_seq / t_dedup],
        ["grade_many, no dedup (every sample)", n, t_every, n / t_every, t_every / t_dedup],
        ["grade_many (dedup)", n, t_dedup, rate_dedup, 1.0],
    ]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 pairs, 4 problems x 128")
    ap.add_argument("--pairs", type=int, default=None, help="distinct pairs (default 2400)")
    ap.add_argument("--problems", type=int, default=None, help="repetition: problems (16)")
    ap.add_argument("--fork-problems", type=int, default=None, help="fork baseline subset (4)")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=5.0, help="per-answer limit, s")
    ap.add_argument("--workers", type=int, default=None, help="grader workers (CPU count)")
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    args = ap.parse_args()
    if not (args.data / "benchmarks").is_dir():
        print(f"skipped: {args.data} not found (real reference answers are needed)")
        return 0
    n_pairs = args.pairs or (300 if args.quick else 2400)
    n_prob = args.problems or (4 if args.quick else 16)
    n_fork = args.fork_problems or (1 if args.quick else 4)

    print(f"machine: {machine()}\n")
    d = bench_distinct(n_pairs, args.timeout, args.workers, args.data)
    print(f"## distinct pairs: {d.info['pairs']} pairs, {d.info['references']} references")
    print(f"sources: {d.info['by_source']}\n")
    print(table(["grader", "pairs", "seconds", "pairs/s", "speed-up vs fork"], d.rows))
    print(
        f"\nspeed-up (best / worst run of ours): {d.info['ratio']:.1f}x / "
        f"{d.info['ratio_worst']:.1f}x (target >= 5x)"
    )
    print(f"verdict agreement: {100 * d.info['agreement']:.2f}%  ours: {d.info['statuses']}")
    print(
        f"matches the intended verdict of the form: ours {100 * d.info['ours_vs_expected']:.2f}%,"
        f" fork/default math-verify {100 * d.info['fork_vs_expected']:.2f}%;"
        f" fork timeouts: {d.info['fork_timeouts']}"
    )
    dis = d.info["disagreements"]
    print(f"\ndisagreements ({len(dis)}): source | reference | form | extracted | ours | fork")
    for src, ref, form, ext, st, t in dis[:40]:
        print(f"  {src} | {ref[:50]!r} | {form} | {str(ext)[:40]!r} | {st} | {t}")

    print("\n## hard time limit, pathological answer (power tower vs 2)")
    rows = bench_limits(1.0, args.workers)
    print(table(["approach", "limit s", "wall s", "verdict", "within limit + 1 s"], rows))

    r = bench_repetition(n_prob, args.samples, args.timeout, args.workers, n_fork, args.data)
    print(
        f"\n## repetition: {r.info['problems']} problems x {args.samples} samples = "
        f"{r.info['samples']} samples, {r.info['distinct']} distinct (answer, reference)"
    )
    print(table(["approach", "samples", "seconds", "samples/s", "grade_many is x faster"], r.rows))
    print(
        f"\nidentical verdicts (dedup / no dedup / sequential): {r.info['identical_verdicts']};"
        f" fork agreement on its subset: {100 * r.info['fork_agreement']:.1f}%"
    )
    shutdown_pool()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
