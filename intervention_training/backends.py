"""Opening the configured generation backend for a stage, and closing it.

A generating stage script does ``with open_backend(model, params.backend, work_dir) as backend:``
and hands the backend to its library entry point. The model is loaded on the backend's first
use, so the entry point reads and checks its input artifacts before minutes go into loading a
model for nothing. With ``work_dir`` the backend is wrapped in a
:class:`~.resume.ResumableBackend` that keeps finished shards there: when the block ends without
an error (the artifacts are written) the shards are released; when it raises they stay, so the
rerun resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import BackendParams, expand_base_urls
from .generation import GenerationBackend
from .models import resolve_model

#: A model given by reference instead of a model folder: (hub id or folder, revision).
ModelRef = tuple[str, str | None]

BACKENDS = ("transformers", "vllm", "openai", "ray")


def make_backend(name: str, model: str, **options: Any) -> GenerationBackend:
    """Build the backend called ``name`` (one of :data:`BACKENDS`) for ``model``.

    ``options`` go to the backend's constructor (``TransformersBackend``, ``VLLMBackend``,
    ``OpenAIBackend`` or ``RayBackend``), imported only now. Raises ValueError naming an
    unknown backend.
    """
    if name == "transformers":
        from .generation.transformers_backend import TransformersBackend

        return TransformersBackend(model, **options)
    if name == "vllm":
        from .generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, **options)
    if name == "openai":
        from .generation.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **options)
    if name == "ray":
        from .generation.ray_backend import RayBackend

        return RayBackend(model, **options)
    raise ValueError(f"unknown generation backend {name!r}; expected one of {', '.join(BACKENDS)}")


def load_backend(
    model_dir: str | Path, params: BackendParams, *, model_ref: ModelRef | None = None
) -> GenerationBackend:
    """The backend ``params.name`` loaded with the model the model folder names (or
    ``model_ref``: a (hub id or folder, revision) pair given in params, such as the proposer)."""
    model, revision = model_ref or resolve_model(model_dir)
    if params.name == "openai":
        options: dict[str, Any] = {
            "revision": revision,
            "base_urls": expand_base_urls(params.base_urls),
            "served_model_name": params.served_model_name,
            "api_key_env": params.api_key_env,
            "max_concurrency": params.max_concurrency,
            "timeout_s": params.timeout_s,
            "max_retries": params.max_retries,
            "prompt_format": params.prompt_format,
            "json_field": params.json_field,
            "max_model_len": params.max_model_len,
        }
    elif params.name == "transformers":
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
            "kv_cache_gib": params.kv_cache_gib,
            "enforce_eager": params.enforce_eager,
            "enable_chunked_prefill": params.enable_chunked_prefill,
            "max_num_batched_tokens": params.max_num_batched_tokens,
        }
        if params.name == "ray":
            options.update(
                replicas=params.replicas,
                ray_address=params.ray_address,
                ray_num_cpus=params.ray_num_cpus,
                batch_size=params.ray_batch_size,
            )
    return make_backend(params.name, model, **options)


class LazyBackend:
    """A backend loaded by ``load()`` on the first attribute asked of it."""

    def __init__(self, load: Callable[[], GenerationBackend]) -> None:
        self._load = load
        self._backend: GenerationBackend | None = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probes: not a use of the backend
            raise AttributeError(name)
        if self._backend is None:
            self._backend = self._load()
        return getattr(self._backend, name)


@contextmanager
def open_backend(
    model_dir: str | Path,
    params: BackendParams,
    work_dir: str | Path | None = None,
    *,
    model_ref: ModelRef | None = None,
) -> Iterator[GenerationBackend]:
    """The backend, loaded on first use (resumable when ``work_dir`` is given); its shards are
    released when the block succeeds. An incomplete section (openai without servers) fails
    here, before the stage reads its inputs."""
    params.check_complete()
    backend: Any = LazyBackend(lambda: load_backend(model_dir, params, model_ref=model_ref))
    if work_dir is None:
        yield backend
        return
    from .resume import ResumableBackend

    resumable = ResumableBackend(backend, work_dir, shard_size=params.shard_requests)
    yield resumable
    resumable.finish()
