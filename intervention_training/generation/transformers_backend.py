"""Generation with Hugging Face transformers (any machine; the CPU reference backend).

Requests are expanded to one row per sample, sorted by prompt length and run in left-padded
batches through ``model.generate`` in greedy mode. A :class:`_RowController` acts as both the
logits processor and the stopping criterion: it samples every row itself with the row's own
``torch.Generator`` (seeded ``derive_seed(request.seed, j)``), applies the row's JSON grammar, and
ends rows individually (eos, stop string, grammar complete, or the row's token budget). It returns
scores that are ``-inf`` everywhere except the chosen token, so greedy decoding picks exactly it.
A sample therefore depends only on its own prompt, seed and logits, not on its batch neighbours.

Two things keep it fast on CPU: the samples of one prompt share its prefill (the prompt but its
last token is run once and its KV cache copied to each sample, :meth:`_shared_prompt_cache`), and
grouped-query attention reads the KV cache without copying it (``cpu_attention.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from . import cpu_attention
from .base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    GenerationRequest,
    SamplingParams,
    derive_seed,
    encode_prompt,
    eos_token_ids,
    truncate_at_stop,
)
from .constrained import JsonGrammarCache, RowGrammar, xgrammar_version
from .sampling import make_generator, sample_token

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class _Row:
    """One sample being generated."""

    request_index: int
    sample_index: int
    prompt_ids: list[int]
    budget: int
    stop: tuple[str, ...]
    generator: torch.Generator
    grammar: RowGrammar | None
    tokens: list[int] = field(default_factory=list)
    pending: int | None = None
    finish_reason: str | None = None
    # "free text, then JSON" rows (GenerationRequest.json_trigger)
    trigger: str | None = None
    schema: dict | None = None
    json_budget: int = 0
    trigger_ids: list[int] = field(default_factory=list)
    forced: list[int] | None = None
    json_start: int | None = None

    @property
    def free_phase(self) -> bool:
        return self.trigger is not None and self.json_start is None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class _RowController(LogitsProcessor):
    """Logits processor and stopping criterion for one batch of rows (see module docstring)."""

    def __init__(
        self,
        rows: list[_Row],
        sampling: SamplingParams,
        eos_ids: set[int],
        tokenizer: Any,
        filler_id: int,
        grammars: Callable[[dict], RowGrammar] | None = None,
    ) -> None:
        self.rows = rows
        self.sampling = sampling
        self.eos_ids = eos_ids
        self.tokenizer = tokenizer
        self.filler_id = filler_id
        self.grammars = grammars
        self._eos_index = torch.tensor(sorted(eos_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Logits processor: choose each live row's next token; mask everything else."""
        logits = scores.detach().to(device="cpu", dtype=torch.float32)
        chosen = torch.full((len(self.rows),), self.filler_id, dtype=torch.long)
        for i, row in enumerate(self.rows):
            if row.done:
                continue
            if row.forced:
                row.pending = row.forced.pop(0)
                chosen[i] = row.pending
                continue
            row_logits = logits[i].clone()
            if row.grammar is not None:
                row.grammar.mask_(row_logits)
            elif row.free_phase:
                row_logits[self._eos_index] = float("-inf")  # the JSON part must still come
            row.pending = sample_token(row_logits, self.sampling, row.generator)
            chosen[i] = row.pending
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.to(scores.device).view(-1, 1), 0.0)
        return out

    def stopping(self, input_ids: torch.LongTensor) -> torch.BoolTensor:
        """Record the chosen tokens and finish rows individually; return which rows are done."""
        for row in self.rows:
            if row.done or row.pending is None:
                continue
            token, row.pending = row.pending, None
            row.tokens.append(token)
            if row.free_phase:
                self._advance_free(row)
                continue
            if row.grammar is not None and not row.grammar.accept(token):
                logger.warning("grammar rejected token %d (request %d)", token, row.request_index)
            if token in self.eos_ids or (row.grammar is not None and row.grammar.terminated):
                row.finish_reason = FINISH_STOP
            elif row.stop and self._tail_has(row, row.stop):
                row.finish_reason = FINISH_STOP
            elif row.json_start is not None and len(row.tokens) - row.json_start >= row.json_budget:
                row.finish_reason = FINISH_LENGTH
            elif row.json_start is None and len(row.tokens) >= row.budget:
                row.finish_reason = FINISH_LENGTH
        return torch.tensor([row.done for row in self.rows], device=input_ids.device)

    def _advance_free(self, row: _Row) -> None:
        """Free phase of a trigger row: start the JSON after the trigger, forcing it if need be."""
        if row.forced is not None:  # forcing the trigger
            if not row.forced:
                self._start_json(row)
            return
        if self._tail_has(row, (row.trigger,)):
            self._start_json(row)
        elif len(row.tokens) >= row.budget:
            row.forced = list(row.trigger_ids)

    def _start_json(self, row: _Row) -> None:
        row.json_start = len(row.tokens)
        row.grammar = self.grammars(row.schema)

    def _tail_has(self, row: _Row, strings: tuple[str, ...]) -> bool:
        # A string completed by the newest token starts within its last len(bytes) tokens
        # (every token is at least one byte); a few spare tokens cover skipped special tokens.
        window = max(len(s.encode("utf-8")) for s in strings) + 4
        tail = self.tokenizer.decode(row.tokens[-window:], skip_special_tokens=True)
        return any(s in tail for s in strings)


