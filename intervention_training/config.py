"""Validated parameters: one pydantic model per section of params.yaml.

Every section rejects unknown keys and checks types and ranges before any stage does work, so a
typo such as ``temprature`` fails at once with a message that names the key. Stage scripts call
:func:`load_section` for the sections they declare in dvc.yaml.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import InputError

GRADE_STATUSES = ("correct", "incorrect", "no_answer", "truncated", "timeout", "error")


class ConfigError(InputError):
    """A params file is missing, unreadable or invalid; the message names the file and key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingSection(Section):
    """Sampling settings shared by every generating stage."""

    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(256, ge=1)


class ColumnMap(Section):
    """Which source columns hold each field of the problems schema."""

    problem: str = "problem"
    answer: str = "answer"
    reference_solution: str = "solution"
    problem_id: str | None = None


class ProblemsParams(Section):
    source: Literal["champ", "file", "hub"] = "champ"
    path: str | None = None
    hub_name: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    split: str = "train"
    columns: ColumnMap = ColumnMap()
    limit: int | None = Field(None, ge=1)
    eval_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    # Longer problem or solution texts are dropped as "too_long" (no sane prompt is that big).
    max_chars: int = Field(50_000, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _source_needs(self) -> ProblemsParams:
        if self.source == "file" and not self.path:
            raise ValueError("problems.path is required when problems.source is 'file'")
        if self.source == "hub" and not self.hub_name:
            raise ValueError("problems.hub_name is required when problems.source is 'hub'")
        return self


class ModelParams(Section):
    name: str = "embedded:smollm2-135m-instruct"
    revision: str | None = None


class BackendParams(Section):
    name: Literal["transformers", "vllm", "openai", "ray"] = "transformers"
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = Field(8, ge=1)
    # torch intra-op threads for the transformers backend (null: torch's default). On a small
    # CPU machine shared with other work, 1 is often several times faster (see BENCHMARKS.md).
    num_threads: int | None = Field(None, ge=1)
    # vLLM. The engine settings that differ between a GPU and vLLM's CPU build default by the
    # platform vLLM detects (generation/vllm_backend.py, engine_options): on CPU chunked prefill
    # off (it crashes seeded requests there), eager mode, a KV cache of kv_cache_gib (1 GiB).
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0)  # GPU: fraction vLLM takes
    max_model_len: int | None = Field(None, ge=1)
    enable_prefix_caching: bool = True
    kv_cache_gib: float | None = Field(None, gt=0.0)  # a fixed KV-cache size instead
    enforce_eager: bool | None = None  # null: on CPU, off on GPU (CUDA graphs)
    enable_chunked_prefill: bool | None = None  # null: off on CPU, vLLM's default on GPU
    max_num_batched_tokens: int | None = Field(None, ge=1)
    # ray: vLLM replicas on a Ray cluster (generation/ray_backend.py; README, "Running on a
    # cluster"). The vLLM keys above apply to each replica; a replica takes tensor_parallel_size
    # GPUs of one node (one logical CPU on vLLM's CPU build).
    replicas: int | None = Field(None, ge=1)  # null: the cluster's GPUs / tensor_parallel_size
    ray_address: str | None = None  # null: a local cluster; auto or host:port: a running one
    ray_num_cpus: int | None = Field(None, ge=2)  # a local cluster's logical CPUs (null: enough)
    ray_batch_size: int = Field(64, ge=1)  # samples per call into a replica
    # Requests per resumable shard: finished shards survive a crash (see resume.py).
    shard_requests: int = Field(64, ge=1)
    # openai: OpenAI-compatible servers (generation/openai_backend.py; README, "Running on a
    # cluster"). Every server must serve the stage's model under served_model_name (null: the
    # model's id, the name `vllm serve <id>` gives it).
    base_urls: tuple[str, ...] = ()  # http://host:port/v1, one per server
    api_key_env: str | None = None  # name of the environment variable holding the API key
    max_concurrency: int = Field(64, ge=1)  # samples in flight over all servers
    timeout_s: float = Field(600.0, gt=0.0)  # one sample's request
    max_retries: int = Field(5, ge=0)  # per sample: connection errors, timeouts, 429 and 5xx
    served_model_name: str | None = None
    # tokens: prompts as token ids from the local tokenizer (vLLM, SGLang); text: the rendered
    # prompt as text and only standard OpenAI fields (servers and APIs without token prompts)
    prompt_format: Literal["tokens", "text"] = "tokens"
    # where a JSON schema goes: structured_outputs (vLLM >= 0.11) | guided_json (older vLLM)
    json_field: Literal["structured_outputs", "guided_json"] = "structured_outputs"

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if url.startswith("env:"):
                if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", url):
                    raise ValueError(f"{url!r}: expected env:VARIABLE_NAME")
            elif not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"{url!r} is not an http(s) URL (http://host:port/v1) or env:VARIABLE"
                )
        urls = tuple(url.rstrip("/") for url in value)
        if len(set(urls)) != len(urls):
            raise ValueError("base_urls lists a server twice")
        return urls

    def check_complete(self, where: str = "backend") -> None:
        """Raise ConfigError when the section cannot open a backend (checked once the stage's
        overrides are merged in)."""
        if self.name == "openai" and not self.base_urls:
            raise ConfigError(f"{where}.name openai needs {where}.base_urls (http://host:port/v1)")


