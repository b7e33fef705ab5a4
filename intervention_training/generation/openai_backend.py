"""Generation against OpenAI-compatible servers: vLLM or SGLang fleets, hosted APIs.

Prompts are rendered and tokenized here, with the model's own tokenizer and chat template (the
``encode_prompt`` every backend and trainer uses), and sent as **token ids** to
``/v1/completions``: what the server saw is what SFT trains on. ``prompt_format: text`` sends the
rendered text and only standard OpenAI fields, for servers that take no token prompts.

Each sample is one request with ``n=1`` and ``seed = derive_seed(request.seed, j)``, as on the
offline vLLM backend, so a sample does not depend on concurrency, on the order answers arrive or
on which server answered (the same vLLM version and dtype give the offline backend's tokens).
Up to ``max_concurrency`` samples are in flight over all servers, routed by
:class:`~.servers.ServerPool` (sticky per prompt, least loaded otherwise). Connection errors,
timeouts and HTTP 408/429/5xx are retried with backoff up to ``max_retries`` times per sample;
a server that refuses connections is skipped while others live. :meth:`generate_shards` reports
each shard as soon as its last sample lands, so the resumable wrapper writes shards while many
others are in flight.

At start every server is asked for its models: one that does not serve the expected model is
refused by name. The served model, its context length and the servers' vLLM version go into
:meth:`OpenAIBackend.describe` (provenance and the resume fingerprint: DVC cannot see a server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from ..errors import ServerError
from .base import Completion, GenerationRequest, SamplingParams, encode_prompt
from .servers import (
    RETRY_STATUSES,
    MalformedAnswer,
    Server,
    ServerPool,
    parse_completion,
    served_models,
)
from .vllm_backend import build_vllm_request_specs

log = logging.getLogger("intervention_training")

#: Seconds before a sample's first retry; doubled each retry, at most :data:`MAX_BACKOFF_S`.
BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def completion_body(
    spec: dict[str, Any],
    *,
    served_model: str,
    prompt_text: str | None = None,
    json_field: str = "structured_outputs",
) -> dict[str, Any]:
    """The JSON body of one sample's ``/v1/completions`` request.

    ``spec`` is one of :func:`~.vllm_backend.build_vllm_request_specs`'s. With ``prompt_text``
    (text mode) the prompt is that text and the body holds standard OpenAI fields only; otherwise
    the prompt is the token ids, with vLLM's ``top_k``, ``stop_token_ids`` and special-token
    handling, as the offline backend sets them. A JSON schema goes in ``json_field``.
    """
    sp = spec["sampling_params"]
    body: dict[str, Any] = {
        "model": served_model,
        "prompt": spec["prompt_token_ids"] if prompt_text is None else prompt_text,
        "n": 1,
        "seed": sp["seed"],
        "temperature": sp["temperature"],
        "top_p": sp["top_p"],
        "max_tokens": sp["max_tokens"],
    }
    if sp["stop"]:
        body["stop"] = sp["stop"]
    if prompt_text is None:
        if sp["top_k"] > 0:
            body["top_k"] = sp["top_k"]
        body["stop_token_ids"] = sp["stop_token_ids"]
        body["include_stop_str_in_output"] = sp["include_stop_str_in_output"]
        body["skip_special_tokens"] = sp["skip_special_tokens"]
    if spec["json_schema"] is not None:
        if json_field == "structured_outputs":
            body["structured_outputs"] = {"json": spec["json_schema"]}
        else:
            body[json_field] = spec["json_schema"]
    return body


@dataclass
class _Job:
    shard: int
    request: int
    sample: int
    body: dict[str, Any]


class OpenAIBackend:
    """Generation on OpenAI-compatible servers (see the module docstring)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_urls: Sequence[str],
        revision: str | None = None,
        served_model_name: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int = 64,
        timeout_s: float = 600.0,
        max_retries: int = 5,
        prompt_format: str = "tokens",
        json_field: str = "structured_outputs",
        max_model_len: int | None = None,
        trust_remote_code: bool = False,
        pool: ServerPool | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        if prompt_format not in ("tokens", "text"):
            raise ValueError(f"prompt_format must be tokens or text, got {prompt_format!r}")
        self.model_id = str(model)
        self.revision = revision
        self.served_model = served_model_name or self.model_id
        self._name_given = served_model_name is not None
        self.prompt_format = prompt_format
        self.json_field = json_field
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ServerError(f"backend.api_key_env names {api_key_env}, which is not set")
            self.headers["Authorization"] = f"Bearer {key}"
        self.pool = pool or ServerPool(list(base_urls))
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.model_id, revision=revision, trust_remote_code=trust_remote_code
        )
        self.server_versions: list[str] = []
        served_len = self._probe()
        self.max_context = int(served_len or max_model_len or 0)
        if self.max_context < 1:
            raise ServerError(
                f"the servers do not say their context length ({self.served_model}): set "
                "backend.max_model_len"
            )
        self.retries = 0

    # --- start-up: ask each server what it serves ---------------------------------------------

    def _get(self, url: str) -> str:
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310 (http(s) only)
        timeout = min(self.timeout_s, 30.0)
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.read().decode("utf-8", "replace")

    def _probe(self) -> int | None:
        """Check every server serves :attr:`served_model`; the smallest context it reports.

        Servers that do not answer are marked down (they are probed again later); when none
        answers, the probe waits and retries up to ``max_retries`` times, then fails.
        """
        for attempt in range(self.max_retries + 1):
            lengths: list[int] = []
            wrong: list[str] = []
            versions: set[str] = set()
            for server in self.pool.servers:
                try:
                    cards = served_models(self._get(f"{server.url}/models"))
                except (OSError, HTTPException, MalformedAnswer) as exc:  # URLError: an OSError
                    self.pool.mark_down(server, f"{type(exc).__name__}: {exc}")
                    continue
                if self.served_model not in cards and not self._adopt_local_name(cards):
                    wrong.append(f"{server.url} serves {sorted(cards)}")
                    continue
                self.pool.mark_up(server)
                server.down_until = 0.0
                server.names = frozenset(cards)
                card = cards[self.served_model]
                if isinstance(card.get("max_model_len"), int):
                    lengths.append(card["max_model_len"])
                versions.add(self._version(server.url))
            if wrong:
                raise ServerError(
                    f"expected model {self.served_model!r}, but "
                    + "; ".join(wrong)
                    + " (serve it under that name, or set backend.served_model_name)"
                )
            if versions:
                down = [s.url for s in self.pool.servers if s.down_until > 0]
                if down:
                    log.warning("[openai] not answering, skipped for now: %s", ", ".join(down))
                self.server_versions = sorted(versions)
                if len(versions) > 1:
                    log.warning("[openai] servers run different versions: %s", versions)
                return min(lengths) if lengths else None
            if attempt < self.max_retries:
                wait = min(BACKOFF_S * 2**attempt, MAX_BACKOFF_S)
                log.warning("[openai] no server answers yet; retrying in %.1f s", wait)
                time.sleep(wait)
        raise ServerError(
            f"no server of backend.base_urls answers (each ends in /v1): {self.pool.errors()}"
        )

    def _adopt_local_name(self, cards: dict[str, dict[str, Any]]) -> bool:
        """Serve a local model folder under whatever name a server on this machine gave it.

        With no ``served_model_name`` set and the model a local folder (the CPU default's
        ``data/models/base``), a server whose model card's ``root`` is that same folder (started
        with its absolute path, say) is the expected model: its name is used from now on.
        """
        if self._name_given or not Path(self.model_id).is_dir():
            return False
        here = Path(self.model_id).resolve()
        for name, card in cards.items():
            root = card.get("root")
            if isinstance(root, str) and Path(root).is_dir() and Path(root).resolve() == here:
                log.info("[openai] %s is served as %r", self.model_id, name)
                self.served_model = name
                return True
        return False

    def _version(self, url: str) -> str:
        root = url[: -len("/v1")] if url.endswith("/v1") else url
        try:
            data = json.loads(self._get(f"{root}/version"))
            return f"vllm {data['version']}" if isinstance(data, dict) else "unknown"
        except (OSError, HTTPException, ValueError, KeyError):
            return "unknown"

    # --- the protocol --------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Number of tokens of a rendered prompt (``add_special_tokens=False``)."""
        return len(encode_prompt(self.tokenizer, text))

    def describe(self) -> dict[str, str]:
        """Provenance (also the resume fingerprint): no URLs, so adding a server keeps shards."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision or "",
            "served_model": self.served_model,
            "server_version": ", ".join(self.server_versions),
            "max_context": str(self.max_context),
            "prompt_format": self.prompt_format,
            "constrained_decoding": f"server {self.json_field}",
            "sampling": "one request per sample, seed derive_seed(request.seed, j)",
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
        return done[0] if requests else []

    def generate_shards(
        self,
        shards: Sequence[Sequence[GenerationRequest]],
        sampling: SamplingParams,
        on_shard: Callable[[int, list[list[Completion]]], None],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Generate every shard's requests concurrently; ``on_shard(i, results)`` is called as
        soon as shard ``i`` is complete. Raises :class:`ServerError` when retries run out.

        A shard's prompts are tokenized when the workers reach it, so memory holds the shards
        in flight, not the stage (paper-size proposals are tens of thousands of 16k-token
        prompts).
        """
        before = self._sent_counts()
        n_samples = sum(r.n for shard in shards for r in shard)
        if n_samples:
            asyncio.run(self._run(shards, sampling, on_shard, progress))
        else:
            for s in range(len(shards)):
                on_shard(s, [[] for _ in shards[s]])
        sent = ", ".join(f"{srv.url} {srv.sent - before[srv.url]}" for srv in self.pool.servers)
        log.info("[openai] %d samples; requests per server: %s; retries %d", n_samples, sent,
                 self.retries)  # fmt: skip

    def _sent_counts(self) -> dict[str, int]:
        """Requests sent so far, by server URL."""
        return {srv.url: srv.sent for srv in self.pool.servers}

    def _jobs(self, s: int, shard: Sequence[GenerationRequest], sampling: SamplingParams) -> list:
        """One shard's sample requests (bodies ready to send)."""
        for request in shard:
            if request.json_trigger is not None:
                raise ValueError(
                    "json_trigger is not supported on servers; send the free text and the "
                    "JSON as two requests (the prefix cache makes the second one cheap)"
                )
        jobs = []
        specs = build_vllm_request_specs(
            shard, sampling, self.tokenizer, max_context=self.max_context
        )
        for spec in specs:
            text = shard[spec["request_index"]].prompt if self.prompt_format == "text" else None
            body = completion_body(
                spec, served_model=self.served_model, prompt_text=text, json_field=self.json_field
            )
            jobs.append(_Job(s, spec["request_index"], spec["sample_index"], body))
        return jobs

    async def _run(
        self,
        shards: Sequence[Sequence[GenerationRequest]],
        sampling: SamplingParams,
        on_shard: Callable[[int, list[list[Completion]]], None],
        progress: Callable[[int], None] | None,
    ) -> None:
        import aiohttp

        results: dict[int, list[list[Completion | None]]] = {}
        left_in_shard: dict[int, int] = {}
        left_in_request: dict[tuple[int, int], int] = {}
        pending: deque[_Job] = deque()
        next_shard = 0

        def take() -> _Job | None:
            """The next sample to send, tokenizing the next shard when the current ones are
            all sent (a shard of no samples is reported at once)."""
            nonlocal next_shard
            while not pending and next_shard < len(shards):
                s, shard = next_shard, shards[next_shard]
                next_shard += 1
                results[s] = [[None] * r.n for r in shard]
                left_in_shard[s] = sum(r.n for r in shard)
                for i, r in enumerate(shard):
                    left_in_request[s, i] = r.n
                if left_in_shard[s] == 0:
                    on_shard(s, results.pop(s))  # type: ignore[arg-type]
                pending.extend(self._jobs(s, shard, sampling))
            return pending.popleft() if pending else None

        async def worker(session: aiohttp.ClientSession) -> None:
            while (job := take()) is not None:
                completion = await self._sample(session, job)
                results[job.shard][job.request][job.sample] = completion
                key = (job.shard, job.request)
                left_in_request[key] -= 1
                if left_in_request[key] == 0:
                    del left_in_request[key]
                    self.pool.release(key)
                    if progress is not None:
                        progress(1)
                left_in_shard[job.shard] -= 1
                if left_in_shard[job.shard] == 0:
                    del left_in_shard[job.shard]
                    on_shard(job.shard, results.pop(job.shard))  # type: ignore[arg-type]

        n_samples = sum(r.n for shard in shards for r in shard)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=0)  # the workers bound the requests in flight
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=self.headers
        ) as session:
            tasks = [
                asyncio.create_task(worker(session))
                for _ in range(min(self.max_concurrency, n_samples))
            ]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _sample(self, session: Any, job: _Job) -> Completion:
        """One sample, retried on connection errors, timeouts, 408/429/5xx and bad answers.

        A retry goes to another live server when there is one. Waiting while every server
        cools down is not an attempt: each server's next failure is, so an outage ends the
        stage after ``max_retries`` cooldowns (2 + 4 + 8 + 16 + 30 s with the default 5).
        """
        import aiohttp

        key = (job.shard, job.request)
        where = f"shard {job.shard} request {job.request} sample {job.sample}"
        attempt = 0
        avoid = None
        while True:
            server = self.pool.route(key, avoid=avoid)
            if server is None:
                await asyncio.sleep(self.pool.wait_s() + random.uniform(0, 0.5))  # noqa: S311
                continue
            retry_after = 0.0
            server.in_flight += 1
            server.sent += 1
            try:
                if not server.names:  # down at start: ask what it serves before using it
                    await self._probe_late(session, server)
                async with session.post(f"{server.url}/completions", json=job.body) as answer:
                    status = answer.status
                    payload = await answer.text(errors="replace")
                    retry_after = _retry_after(answer.headers.get("Retry-After"))
            except asyncio.TimeoutError:
                error = f"{server.url}: no answer in {self.timeout_s} s"
                self._down(server, error)
            except aiohttp.ClientError as exc:  # refused, reset, died mid-answer, not HTTP
                error = f"{server.url}: {type(exc).__name__}: {exc}"
                self._down(server, error)
            else:
                if status == 200:
                    try:
                        completion = parse_completion(payload, server.names or {self.served_model})
                    except MalformedAnswer as exc:
                        error = server.last_error = f"{server.url}: {exc}"
                    except ValueError as exc:
                        raise ServerError(f"{server.url} {exc}; refusing its samples") from None
                    else:
                        self.pool.mark_up(server)
                        return completion
                elif status in RETRY_STATUSES:
                    error = f"{server.url}: HTTP {status}: {payload[:300]}"
                    if status in (502, 503, 504):  # overloaded or restarting: others take over
                        self._down(server, error)
                    else:
                        server.last_error = error
                else:
                    raise ServerError(
                        f"{server.url}: HTTP {status} for {where} (not retried): {payload[:500]}"
                    )
            finally:
                server.in_flight -= 1
            avoid = server
            self.pool.release(key)  # the retry picks a server afresh
            attempt += 1
            if attempt > self.max_retries:
                raise ServerError(
                    f"{where}: gave up after {self.max_retries} retries ({error}); servers: "
                    f"{self.pool.errors()}. Finished shards are kept: rerun the stage once the "
                    "servers are back"
                )
            self.retries += 1
            backoff = min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
            await asyncio.sleep(max(backoff * random.uniform(0.5, 1), retry_after))  # noqa: S311

    def _down(self, server: Server, error: str) -> None:
        if server.down_until <= time.monotonic():
            log.warning("[openai] %s; skipped for a while", error)
        self.pool.mark_down(server, error)

    async def _probe_late(self, session: Any, server: Server) -> None:
        """Check a server that did not answer at start serves the model, as at start."""
        async with session.get(f"{server.url}/models") as answer:
            payload = await answer.text(errors="replace")
        try:
            cards = served_models(payload)
        except MalformedAnswer as exc:
            raise ServerError(f"{server.url}/models: {exc}") from None
        if self.served_model not in cards:
            raise ServerError(
                f"expected model {self.served_model!r}, but {server.url} serves {sorted(cards)}"
            )
        server.names = frozenset(cards)
        length = cards[self.served_model].get("max_model_len")
        if isinstance(length, int) and length < self.max_context:
            log.warning(
                "[openai] %s has a shorter context (%d) than the others", server.url, length
            )
        log.info("[openai] %s joined", server.url)


def _retry_after(value: str | None) -> float:
    """Seconds of a ``Retry-After`` header (429 and 503 answers), at most 300; 0 if absent."""
    try:
        return min(max(float(value), 0.0), 300.0) if value else 0.0
    except ValueError:
        return 0.0
