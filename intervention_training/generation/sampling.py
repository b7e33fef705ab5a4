"""Per-row token sampling with an explicit generator (temperature, top-k, top-p).

Each row is sampled on its own from its own ``torch.Generator``, so a sample depends only on its
own logits and seed, never on the other rows of the batch.
"""

from __future__ import annotations

import torch

from .base import SamplingParams


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (``0 <= seed < 2**64``)."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator


def sample_token(logits: torch.Tensor, sampling: SamplingParams, generator: torch.Generator) -> int:
    """Draw one token id from 1-D CPU ``logits`` (``-inf`` marks forbidden tokens).

    Greedy (``argmax``, no randomness consumed) when ``sampling.temperature == 0``. Otherwise
    temperature, then top-k, then top-p, then inverse-CDF sampling with exactly one uniform draw
    from ``generator`` per token, in float64.
    """
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    scaled = logits.to(torch.float64) / sampling.temperature
    vocab = scaled.shape[-1]
    if 0 < sampling.top_k < vocab:
        # Fast path: only the k best tokens can be drawn, so work on those k (in descending
        # order) instead of sorting and summing over the whole vocabulary.
        values, index = torch.topk(scaled, sampling.top_k)
        return int(index[_draw(torch.softmax(values, dim=-1), sampling.top_p, generator)])
    return _draw(torch.softmax(scaled, dim=-1), sampling.top_p, generator)


def _draw(probs: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """Nucleus-filter ``probs`` (a distribution over positions) and draw one position."""
    vocab = probs.shape[-1]
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True, stable=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop_sorted[0] = False
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
    cdf = torch.cumsum(probs, dim=-1)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    token = int(torch.searchsorted(cdf, u.reshape(1), right=True)[0])
    token = min(token, vocab - 1)
    if probs[token] <= 0:  # only reachable through rounding at the very end of the CDF
        token = int(torch.nonzero(probs > 0)[-1])
    return token
