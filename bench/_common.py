"""Helpers shared by the benchmark scripts: repository path, machine line, Markdown tables."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Short arithmetic problems for generation benchmarks that need prompts without data files.
SMALL_PROBLEMS = (
    "What is 17 times 23?",
    "Solve for x: 3x + 5 = 20.",
    "Find the sum of the first 10 positive integers.",
    "What is the greatest common divisor of 84 and 126?",
    "Simplify (x^2 - 1)/(x - 1).",
    "How many primes are less than 30?",
)


def machine() -> str:
    """One line naming the machine: CPU model, cores, memory, load average, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs{mem}{load}; Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats are printed with 3 significant-ish digits."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            if v == 0 or abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def bench_model(arg: str | None, quick: bool, *, heads: int = 4) -> tuple[str, str]:
    """(model folder, label): ``arg`` when given; else ``data/models/base`` (SmolLM2-135M, from
    ``dvc repro base_model``) unless ``quick``; else the tiny random model of
    ``tests/tiny_model.py`` (``heads=1``: one 64-dim head, a size vLLM's CPU attention takes)."""
    if arg:
        return arg, "given"
    base = REPO / "data" / "models" / "base"
    if not quick and (base / "config.json").exists():
        return str(base), "SmolLM2-135M-Instruct (data/models/base)"
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import build_tiny_model

    path = build_tiny_model(Path(tempfile.mkdtemp(prefix="int_bench_tiny_")) / "tiny", heads=heads)
    return str(path), f"tiny random model, {heads} head(s) (tests/tiny_model.py)"