def expand_base_urls(urls: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``base_urls`` with each ``env:NAME`` entry replaced by the URLs in that environment
    variable (separated by commas or spaces).

    A cluster job's servers land on other hosts each time; naming them through a variable keeps
    the hosts out of params.yaml, so DVC's record of the stage (and the resume fingerprint,
    which never holds URLs) stays the same when a requeued job's servers move.
    """
    env = os.environ if env is None else env
    out: list[str] = []
    for url in urls:
        if not url.startswith("env:"):
            out.append(url)
            continue
        name = url.removeprefix("env:")
        found = env.get(name, "").replace(",", " ").split()
        if not found:
            raise ConfigError(f"backend.base_urls names ${name}, which is unset or empty")
        for item in found:
            if not item.startswith(("http://", "https://")):
                raise ConfigError(f"${name}: {item!r} is not an http(s) URL (http://host:port/v1)")
            out.append(item.rstrip("/"))
    if len(set(out)) != len(out):
        raise ConfigError("backend.base_urls lists a server twice (after expanding env: names)")
    return tuple(out)


def backend_with(base: BackendParams, override: dict[str, Any] | None) -> BackendParams:
    """``base`` with the keys of a stage's ``backend`` override replaced (None: ``base``)."""
    if not override:
        return base
    return BackendParams(**{**base.model_dump(), **override})


def backend_for_model(base: BackendParams, override: dict[str, Any] | None) -> BackendParams:
    """``base`` with ``override`` for *another model* (a proposer, a judge): the keys that name
    or size the policy's model (``served_model_name``, ``max_model_len``) are reset unless the
    override sets them."""
    return backend_with(
        base, {"served_model_name": None, "max_model_len": None, **(override or {})}
    )