class _RowStopper(StoppingCriteria):
    """Stopping criterion delegating to a :class:`_RowController`."""

    def __init__(self, controller: _RowController) -> None:
        self.controller = controller

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return self.controller.stopping(input_ids)


class TransformersBackend:
    """Batched generation with ``transformers`` (see the module docstring for the technique).

    ``batch_size`` counts rows (samples), not requests. ``dtype`` is one of float32, bfloat16,
    float16 or ``"auto"``. ``gguf_file`` loads a GGUF checkpoint from the ``model`` folder.
    ``num_threads`` (when given) sets torch's intra-op CPU threads for the whole process: on a
    small CPU machine shared with other work, 1 thread is often several times faster than
    oversubscribed cores.
    """

    name = "transformers"
    supports_json_trigger = True

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        gguf_file: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if dtype != "auto" and dtype not in _DTYPES:
            raise ValueError(
                f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or 'auto'"
            )
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.model_id = str(model)
        self.revision = revision
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        load: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
        if gguf_file is not None:
            load["gguf_file"] = gguf_file
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, **load)
        attention: dict[str, Any] = {}
        if str(device).startswith("cpu"):  # GQA without copying the KV cache (cpu_attention.py)
            attention["attn_implementation"] = cpu_attention.register()
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_id, dtype="auto" if dtype == "auto" else _DTYPES[dtype], **load, **attention
        )
        self.model.to(device)
        self.model.eval()
        self._eos_ids = eos_token_ids(self.tokenizer, self.model.generation_config)
        if not self._eos_ids:
            raise ValueError(f"{self.model_id}: neither tokenizer nor generation config has an eos")
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else self._eos_ids[0]
        # Only our controller shapes the distribution: drop the checkpoint's sampling defaults
        # (repetition penalty, top-k, ...) so that the requested SamplingParams are all that apply.
        self.model.generation_config = GenerationConfig(
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            bos_token_id=getattr(self.model.generation_config, "bos_token_id", None),
        )
        text_config = self.model.config.get_text_config()
        self.vocab_size = int(text_config.vocab_size)
        positions = getattr(text_config, "max_position_embeddings", None)
        self.max_context = int(positions or self.tokenizer.model_max_length)
        self._grammars: JsonGrammarCache | None = None

    # -- protocol -------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a rendered prompt (``add_special_tokens=False``)."""
        return len(self._encode(text))

    def describe(self) -> dict[str, str]:
        """Provenance of generated text."""
        import transformers

        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision or "",
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "constrained_decoding": f"xgrammar {xgrammar_version()}",
            "sampling": "per-sample torch.Generator, seed derive_seed(request.seed, j)",
        }

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """Generate ``request.n`` completions per request; results in request order.

        Raises ValueError for an empty prompt or one that leaves no room in the context window; a
        budget that would overflow the context is cut to fit (finish reason ``"length"``).
        ``progress`` gets the number of requests newly finished after each batch.
        """
        rows = self._make_rows(requests, sampling)
        rows.sort(key=lambda r: (-len(r.prompt_ids), r.request_index, r.sample_index))
        remaining = [req.n for req in requests]
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            self._run_batch(batch, sampling)
            finished = 0
            for row in batch:
                remaining[row.request_index] -= 1
                finished += remaining[row.request_index] == 0
            if progress is not None and finished:
                progress(finished)
        results: list[list[Completion | None]] = [[None] * req.n for req in requests]
        for row in rows:
            results[row.request_index][row.sample_index] = self._completion(row)
        return [[c for c in per_request if c is not None] for per_request in results]

    # -- internals ------------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return encode_prompt(self.tokenizer, text)

    def _grammar_cache(self) -> JsonGrammarCache:
        if self._grammars is None:
            self._grammars = JsonGrammarCache(self.tokenizer, self.vocab_size, self._eos_ids)
        return self._grammars

    def _make_rows(
        self, requests: Sequence[GenerationRequest], sampling: SamplingParams
    ) -> list[_Row]:
        rows: list[_Row] = []
        for index, request in enumerate(requests):
            ids = self._encode(request.prompt)
            if not ids:
                raise ValueError(f"request {index}: empty prompt")
            room = self.max_context - len(ids)
            if room < 1:
                raise ValueError(
                    f"request {index}: prompt has {len(ids)} tokens, model context is "
                    f"{self.max_context}"
                )
            budget = min(request.budget(sampling), room)
            trigger_ids: list[int] = []
            json_budget = 0
            if request.json_trigger is not None:
                trigger_ids = self._encode(request.json_trigger)
                json_budget = int(request.json_max_new_tokens or 0)
                budget = min(budget, max(1, room - len(trigger_ids) - json_budget))
                self._grammar_cache().compiled(request.json_schema)  # compile once, up front
            for j in range(request.n):
                grammar = None
                if request.json_schema is not None and request.json_trigger is None:
                    grammar = self._grammar_cache().matcher(request.json_schema)
                rows.append(
                    _Row(
                        request_index=index,
                        sample_index=j,
                        prompt_ids=ids,
                        budget=budget,
                        stop=tuple(request.stop),
                        generator=make_generator(derive_seed(request.seed, j)),
                        grammar=grammar,
                        trigger=request.json_trigger,
                        schema=request.json_schema,
                        json_budget=json_budget,
                        trigger_ids=trigger_ids,
                    )
                )
        return rows

    @torch.inference_mode()
    def _run_batch(self, batch: list[_Row], sampling: SamplingParams) -> None:
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            input_ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids)
            attention_mask[i, width - len(row.prompt_ids) :] = 1
        controller = _RowController(
            batch,
            sampling,
            set(self._eos_ids),
            self.tokenizer,
            self._pad_id,
            grammars=lambda schema: self._grammar_cache().matcher(schema),
        )
        cache = self._shared_prompt_cache(batch, input_ids, attention_mask)
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max(r.budget + len(r.trigger_ids) + r.json_budget for r in batch),
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
        )
        self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=config,
            logits_processor=LogitsProcessorList([controller]),
            stopping_criteria=StoppingCriteriaList([_RowStopper(controller)]),
            past_key_values=cache,
        )
        for row in batch:  # generate() stops at its own max length without asking us again
            if row.finish_reason is None:
                row.finish_reason = FINISH_LENGTH

    def _shared_prompt_cache(
        self, batch: list[_Row], input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> DynamicCache | None:
        """KV cache of the batch's prompts but their last token, each distinct prompt computed
        once and copied to its samples; None when every row has its own prompt.

        ``generate`` then reads only the last prompt token of each row (it slices its input to
        what the cache lacks) with the position ids it derives from the same attention mask.
        """
        slot: dict[int, int] = {}  # request -> its prompt's row in the shared prefill
        firsts: list[int] = []  # the batch row that carries each distinct prompt
        for i, row in enumerate(batch):
            if row.request_index not in slot:
                slot[row.request_index] = len(firsts)
                firsts.append(i)
        if len(firsts) == len(batch) or input_ids.shape[1] < 2:
            return None
        keep = torch.tensor(firsts)
        ids = input_ids[keep, :-1].to(self.device)
        mask = attention_mask[keep, :-1].to(self.device)
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        owner = [slot[row.request_index] for row in batch]
        cache.reorder_cache(torch.tensor(owner, device=self.device))
        return cache

    def _decode_continuation(self, prompt_ids: list[int], tokens: list[int]) -> str:
        """Text of ``tokens`` as a continuation of the prompt (special tokens skipped).

        Decoded after a few prompt tokens and then cut, as vLLM detokenizes: SentencePiece-style
        decoders would otherwise drop the leading space of the first generated token.
        """
        context = prompt_ids[-4:]
        prefix = self.tokenizer.decode(context, skip_special_tokens=True)
        joined = self.tokenizer.decode(context + tokens, skip_special_tokens=True)
        if prefix and joined.startswith(prefix):
            return joined[len(prefix) :]
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _completion(self, row: _Row) -> Completion:
        text = self._decode_continuation(row.prompt_ids, row.tokens)
        if row.stop:
            text, _ = truncate_at_stop(text, row.stop)
        return Completion(text=text, n_tokens=len(row.tokens), finish_reason=row.finish_reason)
