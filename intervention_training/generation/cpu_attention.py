"""Grouped-query attention without copying the KV cache, for generation on CPU.

transformers' ``sdpa`` attention repeats the key/value heads to the query heads whenever an
attention mask is given (every left-padded batch), because CUDA's fused kernels cannot take a mask
and ``enable_gqa`` together. On CPU that copy of the whole cache, every layer and every decoding
step, was 40% of the transformers backend's time on the default proposals (SmolLM2: 9 query heads,
3 key/value heads). PyTorch's CPU kernel takes ``enable_gqa`` with a mask, with results identical
to the repeated heads (``tests/test_generation.py``).

:func:`register` adds the function to transformers under :data:`NAME`, with the mask format of
``sdpa``; a model is loaded with ``attn_implementation=NAME``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

NAME = "int_cpu_sdpa_gqa"


def gqa_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; the output is (batch, seq, heads, head_dim)."""
    if kwargs.get("position_bias") is not None or key.shape[-1] != value.shape[-1]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    q_length = query.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(q_length > 1 and attention_mask is None and causal)
    if causal and key.shape[2] > q_length:  # prefill into an empty static cache
        key, value = key[:, :, :q_length], value[:, :, :q_length]
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=causal,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :data:`NAME` a valid ``attn_implementation`` (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, gqa_sdpa_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