def check_backend_override(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate the keys of a ``backend`` override by name and value (unknown keys fail)."""
    if value is not None:
        BackendParams(**value)
    return value


class RolloutsParams(Section):
    samples_per_problem: int = Field(4, ge=1)
    sampling: SamplingSection = SamplingSection()
    answer_instruction: str = ""  # appended to the problem when set; the paper sends none
    seed: int = 0


class GradingParams(Section):
    timeout_s: float = Field(5.0, gt=0.0)
    workers: int = Field(2, ge=1)
    hard_only: bool = False


FailedStatus = Literal["incorrect", "no_answer", "truncated", "timeout", "error"]


class ProposalsParams(Section):
    # The proposer (null: the policy, as in the paper's main runs). A hub id or a folder: the
    # paper's "stronger proposer" ablation. The SFT data keeps the policy's own prefixes.
    model: str | None = None
    revision: str | None = None
    # Keys of `backend` that the proposals stage sets differently (its own server, say).
    backend: dict[str, Any] | None = None
    # Which graded attempts count as failed and get self-verified.
    attempt_statuses: tuple[FailedStatus, ...] = Field(("incorrect", "no_answer"), min_length=1)
    per_attempt: int = Field(2, ge=1)
    sampling: SamplingSection = SamplingSection()
    reference_turn_max_new_tokens: int = Field(256, ge=1)
    verification_max_new_tokens: int = Field(256, ge=1)
    block_max_new_tokens: int = Field(128, ge=16)
    block_content_max_chars: int | None = Field(None, ge=1)
    constrained_block: bool = True
    seed: int = 0

    @field_validator("backend")
    @classmethod
    def _backend_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_backend_override(value)  # unknown keys and bad values fail by name


class InterventionsParams(Section):
    """``double_newlines``: every newline of an intervention's content becomes two, so each
    of its lines is a step of its own (blank-line separated) in the SFT completion and the guided
    prefix, as the authors built their SFT text. Applied once, here: the ``content`` column holds
    the text that downstream stages insert. ``max_content_chars`` is checked before doubling."""

    leak_check: bool = True
    dedup: Literal["earliest_location", "first_proposal", "none"] = "earliest_location"
    max_per_attempt: int = Field(1, ge=1)
    max_content_chars: int = Field(4000, ge=1)
    double_newlines: bool = False


class GuidedParams(Section):
    enabled: bool = False
    continuations: int = Field(4, ge=1)
    min_correct: int = Field(1, ge=0)
    sampling: SamplingSection = SamplingSection()
    seed: int = 0


SftVariant = Literal["prefix_intervention", "intervention_only", "prefix_intervention_suffix"]


class SftDataParams(Section):
    """``source``: ``interventions`` (InT: own prefix + intervention) or ``reference`` (the
    paper's "SFT on reference solutions" baseline: the problem's worked solution as completion).

    ``variant`` (the paper's Table 2; ``source: interventions`` only): the completion is
    ``prefix_intervention`` (the attempt's own steps before the error + the intervention: InT),
    ``intervention_only`` (the intervention alone) or ``prefix_intervention_suffix`` (InT's text
    + the first correct guided continuation of that intervention; needs ``guided.enabled``).
    """

    end_of_turn: bool = False
    source: Literal["interventions", "reference"] = "interventions"
    variant: SftVariant = "prefix_intervention"

    @model_validator(mode="after")
    def _variant_needs_interventions(self) -> SftDataParams:
        if self.source == "reference" and self.variant != "prefix_intervention":
            raise ValueError(
                f"variant {self.variant!r} applies to source 'interventions' only; with source "
                "'reference' leave variant at prefix_intervention"
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    "problems": ProblemsParams,
    "model": ModelParams,
    "backend": BackendParams,
    "rollouts": RolloutsParams,
    "grading": GradingParams,
    "proposals": ProposalsParams,
    "interventions": InterventionsParams,
    "guided": GuidedParams,
    "sft_data": SftDataParams,
}

S = TypeVar("S", bound=Section)


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; a clear :class:`ConfigError` when it cannot."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: params file not found") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def _format_error(path: Path, section: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join([section, *(str(p) for p in err["loc"])])
        lines.append(f"{path}: {key}: {err['msg']}")
    return "\n".join(lines)


def parse_section(
    data: dict[str, Any],
    section: str,
    *,
    path: str | Path = "params.yaml",
    trainer_fields: bool = True,
) -> Any:
    """Validate one section of an already-read params mapping (missing section = defaults).

    ``trainer_fields=False`` skips checking ``trainer`` keys against TRL's config classes (the
    check imports TRL and torch: about 2 s and 200 MB that data stages need not pay).
    """
    model = SECTIONS.get(section)
    if model is None:
        raise ConfigError(f"{path}: unknown params section {section!r}")
    raw = data.get(section) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {section}: must be a mapping")
    try:
        return model.model_validate(raw, context={"trainer_fields": trainer_fields})
    except ValidationError as exc:
        raise ConfigError(_format_error(Path(path), section, exc)) from None


def load_section(path: str | Path, section: str) -> Any:
    """Read ``path`` and return the validated section named ``section``."""
    return parse_section(read_params(path), section, path=path)


def validate_all(path: str | Path, *, trainer_fields: bool = True) -> dict[str, Section]:
    """Validate every section of a params file; unknown top-level sections are errors too.

    Any top-level key not in :data:`SECTIONS` is rejected. ``trainer_fields``: see
    :func:`parse_section`.
    """
    data = read_params(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown params section(s): {', '.join(unknown)}")
    return {
        name: parse_section(data, name, path=path, trainer_fields=trainer_fields)
        for name in SECTIONS
    }


# --- training sections (sft, rl) -------------------------------------------------------------


def trainer_config_fields(config_class: str) -> frozenset[str]:
    """Field names of TRL's ``SFTConfig`` or ``GRPOConfig`` (imported lazily: about 2 s)."""
    import dataclasses
    import importlib

    module, name = {
        "SFTConfig": ("trl.trainer.sft_config", "SFTConfig"),
        "GRPOConfig": ("trl.trainer.grpo_config", "GRPOConfig"),
    }[config_class]
    cls = getattr(importlib.import_module(module), name)
    return frozenset(f.name for f in dataclasses.fields(cls))


class TrainingSection(Section):
    """Common shape of the ``sft`` and ``rl`` sections.

    ``trainer`` holds keyword arguments of TRL's config class under its own field names; an
    unknown name fails here, and values are checked when the stage builds the config. Keys the
    stage sets itself (:attr:`RESERVED`) are rejected. ``accelerate_config`` names a file
    ``configs/accelerate/<name>.yaml`` that dvc.yaml's command launches the stage with.
    ``keep_checkpoints``: keep the resumable checkpoints after a finished run (by default they
    are deleted once the final model is written).
    """

    CONFIG_CLASS: ClassVar[str] = ""
    RESERVED: ClassVar[frozenset[str]] = frozenset({"output_dir", "resume_from_checkpoint"})

    accelerate_config: str = Field("cpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    keep_checkpoints: bool = False
    # Sequences (SFT) or completions (RL) per optimiser step over all processes; the stage sets
    # gradient_accumulation_steps from it and the process count, so the recipe does not change
    # with the number of nodes. null: gradient_accumulation_steps as trainer gives it.
    global_batch_size: int | None = Field(None, ge=1)
    trainer: dict[str, Any] = Field(default_factory=dict)

    @field_validator("trainer")
    @classmethod
    def _known_trainer_fields(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        reserved = sorted(set(value) & cls.RESERVED)
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: set by the stage, not a parameter")
        if info.context is not None and not info.context.get("trainer_fields", True):
            return value
        unknown = sorted(set(value) - trainer_config_fields(cls.CONFIG_CLASS))
        if unknown:
            raise ValueError(f"unknown {cls.CONFIG_CLASS} field(s): {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _one_batch_rule(self) -> TrainingSection:
        if self.global_batch_size is not None and "gradient_accumulation_steps" in self.trainer:
            raise ValueError(
                "global_batch_size sets trainer.gradient_accumulation_steps from the process "
                "count; give one of them, not both"
            )
        return self


class SftParams(TrainingSection):
    """The ``sft`` stage: TRL SFTTrainer on the SFT dataset (prompt-completion, completion loss).

    ``append_eos``: end every completion with the tokenizer's eos token (the paper: no).
    """

    CONFIG_CLASS: ClassVar[str] = "SFTConfig"
    # The stage tokenizes the rows itself and builds the labels (loss on the completion only).
    RESERVED: ClassVar[frozenset[str]] = TrainingSection.RESERVED | {
        "completion_only_loss",
        "assistant_only_loss",
        "dataset_text_field",
        "dataset_kwargs",
    }

    append_eos: bool = False


class RlParams(TrainingSection):
    """The ``rl`` stage: TRL GRPOTrainer on the training problems, reward = the grader.

    ``init``: the model RL starts from, ``sft`` (InT + RL) or ``base`` (the paper's "+ RL"
    baseline); dvc.yaml picks the folder ``data/models/<init>``. ``problems``: see below.
    """

    CONFIG_CLASS: ClassVar[str] = "GRPOConfig"

    init: Literal["sft", "base"] = "sft"
    # The problems GRPO trains on. null: the problems artifact's training split (the default).
    # A problems section (source, hub_name, split, columns, eval_fraction, ...) loads another set
    # with the problems stage's loader and trains on its training split, e.g. the authors'
    # CMU-AIRe/InT-RL (configs/paper.yaml). RL needs no worked solution: map
    # reference_solution to the answer column when the set has none.
    problems: ProblemsParams | None = None


SECTIONS["sft"] = SftParams
SECTIONS["rl"] = RlParams
# --- end of training sections ----------------------------------------------------------------

# --- evaluation sections ---------------------------------------------------------------------
# (classes for the `evaluation` section go here, then: SECTIONS["evaluation"] = ...)


class BenchmarkColumns(Section):
    """Source columns of a benchmark; ``None`` means the default of the benchmark's format."""

    problem: str | None = None
    answer: str | None = None
    problem_id: str | None = None


class BenchmarkSpec(Section):
    """One evaluation benchmark.

    ``source``: ``heldout`` (the ``split == "eval"`` rows of the problems artifact), ``train``
    (its ``split == "train"`` rows: the paper's Table 2 measures the SFT model on the problems it
    was trained on), ``file`` (a local .jsonl/.csv/.parquet at ``path``) or ``hub``
    (``datasets.load_dataset``). ``format`` picks the column conventions (see
    :mod:`intervention_training.evaluation.benchmarks`); ``auto`` recognises IMO-AnswerBench,
    OlympiadBench and GSM8K by their columns. ``subset`` (``source: train`` only): ``all`` the
    training split, or ``selected`` only the problems the grades stage passed on (the
    ``selected`` column of the pass-rates artifact: with ``grading.hard_only``, the hard ones).
    """

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: Literal["heldout", "train", "file", "hub"] = "file"
    subset: Literal["all", "selected"] = "all"
    format: Literal["auto", "generic", "answerbench", "olympiadbench", "gsm8k"] = "auto"
    path: str | None = None
    hub_name: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    split: str = "test"
    columns: BenchmarkColumns = BenchmarkColumns()
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _source_needs(self) -> BenchmarkSpec:
        if self.source == "file" and not self.path:
            raise ValueError(f"benchmark {self.name!r}: path is required when source is 'file'")
        if self.source == "hub" and not self.hub_name:
            raise ValueError(f"benchmark {self.name!r}: hub_name is required when source is 'hub'")
        if self.subset != "all" and self.source != "train":
            raise ValueError(
                f"benchmark {self.name!r}: subset {self.subset!r} applies to source 'train' only"
            )
        return self


JudgeTrigger = Literal["ungradable_reference", "timeout", "error"]


class JudgeParams(Section):
    """The optional model judge for answers math-verify cannot decide (see evaluation.judge)."""

    enabled: bool = False
    when: tuple[JudgeTrigger, ...] = Field(
        ("ungradable_reference", "timeout", "error"), min_length=1
    )
    constrained: bool = True  # the verdict as a JSON object under a schema
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    # Keys of the evaluated backend that the judge sets differently (its own server, say).
    backend: dict[str, Any] | None = None

    @field_validator("backend")
    @classmethod
    def _backend_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_backend_override(value)  # unknown keys and bad values fail by name


class BootstrapParams(Section):
    resamples: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = 0


class ContaminationParams(Section):
    """Word n-gram overlap of training problems and benchmarks (evaluation.contamination)."""

    ngram: int = Field(13, ge=1)
    min_shared: int = Field(1, ge=1)  # shared n-grams that make a pair contaminated
    # Drop contaminated problems in the `problems` stage (before the split), counted as
    # "contaminated". The held-out benchmark is the problem set's own split and is not checked.
    remove: bool = False


class EvaluationParams(Section):
    benchmarks: tuple[BenchmarkSpec, ...] = (BenchmarkSpec(name="heldout", source="heldout"),)
    samples_per_problem: int = Field(4, ge=1)
    sampling: SamplingSection = SamplingSection()
    answer_instruction: str = ""
    seed: int = 0
    ks: tuple[int, ...] = Field((1, 2, 4), min_length=1)
    bootstrap: BootstrapParams = BootstrapParams()
    judge: JudgeParams = JudgeParams()
    contamination: ContaminationParams = ContaminationParams()
    # Keys of the `backend` section that evaluation sets differently (null: the same backend).
    backend: dict[str, Any] | None = None

    @field_validator("backend")
    @classmethod
    def _backend_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_backend_override(value)  # unknown keys and bad values fail by name

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationParams:
        names = [b.name for b in self.benchmarks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"benchmark names must be unique; repeated: {dupes}")
        bad = [k for k in self.ks if not 1 <= k <= self.samples_per_problem]
        if bad:
            raise ValueError(
                f"ks {bad} must lie in 1..samples_per_problem ({self.samples_per_problem})"
            )
        return self


SECTIONS["evaluation"] = EvaluationParams


class LocateEvalParams(Section):
    """The ``locate_eval`` stage: the proposer's first-error locations on CHAMP's human-annotated
    model solutions (intervention_training/locate_eval.py). ``items``: a seeded subset of the
    444 annotated solutions (null: all); ``whole_span``: a prediction anywhere in an annotated
    span that crosses blank lines counts as exact; ``bootstrap``: resamples for the intervals."""

    items: int | None = Field(40, ge=2)
    seed: int = 0
    whole_span: bool = False
    bootstrap: int = Field(1000, ge=1)


SECTIONS["locate_eval"] = LocateEvalParams


class ContinuationSourcesParams(Section):
    """The ``continuation_sources`` stage (the paper's Table 1; continuation_sources.py): for
    each kept intervention on a hard problem (no correct attempt), ``continuations`` samples
    per source. ``max_problems``: a seeded subset of those problems (null: all);
    ``bootstrap``: resamples over problems for the 95% intervals."""

    continuations: int = Field(4, ge=1)
    sampling: SamplingSection = SamplingSection()
    seed: int = 0
    max_problems: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=1)


SECTIONS["continuation_sources"] = ContinuationSourcesParams

DiagnosticSource = Literal[
    "prefix_intervention", "intervention_only", "prefix_intervention_suffix", "reference"
]


class DiagnosticsParams(Section):
    """The on-policy diagnostics (diagnostics.py). Stage ``nll``: per-token NLL under the base
    model of the SFT rows of each of ``sources`` (the three ``sft_data.variant`` values of
    ``source: interventions``, and ``reference``), at most ``max_rows`` per source (a seeded
    subset; null: all). Stage ``entropy@M``: model M's mean next-token entropy over its own
    evaluation samples, at most ``max_samples`` per benchmark (seeded; null: all). ``device``:
    auto (cuda when available, else cpu), cpu or cuda[:N]; ``dtype`` of the weights (logits are
    scored in float32); ``bootstrap``: resamples for the 95% intervals."""

    sources: tuple[DiagnosticSource, ...] = Field(
        ("prefix_intervention", "intervention_only", "prefix_intervention_suffix", "reference"),
        min_length=1,
    )
    max_rows: int | None = Field(None, ge=1)
    max_samples: int | None = Field(None, ge=1)
    batch_size: int = Field(4, ge=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    bootstrap: int = Field(1000, ge=10)
    seed: int = 0

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"sources lists a source twice: {list(value)}")
        return value


SECTIONS["diagnostics"] = DiagnosticsParams
# --- end of evaluation sections --------------------------------------------------------------

# --- report sections -------------------------------------------------------------------------
# (classes for the `report` section, if any, go here)
# --- end of report sections ------------------------------------------------------------------
