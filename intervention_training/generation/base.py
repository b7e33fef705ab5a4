"""The generation protocol: requests in, n completions with token counts and finish reasons out.

Stages code against these names only; a concrete backend comes from
:func:`intervention_training.backends.make_backend`.

Contract shared by every backend:

- ``GenerationRequest.prompt`` is fully rendered text (the chat template already applied; it may end
  inside a partial assistant message, which is then continued). It is tokenized with
  ``add_special_tokens=False``: the template already holds any BOS.
- Sample ``j`` of a request is drawn with the seed ``derive_seed(request.seed, j)``.
- Stop strings are not included in ``Completion.text``; ``Completion.n_tokens`` counts every
  generated token up to and including the one that completed the stop string, or the final eos.
- ``finish_reason`` is ``"stop"`` (eos, end of turn, stop string, or a completed JSON grammar) or
  ``"length"`` (the token budget ran out first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by all requests of one ``generate`` call.

    ``temperature == 0`` means greedy decoding; ``top_k == 0`` disables top-k; ``top_p == 1``
    disables nucleus sampling.
    """

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def sampling_from(section: Any) -> SamplingParams:
    """:class:`SamplingParams` from a params ``sampling`` section (temperature, top_p, top_k,
    max_new_tokens)."""
    return SamplingParams(
        temperature=section.temperature,
        top_p=section.top_p,
        top_k=section.top_k,
        max_new_tokens=section.max_new_tokens,
    )


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt and how many samples to draw from it.

    ``max_new_tokens`` (when set) overrides :attr:`SamplingParams.max_new_tokens` for this request.
    ``json_schema`` constrains the whole completion to a JSON document matching the schema;
    generation then ends when the JSON is complete.
    """

    prompt: str
    n: int = 1
    seed: int = 0
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None
    # Single-pass "free text, then JSON" (backends with ``supports_json_trigger``): the sample is
    # unconstrained until it writes ``json_trigger`` (forced once ``max_new_tokens`` run out),
    # then the JSON schema applies for at most ``json_max_new_tokens`` more tokens. The text
    # holds the free part, the trigger and the JSON.
    json_trigger: str | None = None
    json_max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.json_trigger is not None and (
            self.json_schema is None or not self.json_trigger or not self.json_max_new_tokens
        ):
            raise ValueError("json_trigger needs a non-empty trigger, json_schema and a budget")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 when set, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            raise TypeError("stop must be a tuple of strings, not a string")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")

    def budget(self, sampling: SamplingParams) -> int:
        """The maximum number of new tokens for this request."""
        return self.max_new_tokens if self.max_new_tokens is not None else sampling.max_new_tokens


@dataclass(frozen=True)
class Completion:
    """One generated sample."""

    text: str
    n_tokens: int
    finish_reason: str


@runtime_checkable
class GenerationBackend(Protocol):
    """What every generation backend provides."""

    name: str
    model_id: str
    tokenizer: Any
    max_context: int

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """Return, in request order, one list of ``request.n`` completions per request.

        ``progress`` (if given) is called with the number of requests newly finished, as work
        proceeds (an increment, suitable for ``tqdm.update``).
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a rendered prompt (``add_special_tokens=False``)."""
        ...

    def describe(self) -> dict[str, str]:
        """Provenance: backend, model, revision, dtype, library versions, constrained decoding."""
        ...


def render_chat(
    tokenizer: Any,
    messages: list[dict],
    *,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
) -> str:
    """Render chat ``messages`` to prompt text with the tokenizer's chat template.

    ``continue_final_message=True`` leaves the last (assistant) message open so that generation
    continues it; it excludes ``add_generation_prompt``.
    """
    if continue_final_message:
        add_generation_prompt = False
    text = tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered prompt ``text``: the one encoding every backend and trainer uses.

    ``add_special_tokens=False`` because the chat template already holds any BOS; training on the
    same ids the rollouts were generated from depends on every caller going through here.
    """
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def derive_seed(base_seed: int, *keys: object) -> int:
    """A seed in ``[0, 2**63)`` derived from ``base_seed`` and ``keys``.

    Stable across processes, platforms and Python versions for keys whose ``repr`` is stable
    (ints, strings, tuples of those): the first 8 bytes of the SHA-256 of the ``repr``.
    """
    digest = hashlib.sha256(repr((int(base_seed), *keys)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def truncate_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string.

    Returns the (possibly) shortened text and whether a stop string was found.
    """
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|eom_id|>")


def end_of_turn_token_ids(tokenizer: Any) -> list[int]:
    """Ids of known end-of-turn tokens that the tokenizer's chat template emits.

    A base model's eos is often ``<|endoftext|>`` while its ChatML template closes turns with
    ``<|im_end|>``: without this, a completion would run on into an invented next turn.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = " ".join(str(v) for v in template.values())
    if not isinstance(template, str):
        return []
    vocab = tokenizer.get_vocab()
    return [vocab[tok] for tok in END_OF_TURN_TOKENS if tok in template and tok in vocab]


def eos_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Token ids that end a completion: the tokenizer's eos, the generation config's eos ids and
    the chat template's end-of-turn token (:func:`end_of_turn_token_ids`)."""
    ids: list[int] = []
    candidates: list[Any] = [getattr(tokenizer, "eos_token_id", None)]
    if generation_config is not None:
        candidates.append(getattr(generation_config, "eos_token_id", None))
    candidates.append(end_of_turn_token_ids(tokenizer))
    for value in candidates:
        if value is None:
            continue
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and int(token_id) not in ids:
                ids.append(int(token_id))
    return ids
