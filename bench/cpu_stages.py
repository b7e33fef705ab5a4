r"""The CPU stages at scale: rows/s and peak memory at 10k and 100k rows (1M with --full).

Usage (from the repository root):

    .venv/bin/python bench/cpu_stages.py [--quick] [--full] [--sizes N ...] [--leak-max N]

Synthetic rollouts (``--completion-chars``, default about 1,000 characters in 8 steps separated
by blank lines, the last with a ``\boxed{}`` answer; 10% cut off) and proposals (one or two per
attempt, an ``<intervention>`` JSON block; some unparseable, out of range, skipped, or stating the
answer) go through every stage that does not generate. Each stage is its library entry point,
the function its ``stages/<stage>.py`` script calls (``grades.write_grades``, ...), run in a
fresh subprocess with the repository's ``params.yaml`` (2 grading workers):

* ``artifacts (whole table)``: ``read_artifact`` + ``to_pylist`` + ``write_artifact`` of the
  rollouts (how every stage read and wrote before streaming), against
* ``artifacts (streamed)``: ``iter_artifact`` batch by batch into an ``ArtifactWriter``;
* ``grades``: the grades stage -- reference answers repeat (20 distinct, 4 extracted answers
  each), so the grader's deduplication leaves at most 80 math-verify checks and the rest is
  bookkeeping; the time inside math-verify (the worker calls) is reported separately;
* ``steps``: ``split_steps`` + ``number_steps`` of every attempt, streamed (what the proposals
  stage does before generating);
* ``interventions``: the interventions stage with ``leak_check`` off (every size) and on (sizes
  up to ``--leak-max``; each proposal with a non-integer reference is one worker round trip);
* ``guided``: the guided stage, disabled (it selects every kept intervention, no model);
* ``sft_data``: the sft_data stage (interventions, selected and rollouts joined).

Each (stage, size) runs in a fresh subprocess; its peak memory is that process's
``ru_maxrss`` (imports included; the import-only baseline is printed). Time linearity: the
per-stage ratio of seconds between consecutive sizes, against the ratio of rows.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from _common import REPO, machine, table

from intervention_training import artifacts
from intervention_training.artifacts import (
    ArtifactWriter,
    iter_artifact,
    read_artifact,
    write_artifact,
)
from intervention_training.grades import write_grades
from intervention_training.guided import write_guided
from intervention_training.interventions import write_interventions
from intervention_training.sft_data import write_sft_data

# (reference, [equivalent extracted answer, other equivalent form, wrong, wrong])
ANSWERS: list[tuple[str, list[str]]] = [
    (str(n), [str(n), f"{n}.0", str(n + 1), "17"]) for n in (42, 7, 100, 2025, 12, 0, 5, 64, 3, 9)
] + [
    (r"\frac{3}{4}", [r"\frac{3}{4}", "0.75", r"\frac{4}{3}", "1/2"]),
    (r"\frac{1}{2}", [r"\dfrac{1}{2}", "1/2", r"\frac{1}{3}", "2"]),
    (r"2\sqrt{3}", [r"2\sqrt{3}", r"\sqrt{12}", r"3\sqrt{2}", "4"]),
    (r"\pi", [r"\pi", r"\pi", r"2\pi", "3.14"]),
    (r"(1, 2)", [r"(1,2)", r"(1, 2)", r"(2, 1)", "(1,3)"]),
    (r"x^2+1", [r"x^2+1", r"1+x^{2}", r"x^2-1", "x"]),
    (r"\frac{\sqrt{5}-1}{2}", [r"\frac{\sqrt{5}-1}{2}", r"\frac{-1+\sqrt{5}}{2}", "1", "0.5"]),
    (r"\{1, 3\}", [r"\{1,3\}", r"\{3, 1\}", r"\{1\}", r"\{2,3\}"]),
    (r"-\frac{5}{6}", [r"-\frac{5}{6}", "-5/6", r"\frac{5}{6}", "-1"]),
    (r"10\%", [r"10\%", "0.1", "10", "1"]),
]

STAGES = (
    "gen",
    "artifacts (whole table)",
    "artifacts (streamed)",
    "grades",
    "steps",
    "interventions",
    "guided",
    "sft_data",
)


# -- synthetic data -------------------------------------------------------------------------------


def _write_streaming(path: Path, name: str, batches) -> None:
    """Write row-dict batches to an artifact without holding the whole table (``ArtifactWriter``,
    the writer the stages use)."""
    with ArtifactWriter(path, name) as w:
        for rows in batches:
            w.write(rows)


def _completion(rng: random.Random, answer: str, chars: int, finish: str) -> str:
    steps = []
    n_steps = 8
    per = max(20, chars // n_steps - 10)
    words = ["sum", "product", "difference", "ratio", "factor", "root", "term", "bound"]
    for i in range(1, n_steps):
        a, b = rng.randrange(100), rng.randrange(100)
        s = f"Step {i}: we compute {a} + {b} = {a + b} and check the {rng.choice(words)}."
        filler = " We continue the argument carefully." * max(8, per // 36 + 2)
        steps.append((s + filler)[:per])
    if finish == "length":
        steps.append("Step 8: so the value is \\boxed{" + answer)
    elif rng.random() < 0.1:
        steps.append("Step 8: I could not finish.")
    else:
        steps.append(f"Step 8: Therefore the answer is $\\boxed{{{answer}}}$.")
    return "\n\n".join(steps)


def _proposal_text(rng: random.Random, ref: str, n_steps: int) -> tuple[str, str]:
    u = rng.random()
    loc = rng.randrange(1, n_steps + 1)
    content = f"Instead of adding, multiply: {rng.randrange(9)} \\cdot {rng.randrange(9)} keeps x."
    if u < 0.05:
        return "skipped", ""
    if u < 0.15:
        return "generated", "I think step 3 is wrong but I will not say how."
    if u < 0.20:
        loc = n_steps + 5
    elif u < 0.30:
        content = f"Compute directly: the result is ${ref}$, so write that."
    elif u < 0.35:
        content = content.replace('"', "'") + " \\frac{a}{b}"
    block = json.dumps({"content": content, "location": loc})
    if u >= 0.35 and rng.random() < 0.2:
        block = "{'content': '" + content.replace("'", "") + "', 'location': 'Step " + f"{loc}'}}"
    text = (
        f"Checking each step against the reference. Step {loc} is the first critical error."
        f"\n\n<intervention>{block}</intervention>"
    )
    return "generated", text


def generate(directory: Path, rows: int, completion_chars: int = 1000, seed: int = 0) -> None:
    """problems, rollouts (``rows``) and proposals (``rows``) Parquet artifacts in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    k = 4
    n_problems = max(1, rows // k)
    chunk = min(50_000, max(500, 50_000_000 // max(1, completion_chars)))  # about 50 MB of text

    def problems():
        batch = []
        for p in range(n_problems):
            ref = ANSWERS[p % len(ANSWERS)][0]
            batch.append(
                {
                    "problem_id": f"p{p:07d}",
                    "problem": f"Problem {p}: find the value of the expression.",
                    "answer": ref,
                    "reference_solution": "A reference solution.\n\nIt ends here.",
                    "source": "synthetic",
                    "split": "train",
                }
            )
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def rollouts():
        batch = []
        for i in range(rows):
            p = i // k
            _, extracted = ANSWERS[p % len(ANSWERS)]
            finish = "length" if rng.random() < 0.1 else "stop"
            batch.append(
                {
                    "rollout_id": f"p{p:07d}/{i % k}",
                    "problem_id": f"p{p:07d}",
                    "sample_id": i % k,
                    "prompt": (
                        "<|im_start|>user\nProblem "
                        f"{p}: find the value of the expression.<|im_end|>\n"
                        "<|im_start|>assistant\n"
                    ),
                    "completion": _completion(rng, rng.choice(extracted), completion_chars, finish),
                    "n_tokens": completion_chars // 4,
                    "finish_reason": finish,
                    "seed": i,
                }
            )
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def proposals():
        batch = []
        for i in range(rows):
            r = i // 2
            p = r // k
            ref = ANSWERS[p % len(ANSWERS)][0]
            status, text = _proposal_text(rng, ref, 8)
            rid = f"p{p:07d}/{r % k}"
            batch.append(
                {
                    "proposal_id": f"{rid}/{i % 2}",
                    "rollout_id": rid,
                    "problem_id": f"p{p:07d}",
                    "sample_id": r % k,
                    "proposal_index": i % 2,
                    "n_steps": 8,
                    "status": status,
                    "skip_reason": "prompt too long" if status == "skipped" else None,
                    "reference_turn": None if status == "skipped" else "A solution with ref.",
                    "verification": None if status == "skipped" else text[:80],
                    "text": None if status == "skipped" else text,
                    "n_tokens": len(text) // 4,
                    "finish_reason": None if status == "skipped" else "stop",
                    "seed": i,
                    "constrained": True,
                }
            )
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    _write_streaming(directory / "problems.parquet", "problems", problems())
    _write_streaming(directory / "rollouts.parquet", "rollouts", rollouts())
    _write_streaming(directory / "proposals.parquet", "proposals", proposals())


# -- one stage, as its script runs it ------------------------------------------------------------


class Timer:
    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _T:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.parts[name] = timer.parts.get(name, 0.0) + time.perf_counter() - self.t0

        return _T()


def _params(d: Path, leak: bool, *sections: str) -> list[Any]:
    """Validated sections of the repository's params.yaml with 2 grading workers and
    leak_check as asked."""
    from intervention_training.runtime import load_stage_params

    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg["grading"]["workers"] = 2
    cfg["interventions"]["leak_check"] = leak
    cfg["guided"]["enabled"] = False
    cfg["sft_data"]["end_of_turn"] = False
    path = d / f"params_leak{int(leak)}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_stage_params(path, *sections)


def _summary(path: Path) -> dict[str, Any]:
    return artifacts.read_metadata(path)["summary"]


def run_stage(stage: str, d: Path, rows: int, *, leak: bool = False, completion_chars: int = 1000):
    """Run ``stage`` on the data in ``d``; return {"rows", "parts": {name: seconds}, ...}."""
    t = Timer()
    info: dict[str, Any] = {"stage": stage, "rows": rows}
    suffix = "_leak" if leak else ""
    if stage == "gen":
        with t("generate"):
            generate(d, rows, completion_chars)
    elif stage == "artifacts (whole table)":
        with t("read"):
            table_ = read_artifact(d / "rollouts.parquet", "rollouts")
        with t("to_pylist"):
            rs = table_.to_pylist()
        del table_
        with t("write"):
            write_artifact(rs, d / "rollouts_copy.parquet", "rollouts")
        info["file_mb"] = (d / "rollouts.parquet").stat().st_size / 2**20
    elif stage == "artifacts (streamed)":
        with t("read+to_pylist+write"):
            with ArtifactWriter(d / "rollouts_copy.parquet", "rollouts") as w:
                for batch in iter_artifact(d / "rollouts.parquet", "rollouts"):
                    w.write(batch)
        info["file_mb"] = (d / "rollouts.parquet").stat().st_size / 2**20
    elif stage == "grades":
        from intervention_training import grading

        inner = grading._call_many
        calls = {"n": 0}

        def timed_call_many(requests, timeout_s, workers):
            calls["n"] += len(requests)
            with t("math-verify (worker calls)"):
                return inner(requests, timeout_s, workers)

        grading._call_many = timed_call_many
        try:
            with t("stage"):
                write_grades(
                    d / "problems.parquet",
                    d / "rollouts.parquet",
                    d / "grades.parquet",
                    d / "pass_rates.parquet",
                    *_params(d, leak, "grading"),
                )
        finally:
            grading._call_many = inner
        info["verified"] = calls["n"]
        info["status"] = _summary(d / "grades.parquet")["status"]
        grading.shutdown_pool()
    elif stage == "steps":
        from intervention_training.steps import number_steps, split_steps

        n = 0
        with t("read+split+number"):
            for batch in iter_artifact(d / "rollouts.parquet", "rollouts", columns=["completion"]):
                for r in batch:
                    n += len(number_steps(split_steps(r["completion"]))) > 0
        info["attempts_with_steps"] = n
    elif stage == "interventions":
        from intervention_training import grading

        with t("stage"):
            cfg, grading_cfg = _params(d, leak, "interventions", "grading")
            write_interventions(
                d / "problems.parquet",
                d / "proposals.parquet",
                d / f"interventions{suffix}.parquet",
                cfg,
                leak_timeout_s=grading_cfg.timeout_s,
            )
        summary = _summary(d / f"interventions{suffix}.parquet")
        info["leak_check"] = leak
        info["dropped"] = summary["dropped"]
        info["kept"] = summary["kept"]
        grading.shutdown_pool()
    elif stage == "guided":
        with t("stage"):
            write_guided(
                d / "problems.parquet",
                d / "rollouts.parquet",
                d / "interventions.parquet",
                d / "continuations.parquet",
                d / "selected.parquet",
                *_params(d, False, "guided", "grading"),
                None,  # guided is disabled: no model is loaded
            )
        info["selected"] = _summary(d / "selected.parquet")["selected"]
    elif stage == "sft_data":
        with t("stage"):
            write_sft_data(
                d / "problems.parquet",
                d / "rollouts.parquet",
                d / "interventions.parquet",
                d / "selected.parquet",
                d / "no-model",  # end_of_turn is off: no tokenizer is loaded
                d / "sft.parquet",
                *_params(d, False, "sft_data"),
            )
        info["sft_rows"] = _summary(d / "sft.parquet")["rows"]
    else:
        raise ValueError(f"unknown stage {stage!r}")
    info["parts"] = t.parts
    info["seconds"] = sum(v for k, v in t.parts.items() if k != "math-verify (worker calls)")
    return info


def _child(stage: str, d: Path, rows: int, leak: bool, chars: int) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = run_stage(stage, d, rows, leak=leak, completion_chars=chars)
    info["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["import_mb"] = base / 1024
    print("RESULT " + json.dumps(info))


def run_in_subprocess(stage: str, d: Path, rows: int, leak: bool, chars: int, timeout: float):
    cmd = [sys.executable, __file__, "--child", stage, "--dir", str(d), "--rows", str(rows)]
    cmd += ["--completion-chars", str(chars)] + (["--leak"] if leak else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"stage": stage, "rows": rows, "error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout)[-400:]
    return {"stage": stage, "rows": rows, "error": f"exit {proc.returncode}: {tail}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 2k and 10k")
    ap.add_argument("--full", action="store_true", help="add 1M rows")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--leak-max", type=int, default=10_000, help="largest size with leak_check on")
    ap.add_argument("--completion-chars", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/int_bench_cpu_stages"))
    ap.add_argument("--timeout", type=float, default=3600.0, help="per (stage, size), s")
    ap.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--leak", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.dir, args.rows, args.leak, args.completion_chars)
        return 0

    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 100_000])
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    print(f"machine: {machine()}")
    print(f"completion ~{args.completion_chars} chars; workdir {args.workdir}\n")
    results: list[dict[str, Any]] = []
    for n in sizes:
        d = args.workdir / f"n{n}"
        plan = [(s, False) for s in STAGES]
        if n <= args.leak_max:
            plan.insert(STAGES.index("interventions") + 1, ("interventions", True))
        for stage, leak in plan:
            r = run_in_subprocess(stage, d, n, leak, args.completion_chars, args.timeout)
            r["leak"] = leak
            results.append(r)
            label = stage + (" (leak_check on)" if leak else "")
            if "error" in r:
                print(f"  {n:>9,} {label:32} ERROR {r['error']}", flush=True)
            else:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in r["parts"].items())
                print(
                    f"  {n:>9,} {label:32} {r['seconds']:8.2f} s  peak {r['peak_mb']:7.0f} MB"
                    f"  ({parts})",
                    flush=True,
                )
        (d / "rollouts_copy.parquet").unlink(missing_ok=True)

    print()
    rows = []
    for r in results:
        label = r["stage"] + (" (leak on)" if r.get("leak") else "")
        if "error" in r:
            rows.append([label, f"{r['rows']:,}", "-", "-", "-", r["error"][:60]])
            continue
        extra = ""
        if r["stage"] == "grades":
            mv = r["parts"].get("math-verify (worker calls)", 0.0)
            extra = f"{r['verified']} checks, math-verify {mv:.2f} s"
        elif r["stage"].startswith("artifacts"):
            extra = f"file {r['file_mb']:.0f} MB; " + ", ".join(
                f"{k} {v:.2f} s" for k, v in r["parts"].items()
            )
        elif r["stage"] == "interventions":
            extra = f"kept {r['kept']}"
        elif r["stage"] == "guided":
            extra = f"selected {r['selected']} (disabled: selection only)"
        elif r["stage"] == "sft_data":
            extra = f"{r['sft_rows']} SFT rows"
        rows.append(
            [label, f"{r['rows']:,}", r["seconds"], r["rows"] / r["seconds"], r["peak_mb"], extra]
        )
    print(table(["stage", "rows", "seconds", "rows/s", "peak RSS MB", "notes"], rows))
    ok = [r for r in results if "error" not in r]
    if ok:
        print(f"\nimport-only RSS of a child: {min(r['import_mb'] for r in ok):.0f} MB")
    # linearity
    lin = []
    by = {(r["stage"], r.get("leak"), r["rows"]): r for r in ok}
    for (stage, leak, n), r in sorted(
        by.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])
    ):
        prev = [m for (s, lk, m) in by if s == stage and lk == leak and m < n]
        if prev:
            m = max(prev)
            lin.append(
                [
                    stage + (" (leak on)" if leak else ""),
                    f"{m:,} -> {n:,}",
                    n / m,
                    r["seconds"] / by[(stage, leak, m)]["seconds"],
                    r["peak_mb"] / by[(stage, leak, m)]["peak_mb"],
                ]
            )
    if lin:
        print("\n## linearity (time ratio should equal the rows ratio)")
        print(table(["stage", "sizes", "rows x", "time x", "peak RSS x"], lin))
    over = [r for r in ok if r["peak_mb"] > 2048]
    if over:
        print("\nover the 2 GB target: " + ", ".join(f"{r['stage']}@{r['rows']:,}" for r in over))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
