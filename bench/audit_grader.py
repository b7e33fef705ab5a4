"""Audit math-verify's normalisation traps on real reference answers, and time the grader.

Usage (from the repository root):

    .venv/bin/python bench/audit_grader.py [--csv PATH] [--examples N] [--throughput]

Reads the "Short Answer" column of IMO-AnswerBench v2 (default
``../shared/data/benchmarks/imo_answerbench_v2.csv``; exits cleanly with a message when absent)
and reports, for each trap, how many references math-verify's default handling changes, with
examples, and what this project's grader does instead:

* units   -- default ``units=True`` normalisation rewrites the reference text;
* case    -- default symbol lowercasing changes the parsed reference (and merges distinct symbols);
* percent -- references carrying a percent sign;
* prose   -- default ``parse(reference)`` silently turns a worded answer into some expression;
* a "wrong answer accepted" test: for each changed reference, the wrong candidate the trap
  makes equal (the unit-stripped text, the lowercased text) is verified by the default pipeline
  (``verify(parse(ref), parse(cand))``) and by our grader.

Also: references our grader cannot check (``reference_problem`` not None) by reason, and with
``--throughput``, pairs/s for sequential ``grade`` vs ``grade_many``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy  # noqa: E402
from latex2sympy2_extended.sets import FiniteSet  # noqa: E402
from math_verify import parse, verify  # noqa: E402

from intervention_training.grading import _equivalence as eq  # noqa: E402
from intervention_training.grading import (  # noqa: E402
    grade,
    grade_many,
    is_equivalent,
    reference_problem,
    shutdown_pool,
)

logging.getLogger("math_verify").setLevel(logging.CRITICAL)
DEFAULT_CSV = REPO.parent / "shared" / "data" / "benchmarks" / "imo_answerbench_v2.csv"
LOWER = ConversionConfig(lowercase_symbols=True)


def parse_with(text: str, conversion: ConversionConfig):
    return latex2sympy(
        text,
        is_real=True,
        convert_degrees=False,
        normalization_config=None,
        conversion_config=conversion,
    )


def default_parse(ref: str):
    """What math-verify gives for the raw reference with all defaults (None if nothing)."""
    try:
        out = parse(ref)
    except Exception:  # noqa: BLE001
        return None
    sym = [x for x in out if not isinstance(x, str)]
    return sym[0] if sym else None


def default_verify(ref: str, cand: str) -> bool:
    try:
        return bool(verify(parse(ref), parse("$" + cand + "$")))
    except Exception:  # noqa: BLE001
        return False


def short(x: object, n: int = 70) -> str:
    s = " ".join(str(x).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def audit(answers: list[str], n_examples: int) -> None:
    print(f"references: {len(answers)} ({len(set(answers))} distinct)\n")

    # -- reference_problem ---------------------------------------------------------------------
    reasons = {a: reference_problem(a) for a in dict.fromkeys(answers)}
    by_reason = Counter((reasons[a] or "ok").split(":")[0] for a in answers)
    print("## references our grader cannot check (reference_problem), all rows")
    for k, v in by_reason.most_common():
        print(f"  {k:12} {v}")
    for kind in ("prose", "unparseable", "ellipsis"):
        ex = [a for a, r in reasons.items() if r and r.startswith(kind)][:n_examples]
        for a in ex:
            print(f"    e.g. {kind}: {short(a)!r} -> {short(reasons[a], 60)}")
    print()

    # -- units ---------------------------------------------------------------------------------
    unit_changed = []
    for a in reasons:
        ours = eq.prepare(a).text
        dflt = eq.prepare(a, units=True).text
        if ours != dflt:
            unit_changed.append((a, ours, dflt))
    print("## trap: unit stripping (default units=True)")
    print(f"  references whose text the default changes: {len(unit_changed)}")
    for a, ours, dflt in unit_changed[:n_examples]:
        print(f"    {short(a)!r}: ours {ours!r} -> default {dflt!r}")
    accepted_default = accepted_ours = 0
    for a, _, dflt in unit_changed:
        if default_verify(a, dflt):
            accepted_default += 1
        if is_equivalent(dflt, a):
            accepted_ours += 1
    print(
        f"  wrong candidate = stripped text: accepted by default pipeline {accepted_default}"
        f"/{len(unit_changed)}, by our grader {accepted_ours}/{len(unit_changed)}\n"
    )

    # -- case ----------------------------------------------------------------------------------
    case_changed, merged = [], []
    for a in reasons:
        if reasons[a] is not None:
            continue
        text = eq.prepare(a).text
        try:
            ours = parse_with(text, eq.CONVERSION)
            low = parse_with(text, LOWER)
        except Exception:  # noqa: BLE001
            continue
        if str(ours) != str(low):
            case_changed.append((a, ours, low))
            names = {str(s) for s in ours.free_symbols}
            if len({n.lower() for n in names}) < len(names):
                merged.append((a, ours, low))
    print("## trap: symbol lowercasing (default lowercase_symbols=True)")
    print(f"  checkable references with upper-case symbols: {len(case_changed)}")
    print(f"  of which two distinct symbols merge (e.g. R and r): {len(merged)}")
    shown = merged + [c for c in case_changed if c not in merged]
    for a, ours, low in shown[:n_examples]:
        print(f"    {short(a)!r}: ours {short(ours, 40)} -> default {short(low, 40)}")
    acc_d = acc_o = 0
    for a, _, _ in case_changed:
        wrong = re.sub(r"(?<!\\)\b([A-Z])", lambda m: m.group(1).lower(), eq.prepare(a).text)
        acc_d += default_verify(a, wrong)
        acc_o += bool(is_equivalent(wrong, a))
    print(
        f"  wrong candidate = lower-cased answer: accepted by default pipeline {acc_d}"
        f"/{len(case_changed)}, by our grader {acc_o}/{len(case_changed)}\n"
    )

    # -- percent -------------------------------------------------------------------------------
    pct = [a for a in answers if "%" in a or "percent" in a.lower()]
    for ref, cand in (("$2-2m$", "0"), ("5 m", "5"), ("$R-2r$", "-r")):
        print(
            f"    ref {ref!r} cand {cand!r}: default {default_verify(ref, cand)}, "
            f"ours {is_equivalent(cand, ref)}"
        )
    print()

    print("## trap: percent")
    print(f"  references with a percent sign or word: {len(pct)}")
    demo = [("50\\%", "0.5"), ("50\\%", "50"), ("0.5", "50\\%")]
    for ref, cand in demo:
        print(
            f"    ref {ref!r} cand {cand!r}: default {default_verify(ref, cand)}, "
            f"ours {is_equivalent(cand, ref)}"
        )
    print()

    # -- what default parse does with prose / non-checkable references --------------------------
    print("## default parse(reference) on references our grader refuses")
    silently = [(a, default_parse(a)) for a in answers if reasons[a] is not None]
    silently = [(a, d) for a, d in silently if d is not None]
    print(f"  refused by us but turned into an expression by default parse: {len(silently)}")
    for a, d in silently[:n_examples]:
        print(f"    {short(a, 60)!r} -> {short(d, 40)}")
    print()

    # -- overall differences ------------------------------------------------------------------
    differ, differ_ex, collapsed = 0, [], []
    for a in answers:
        if reasons[a] is not None:
            continue
        d = default_parse(a)
        try:
            o = eq.parse_answer(a)
        except eq.ParseFailure:
            o = None
        if str(d) != str(o):
            differ += 1
            differ_ex.append((a, d, o))
            if isinstance(o, FiniteSet) and not isinstance(d, FiniteSet):
                collapsed.append((a, d, o))
    n_ok = sum(reasons[a] is None for a in answers)
    print(f"## checkable references whose parse differs from default parse(): {differ}/{n_ok}")
    for a, d, o in differ_ex[: 2 * n_examples]:
        print(f"    {short(a, 50)!r}: default {short(d, 35)} | ours {short(o, 35)}")
    print(f"  of which a list answer collapses to one element (plain text, no $): {len(collapsed)}")


def throughput(answers: list[str], workers: list[int]) -> None:
    checkable = [a for a in answers if reference_problem(a) is None]
    cands = []
    for a in checkable:
        core = a.strip().strip("$").strip()
        cands.append((f"Reasoning...\n\n\\boxed{{{core}}}", a))  # correct
        cands.append(("Reasoning...\n\n\\boxed{17}", a))  # mostly wrong
    print(f"\n## throughput on {len(cands)} distinct pairs (fresh warm pool for each run)")
    warm = [(f"\\boxed{{{i}}}", str(i)) for i in range(16)]

    def fresh(w: int) -> None:
        shutdown_pool()
        grade_many(warm, workers=w)  # start w workers; their start-up is not timed

    fresh(1)
    t0 = time.perf_counter()
    seq = [grade(p, r) for p, r in cands]
    t_seq = time.perf_counter() - t0
    print(f"  sequential grade():      {len(cands) / t_seq:7.1f} pairs/s ({t_seq:.2f} s)")
    for w in workers:
        fresh(w)
        t0 = time.perf_counter()
        many = grade_many(cands, workers=w)
        t = time.perf_counter() - t0
        assert many == seq
        print(f"  grade_many(workers={w}):  {len(cands) / t:7.1f} pairs/s ({t:.2f} s)")
    st = Counter(g.status for g in seq)
    print(f"  statuses: {dict(st)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    if not args.csv.exists():
        print(f"skipped: {args.csv} not found")
        return 0
    with args.csv.open(newline="", encoding="utf-8") as f:
        answers = [row["Short Answer"] for row in csv.DictReader(f)]
    audit(answers, args.examples)
    if args.throughput:
        throughput(answers, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
