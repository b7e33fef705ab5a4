"""Teacher-forced scoring of completion tokens (NLL and entropy) and the bootstrap of a
token-weighted mean; shared by the ``nll`` and ``entropy`` stages."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..generation.base import derive_seed
from ..models import resolve_model

CHUNK_POSITIONS = 1024


# --- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One sequence's completion tokens: the NLL of each token and the entropy of the
    distribution that predicted it (nats, float64, in token order)."""

    nll: np.ndarray
    entropy: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.nll.size)


def _first_target(n_prompt: int) -> int:
    # position 0 has nothing before it to predict it from (the trainer's shifted loss skips it)
    return max(n_prompt, 1)


def score_completions(
    model: Any,
    sequences: Sequence[tuple[Sequence[int], int]],
    *,
    batch_size: int = 4,
    pad_id: int = 0,
    padding_side: str = "right",
    progress: Callable[[int], None] | None = None,
) -> list[Scored]:
    """Score the completion tokens of ``(token ids, prompt length)`` pairs under ``model``.

    The tokens at index ``>= max(prompt length, 1)`` are the completion; each is scored from the
    logits at the position before it. Returns one :class:`Scored` per sequence, in input order.
    Sequences are batched longest first, ``batch_size`` at a time, padded on ``padding_side``
    with ``pad_id`` under a zero attention mask; position ids count real tokens only, so a row
    scores the same in any batch. Raises ValueError for a sequence with no completion token.
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i, (ids, n_prompt) in enumerate(sequences):
        if n_prompt < 0 or _first_target(n_prompt) >= len(ids):
            raise ValueError(
                f"sequence {i}: {len(ids)} tokens with a prompt of {n_prompt}: no completion "
                "token to score"
            )
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i][0]), i))
    out: list[Scored | None] = [None] * len(sequences)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = [sequences[i] for i in chosen]
            scored = _score_batch(model, batch, pad_id, padding_side, device)
            for i, s in zip(chosen, scored, strict=True):
                out[i] = s
            if progress is not None:
                progress(len(chosen))
    return [s for s in out if s is not None]


def _score_batch(
    model: Any,
    batch: Sequence[tuple[Sequence[int], int]],
    pad_id: int,
    padding_side: str,
    device: Any,
) -> list[Scored]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    offsets = []
    for r, (ids, _) in enumerate(batch):
        offset = width - len(ids) if padding_side == "left" else 0
        input_ids[r, offset : offset + len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        mask[r, offset : offset + len(ids)] = 1
        offsets.append(offset)
    # positions count real tokens: 0 at each row's first token, whatever the padding
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=position_ids.to(device),
        use_cache=False,
    ).logits
    targets_all = input_ids.to(device)
    scored = []
    for r, (ids, n_prompt) in enumerate(batch):
        first = offsets[r] + _first_target(n_prompt)  # index of the first scored token
        end = offsets[r] + len(ids)
        nll, ent = [], []
        for a in range(first, end, CHUNK_POSITIONS):
            b = min(a + CHUNK_POSITIONS, end)
            logp = torch.log_softmax(logits[r, a - 1 : b - 1].float(), dim=-1)
            target = targets_all[r, a:b].unsqueeze(-1)
            nll.append(-logp.gather(-1, target).squeeze(-1))
            # -sum p log p; a -inf log-probability (a masked token) contributes 0, not nan
            finite = logp.clamp(min=torch.finfo(logp.dtype).min)
            ent.append(-(logp.exp() * finite).sum(-1))
        scored.append(
            Scored(
                nll=torch.cat(nll).double().cpu().numpy(),
                entropy=torch.cat(ent).double().cpu().numpy(),
            )
        )
    return scored


def resolve_device(device: str) -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; any other value as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_scoring_model(
    model_dir: str | Path, *, device: str = "auto", dtype: str = "float32"
) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode on its device, tokenizer, provenance) of the model folder
    ``model_dir`` (resolved by :func:`~.models.resolve_model`: a converted folder or a
    ``model_ref.json`` naming a hub id or another folder)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, revision = resolve_model(model_dir)
    where = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(
        name, revision=revision, dtype=getattr(torch, dtype)
    )
    model.to(where)
    model.eval()
    provenance = {
        "model": name,
        "revision": revision,
        "device": where,
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    return model, tokenizer, provenance


def score_for_stage(
    model: Any,
    tokenizer: Any,
    sequences: Sequence[tuple[Sequence[int], int]],
    *,
    batch_size: int,
    stage: str,
) -> list[Scored]:
    """:func:`score_completions` as a stage runs it: the tokenizer's pad id, a progress bar
    named after ``stage``."""
    from ..progress import progress_bar

    with progress_bar(len(sequences), stage) as tick:
        return score_completions(
            model, sequences, batch_size=batch_size, pad_id=pad_id_of(tokenizer), progress=tick
        )


def pad_id_of(tokenizer: Any) -> int:
    """The id padding is filled with (masked out, so any id will do): pad, else eos, else 0."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


# --- statistics ------------------------------------------------------------------------------


def ratio_interval(
    sums: Sequence[float] | np.ndarray,
    counts: Sequence[float] | np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``sum(sums) / sum(counts)`` over units resampled with
    replacement (one unit per entry: a row, or a problem with its samples).

    Deterministic for a seed (numpy's ``default_rng``). Resamples with no count are left out;
    ``(None, None)`` when there is no unit or no count at all.
    """
    s, c = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if s.shape != c.shape:
        raise ValueError(f"sums and counts differ in length: {s.shape} vs {c.shape}")
    if s.size == 0 or c.sum() <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    ratios = []
    step = max(1, 2_000_000 // s.size)  # resamples per block: bounded index memory
    for start in range(0, resamples, step):
        idx = rng.integers(0, s.size, size=(min(step, resamples - start), s.size))
        num, den = s[idx].sum(axis=1), c[idx].sum(axis=1)
        ratios.append(num[den > 0] / den[den > 0])
    values = np.concatenate(ratios)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def choose_subset(keys: Sequence[str], cap: int | None, seed: int, *what: object) -> set[str]:
    """All of ``keys``, or a seeded choice of ``cap`` of them. The choice depends only on the
    sorted keys, ``seed`` and ``what``: the same keys give the same subset (the InT rows and the
    intervention-only rows of the same proposals; the samples of base, sft and rl)."""
    ids = sorted(set(keys))
    if cap is None or cap >= len(ids):
        return set(ids)
    rng = random.Random(derive_seed(seed, "diagnostics", *what))  # noqa: S311 (a subset)
    return set(rng.sample(ids, cap))
