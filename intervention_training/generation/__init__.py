"""Swappable generation backends behind one small protocol (see :mod:`.base`).

Stages never import a backend module directly: they call :func:`make_backend`, which imports the
chosen backend lazily (importing this package imports neither transformers models nor vLLM).
"""

from __future__ import annotations

from typing import Any

from .base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    GenerationBackend,
    GenerationRequest,
    SamplingParams,
    derive_seed,
    render_chat,
    truncate_at_stop,
)

BACKENDS = ("transformers", "vllm")

__all__ = [
    "BACKENDS",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "Completion",
    "GenerationBackend",
    "GenerationRequest",
    "SamplingParams",
    "derive_seed",
    "make_backend",
    "render_chat",
    "truncate_at_stop",
]


def make_backend(name: str, model: str, **options: Any) -> GenerationBackend:
    """Build the backend called ``name`` (one of :data:`BACKENDS`) for ``model``.

    ``options`` go to the backend's constructor (``TransformersBackend`` or ``VLLMBackend``).
    Raises ValueError naming an unknown backend.
    """
    if name == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(model, **options)
    if name == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model, **options)
    raise ValueError(f"unknown generation backend {name!r}; expected one of {', '.join(BACKENDS)}")
