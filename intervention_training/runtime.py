"""What every stage script shares: opening a backend from params, progress bars, error exits."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .artifacts import ArtifactError
from .config import BackendParams, ConfigError, SamplingSection
from .generation import GenerationBackend, SamplingParams, make_backend
from .models import ModelError, resolve_model
from .problems import ProblemSourceError

log = logging.getLogger("intervention_training")

#: Errors that mean "bad input or configuration": reported in one line, exit status 2.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    ArtifactError,
    ModelError,
    ProblemSourceError,
)

F = TypeVar("F", bound=Callable[..., Any])


def open_backend(
    model_dir: str | Path, params: BackendParams, work_dir: str | Path | None = None
) -> Any:
    """The configured generation backend, loaded with the model the base-model folder names.

    With ``work_dir`` the backend is wrapped in a :class:`~.resume.ResumableBackend` that keeps
    finished shards there, so a crashed stage resumes; call its ``finish()`` after writing.
    """
    backend = _make(model_dir, params)
    if work_dir is None:
        return backend
    from .resume import ResumableBackend

    return ResumableBackend(backend, work_dir, shard_size=params.shard_requests)


def finish_backend(backend: Any) -> None:
    """Release a resumable backend's work folder once the stage's artifacts are written."""
    finish = getattr(backend, "finish", None)
    if finish is not None:
        finish()


def _make(model_dir: str | Path, params: BackendParams) -> GenerationBackend:
    model, revision = resolve_model(model_dir)
    if params.name == "transformers":
        options: dict[str, Any] = {
            "revision": revision,
            "dtype": params.dtype,
            "device": params.device,
            "batch_size": params.batch_size,
            "num_threads": params.num_threads,
        }
    else:
        options = {
            "revision": revision,
            "dtype": params.dtype,
            "tensor_parallel_size": params.tensor_parallel_size,
            "gpu_memory_utilization": params.gpu_memory_utilization,
            "max_model_len": params.max_model_len,
            "enable_prefix_caching": params.enable_prefix_caching,
        }
    return make_backend(params.name, model, **options)


def sampling_params(section: SamplingSection) -> SamplingParams:
    return SamplingParams(
        temperature=section.temperature,
        top_p=section.top_p,
        top_k=section.top_k,
        max_new_tokens=section.max_new_tokens,
    )


@contextmanager
def progress(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A progress bar (done/total, rate, ETA) on a terminal; silent when stderr is not a TTY."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="req", disable=None, file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()


def summary_line(stage: str, counts: Mapping[str, Any]) -> str:
    parts = []
    for key, value in counts.items():
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
            parts.append(f"{key} ({inner})")
        else:
            parts.append(f"{key}={value}")
    return f"[{stage}] " + "; ".join(parts)


def setup_logging() -> None:
    """Our own one-line summaries on stderr; library progress bars and chatter off.

    transformers reads both settings from the environment when it is first imported, so a stage
    that never loads a model does not pay for importing it (about 2 s and 250 MB with torch).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if "transformers" in sys.modules:  # imported before the settings above: apply them now
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage_entry(stage: str) -> Callable[[F], F]:
    """Decorate a stage's main: log setup, and one clear line + exit 2 on bad input or params."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            setup_logging()
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as exc:
                print(f"[{stage}] error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None

        return inner  # type: ignore[return-value]

    return wrap


def load_stage_params(path: str | Path, *sections: str) -> list[Any]:
    """Validate the whole params file (unknown keys fail here), then return ``sections``.

    TRL trainer field names are checked only when a training section is asked for (the check
    imports TRL and torch).
    """
    from .config import SECTIONS, Section, TrainingSection, validate_all

    training = any(issubclass(SECTIONS.get(name, Section), TrainingSection) for name in sections)
    parsed = validate_all(path, trainer_fields=training)
    return [parsed[name] for name in sections]


def rows_of(table: Any) -> list[dict[str, Any]]:
    """An artifact table as a list of row dicts."""
    return table.to_pylist()
