"""Swappable generation backends behind one small protocol (see :mod:`.base`).

The protocol and the helpers every backend shares live here; the backends themselves
(:mod:`.transformers_backend`, :mod:`.vllm_backend`) are imported lazily by
:func:`intervention_training.backends.make_backend`, so importing this package imports neither
transformers models nor vLLM, and code that needs only the protocol (the trainers' prompt
encoding) does not depend on the backends.
"""

from __future__ import annotations

from .base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    GenerationBackend,
    GenerationRequest,
    SamplingParams,
    derive_seed,
    render_chat,
    sampling_from,
    truncate_at_stop,
)

__all__ = [
    "FINISH_LENGTH",
    "FINISH_STOP",
    "Completion",
    "GenerationBackend",
    "GenerationRequest",
    "SamplingParams",
    "derive_seed",
    "render_chat",
    "sampling_from",
    "truncate_at_stop",
]
