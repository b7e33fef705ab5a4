"""A longer fuzzing run than the test suite's: hostile text through the parser, splitter and grader.

    .venv/bin/python bench/fuzz.py [--n 20000] [--grader-n 500] [--seed 0]

Inputs are random mixtures of the fragments model output is made of (tags, JSON punctuation,
LaTeX commands, digits, whitespace, control and non-ASCII characters) and random mutations
(deletions, insertions, replacements, duplications) of valid intervention blocks. Reports how many
inputs ran, every exception (there should be none) and the slowest input per component.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from intervention_training.grading import STATUSES, grade_many
from intervention_training.intervention_block import STATUSES as PARSE_STATUSES
from intervention_training.intervention_block import parse_proposal
from intervention_training.steps import prefix_before_step, split_steps

FRAGMENTS = [
    "<intervention>",
    "</intervention>",
    "<intervention >",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    '"content"',
    '"location"',
    "Step ",
    "\\frac{",
    "\\boxed{",
    "\\(",
    "\\)",
    "\\n",
    "\\\\",
    "\\times",
    "\\neq",
    "\\u00e9",
    "\\uZZZZ",
    "```json",
    "```",
    "\n",
    "\n\n",
    " \n \n",
    "\r\n",
    "\t",
    "\x00",
    "\x1b",
    "é",
    "数",
    "🙂",
    "0",
    "1",
    "5",
    "-3",
    "1e309",
    "NaN",
    "null",
    "true",
    "9" * 40,
    " ",
    "x^2",
    "=",
    "$",
    "%",
]


def valid_block(rng: random.Random) -> str:
    content = "".join(rng.choice(FRAGMENTS[14:30]) for _ in range(rng.randint(1, 8)))
    block = json.dumps({"content": "Wait, " + content, "location": rng.randint(1, 9)})
    return "audit text\n\n" + "<intervention>" + block + "</intervention>"


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        i = rng.randrange(len(chars) + 1)
        if op < 0.3 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op < 0.6:
            chars[i:i] = list(rng.choice(FRAGMENTS))
        elif op < 0.8 and chars:
            chars[min(i, len(chars) - 1)] = rng.choice(FRAGMENTS)
        else:
            chars[i:i] = chars[i : i + rng.randint(1, 50)]
    return "".join(chars)


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 200)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="inputs for the parser and splitter")
    ap.add_argument("--grader-n", type=int, default=500, help="inputs for the grader")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    errors: list[str] = []
    slowest = {"parse_proposal": (0.0, ""), "split_steps": (0.0, "")}
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    for k in range(args.n):
        text = mutate(valid_block(rng), rng) if k % 2 else random_text(rng)
        n_steps = rng.choice([-1, 0, 1, 3, 9, 10**6])
        for name, fn in (
            ("parse_proposal", lambda text=text, n=n_steps: parse_proposal(text, n)),
            ("split_steps", lambda text=text: split_steps(text)),
        ):
            t = time.perf_counter()
            try:
                out = fn()
            except Exception as exc:  # noqa: BLE001 - the point is to find any
                errors.append(f"{name}: {type(exc).__name__}: {exc} on {text[:80]!r}")
                continue
            dt = time.perf_counter() - t
            if dt > slowest[name][0]:
                slowest[name] = (dt, text[:60])
            if name == "parse_proposal":
                assert out.status in PARSE_STATUSES
                statuses[out.status] = statuses.get(out.status, 0) + 1
            else:
                for loc in range(1, len(out) + 1):
                    prefix_before_step(text, loc)
    parse_s = time.perf_counter() - start
    items = [
        (f"so \\boxed{{{random_text(rng)[:60]}}}", rng.choice(["2", "x^2", "(1, 2)"]))
        for _ in range(args.grader_n)
    ]
    t = time.perf_counter()
    grades = grade_many(items, timeout_s=2.0)
    grade_s = time.perf_counter() - t
    bad = [g for g in grades if g.status not in STATUSES]
    print(f"parser + splitter: {args.n} inputs in {parse_s:.1f} s, exceptions: {len(errors)}")
    for name, (dt, sample) in slowest.items():
        print(f"  slowest {name}: {dt * 1000:.1f} ms on {sample!r}")
    print(f"  parse statuses: {dict(sorted(statuses.items()))}")
    counts: dict[str, int] = {}
    for g in grades:
        counts[g.status] = counts.get(g.status, 0) + 1
    print(
        f"grader: {len(items)} inputs in {grade_s:.1f} s, unknown statuses: {len(bad)}, "
        f"statuses: {dict(sorted(counts.items()))}"
    )
    for e in errors[:20]:
        print("  ", e)
    raise SystemExit(1 if errors or bad else 0)


if __name__ == "__main__":
    main()
