"""The ``openai`` backend's edges, against a scripted HTTP server (tests/test_servers.py runs
the real vLLM servers): routing, retries, answers it must not trust, its params, and the resumable
wrapper writing shards as they finish."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from servers import free_port

from intervention_training.config import (
    BackendParams,
    ConfigError,
    ProposalsParams,
    backend_for_model,
    backend_with,
)
from intervention_training.errors import ServerError
from intervention_training.generation import Completion, GenerationRequest, SamplingParams
from intervention_training.generation.base import derive_seed, encode_prompt
from intervention_training.generation.openai_backend import OpenAIBackend, completion_body
from intervention_training.generation.servers import (
    MalformedAnswer,
    ServerPool,
    parse_completion,
)
from intervention_training.resume import ResumableBackend

SAMPLING = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=16)


class Scripted:
    """A fake OpenAI server: ``answer(body, count)`` returns (status, payload) per completion."""

    def __init__(
        self,
        model: str,
        answer: Callable[[dict, int], tuple],
        *,
        names: list[str] | None = None,
        port: int | None = None,
        root: str | None = None,
    ) -> None:
        self.model, self.answer = model, answer
        self.names = names or [model]  # what /v1/models lists (vLLM answers with the first)
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: str, headers: dict | None = None) -> None:
                data = payload.encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.endswith("/models"):
                    cards = [
                        {"id": name, "root": root or name, "max_model_len": 512}
                        for name in scripted.names
                    ]
                    self._send(200, json.dumps({"object": "list", "data": cards}))
                else:
                    self._send(404, "{}")

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                scripted.bodies.append(body)
                scripted.headers.append(dict(self.headers))
                self._send(*scripted.answer(body, len(scripted.bodies)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def echo(model: str) -> Callable[[dict, int], tuple[int, str]]:
    """Answers with text naming the sample's seed, so results can be checked per sample."""

    def answer(body: dict, count: int) -> tuple[int, str]:
        choice = {"text": f"seed={body['seed']}", "finish_reason": "stop"}
        usage = {"completion_tokens": 3}
        return 200, json.dumps({"model": model, "choices": [choice], "usage": usage})

    return answer


@pytest.fixture
def model(tiny_model_dir) -> str:
    return str(tiny_model_dir)


def _backend(model: str, *urls: str, **options) -> OpenAIBackend:
    options.setdefault("max_retries", 3)
    return OpenAIBackend(model, base_urls=list(urls), **options)


def _requests(n_requests: int = 5, n: int = 2) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=f"question {i}", n=n, seed=i) for i in range(n_requests)]


def _expected(requests: list[GenerationRequest]) -> list[list[str]]:
    return [[f"seed={derive_seed(r.seed, j)}" for j in range(r.n)] for r in requests]


def test_token_prompts_per_sample_seeds_and_results_in_request_order(model):
    server = Scripted(model, echo(model))
    try:
        backend = _backend(model, server.url, max_concurrency=4)
        requests = _requests()
        out = backend.generate(requests, SAMPLING)
        assert [[c.text for c in cs] for cs in out] == _expected(requests)
        assert all(c.n_tokens == 3 and c.finish_reason == "stop" for cs in out for c in cs)
        sent = {tuple(b["prompt"]) for b in server.bodies}  # token ids, one body per sample
        assert sent == {tuple(encode_prompt(backend.tokenizer, r.prompt)) for r in requests}
        body = server.bodies[0]
        assert len(server.bodies) == 10 and body["n"] == 1
        assert body["top_k"] == 20 and body["stop_token_ids"] and body["model"] == model
        assert backend.max_context == 512  # from the server's model card
    finally:
        server.close()


def test_text_mode_sends_the_rendered_prompt_and_standard_fields_only(model):
    server = Scripted(model, echo(model))
    try:
        backend = _backend(model, server.url, prompt_format="text")
        backend.generate([GenerationRequest(prompt="<p>2+2?", stop=("###",))], SAMPLING)
        (body,) = server.bodies
        assert body["prompt"] == "<p>2+2?" and body["stop"] == ["###"]
        assert not {"top_k", "stop_token_ids", "skip_special_tokens"} & set(body)
    finally:
        server.close()


def test_json_schema_goes_in_the_configured_field():
    spec = {
        "prompt_token_ids": [1, 2],
        "json_schema": {"type": "object"},
        "sampling_params": {
            "seed": 5, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "max_tokens": 4,
            "stop": [], "stop_token_ids": [9], "include_stop_str_in_output": False,
            "skip_special_tokens": True,
        },
    }  # fmt: skip
    body = completion_body(spec, served_model="m")
    assert body["structured_outputs"] == {"json": {"type": "object"}} and "top_k" not in body
    assert completion_body(spec, served_model="m", json_field="guided_json")["guided_json"] == {
        "type": "object"
    }


def test_503_and_malformed_answers_are_retried_then_succeed(model):
    def answer(body: dict, count: int) -> tuple[int, str]:
        if count == 1:
            return 503, "busy"
        if count == 2:
            return 200, '{"choices": []}'
        return echo(model)(body, count)

    server = Scripted(model, answer)
    try:
        backend = _backend(model, server.url, max_concurrency=1)
        requests = _requests(2)
        out = backend.generate(requests, SAMPLING)
        assert [[c.text for c in cs] for cs in out] == _expected(requests)
        assert backend.retries == 2
    finally:
        server.close()


def test_a_400_is_not_retried_and_the_message_says_what_the_server_said(model):
    server = Scripted(model, lambda body, count: (400, '{"message": "prompt too long"}'))
    try:
        backend = _backend(model, server.url)
        with pytest.raises(ServerError, match="HTTP 400.*prompt too long"):
            backend.generate(_requests(1, 1), SAMPLING)
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_retries_run_out_with_a_message_naming_the_servers(model):
    server = Scripted(model, lambda body, count: (500, "boom"))
    try:
        backend = _backend(model, server.url, max_retries=2)
        with pytest.raises(ServerError, match="gave up after 2 retries.*HTTP 500") as info:
            backend.generate(_requests(1, 1), SAMPLING)
        assert "rerun the stage" in str(info.value) and len(server.bodies) == 3
    finally:
        server.close()


def test_an_answer_from_another_model_is_refused(model):
    server = Scripted(model, echo("impostor/model"))
    try:
        with pytest.raises(ServerError, match="impostor/model"):
            _backend(model, server.url).generate(_requests(1, 1), SAMPLING)
    finally:
        server.close()


def test_a_dead_server_is_skipped_while_another_lives(model):
    server = Scripted(model, echo(model))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    try:
        backend = _backend(model, dead, server.url, max_concurrency=4)
        requests = _requests(6)
        assert [[c.text for c in cs] for cs in backend.generate(requests, SAMPLING)] == (
            _expected(requests)
        )
        assert len(server.bodies) == 12
    finally:
        server.close()


def test_no_server_answering_fails_at_start_naming_each(model):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError, match="no server of backend.base_urls answers") as info:
        _backend(model, dead, max_retries=0)
    assert dead in str(info.value)


def test_the_api_key_comes_from_the_named_variable(model, monkeypatch):
    server = Scripted(model, echo(model))
    try:
        monkeypatch.setenv("INT_TEST_KEY", "sk-test")
        backend = _backend(model, server.url, api_key_env="INT_TEST_KEY")
        backend.generate(_requests(1, 1), SAMPLING)
        assert server.headers[0]["Authorization"] == "Bearer sk-test"
        monkeypatch.delenv("INT_TEST_KEY")
        with pytest.raises(ServerError, match="INT_TEST_KEY"):
            _backend(model, server.url, api_key_env="INT_TEST_KEY")
    finally:
        server.close()


def test_describe_has_the_served_model_and_no_urls(model):
    server = Scripted(model, echo(model))
    try:
        described = _backend(model, server.url).describe()
        assert described["served_model"] == model and described["backend"] == "openai"
        assert server.url not in json.dumps(described)  # adding a server keeps the shards
    finally:
        server.close()


# --- the pool, without servers ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_routing_is_sticky_per_prompt_and_least_loaded_otherwise():
    pool = ServerPool(["a", "b"], clock=Clock())
    first = pool.route("p1")
    first.in_flight += 1
    second = pool.route("p2")
    assert second is not first  # least loaded
    second.in_flight += 5
    assert pool.route("p1") is first  # sticky, though another is less loaded now
    pool.release("p1")
    assert pool.route("p3") is first


def test_a_down_server_cools_down_and_in_flight_failures_count_once():
    clock = Clock()
    pool = ServerPool(["a", "b"], cooldown_s=2.0, clock=clock)
    a = pool.route("p")
    assert pool.mark_down(a, "refused") == 2.0
    for _ in range(10):  # the other samples in flight on it fail too
        pool.mark_down(a, "refused")
    assert a.failures == 1 and pool.route("p") is not a and pool.wait_s() == 0.0
    b = pool.servers[1] if a is pool.servers[0] else pool.servers[0]
    pool.mark_down(b, "refused")
    assert pool.route("q") is None and pool.wait_s() == pytest.approx(2.0)
    clock.now = 2.5  # a is tried again; failing again doubles its cooldown
    assert pool.route("q") is a
    assert pool.mark_down(a, "refused") == 4.0
    assert "a: refused" in pool.errors()


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        '{"choices": [{"text": "x", "finish_reason": "abort"}], "usage": {"completion_tokens": 1}}',
        '{"choices": [{"text": 3, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}',
        '{"choices": [{"text": "x", "finish_reason": "stop"}]}',
        '{"choices": [{"text": "x", "finish_reason": "stop"}, {"text": "y"}]}',
    ],
)
def test_malformed_answers_are_named(payload):
    with pytest.raises(MalformedAnswer):
        parse_completion(payload, {"m"})


def test_token_count_falls_back_to_token_ids():
    choice = {"text": "ab", "finish_reason": "length", "token_ids": [4, 5]}
    payload = json.dumps({"model": "m", "choices": [choice]})
    assert parse_completion(payload, {"m"}) == Completion("ab", 2, "length")


# --- params -------------------------------------------------------------------------------------


def test_openai_params_are_checked_by_name():
    with pytest.raises(ValueError, match="not an http"):
        BackendParams(name="openai", base_urls=["localhost:8000"])
    with pytest.raises(ConfigError, match="backend.base_urls"):
        BackendParams(name="openai").check_complete()
    proposer = ProposalsParams(model="org/big", backend={"base_urls": ["http://h:1/v1/"]})
    merged = backend_with(
        BackendParams(name="openai", base_urls=["http://p:1/v1"]), proposer.backend
    )
    assert merged.base_urls == ("http://h:1/v1",)
    with pytest.raises(ValueError, match="max_concurency"):
        ProposalsParams(backend={"max_concurency": 4})


def test_base_urls_can_come_from_the_environment_of_the_job():
    from intervention_training.config import expand_base_urls

    params = BackendParams(name="openai", base_urls=["env:INT_SERVER_URLS", "http://fixed:1/v1"])
    env = {"INT_SERVER_URLS": "http://gpu03:8000/v1/, http://gpu04:8000/v1"}
    assert expand_base_urls(params.base_urls, env) == (
        "http://gpu03:8000/v1",
        "http://gpu04:8000/v1",
        "http://fixed:1/v1",
    )
    with pytest.raises(ConfigError, match=r"\$INT_SERVER_URLS, which is unset"):
        expand_base_urls(params.base_urls, {})
    with pytest.raises(ConfigError, match="'gpu03:8000' is not an http"):
        expand_base_urls(params.base_urls, {"INT_SERVER_URLS": "gpu03:8000"})
    with pytest.raises(ConfigError, match="twice"):
        expand_base_urls(params.base_urls, {"INT_SERVER_URLS": "http://fixed:1/v1"})
    with pytest.raises(ValueError, match="expected env:VARIABLE_NAME"):
        BackendParams(name="openai", base_urls=["env:bad name"])


# --- the resumable wrapper with a backend that reports shards as they finish --------------------


class OutOfOrder:
    """A backend with ``generate_shards`` that finishes shards last-first and can die midway."""

    name = "fake"
    model_id = "fake"
    tokenizer = None
    max_context = 100

    def __init__(self, die_after: int | None = None) -> None:
        self.die_after = die_after
        self.generated: list[int] = []

    def describe(self) -> dict[str, str]:
        return {"backend": "fake"}

    def generate_shards(self, shards, sampling, on_shard, *, progress=None) -> None:
        for k in reversed(range(len(shards))):
            if self.die_after is not None and len(self.generated) == self.die_after:
                raise ServerError("every server is down")
            results = [
                [Completion(f"{r.prompt}/{j}", 1, "stop") for j in range(r.n)] for r in shards[k]
            ]
            self.generated.append(len(shards[k]))
            on_shard(k, results)


def test_shards_are_written_as_they_finish_and_a_rerun_generates_only_the_rest(tmp_path):
    requests = _requests(7, 2)
    dying = ResumableBackend(OutOfOrder(die_after=2), tmp_path, shard_size=2)
    with pytest.raises(ServerError):
        dying.generate(requests, SAMPLING)
    assert len(list(tmp_path.glob("*/shard-*.parquet"))) == 2  # the two that finished
    backend = OutOfOrder()
    out = ResumableBackend(backend, tmp_path, shard_size=2).generate(requests, SAMPLING)
    assert backend.generated == [2, 2]  # only the two shards not on disk
    assert [[c.text for c in cs] for cs in out] == [
        [f"{r.prompt}/{j}" for j in range(r.n)] for r in requests
    ]


def test_a_server_answering_errors_hands_its_samples_to_the_others(model):
    broken = Scripted(model, lambda body, count: (503, "overloaded"))
    healthy = Scripted(model, echo(model))
    try:
        backend = _backend(model, broken.url, healthy.url, max_concurrency=4, max_retries=2)
        requests = _requests(8)
        out = backend.generate(requests, SAMPLING)
        assert [[c.text for c in cs] for cs in out] == _expected(requests)
        assert len(healthy.bodies) == 16 and len(broken.bodies) < 16
    finally:
        broken.close()
        healthy.close()


def test_an_outage_longer_than_the_retries_backoff_ends_when_the_server_is_back(model):
    first = Scripted(model, echo(model))
    port = first.httpd.server_address[1]
    pool = ServerPool([first.url], cooldown_s=0.2)
    backend = _backend(model, first.url, pool=pool, max_retries=4)
    first.close()  # down from here; back on the same port 1.5 s later
    back: list[Scripted] = []
    timer = threading.Timer(1.5, lambda: back.append(Scripted(model, echo(model), port=port)))
    timer.start()
    try:
        requests = _requests(3, 1)
        out = backend.generate(requests, SAMPLING)  # waits with every server down are free
        assert [[c.text for c in cs] for cs in out] == _expected(requests)
        assert back and len(back[0].bodies) == 3
    finally:
        timer.join()
        for server in back:
            server.close()


def test_a_server_down_at_start_joins_later_and_is_checked_first(model):
    port = free_port()
    late_url = f"http://127.0.0.1:{port}/v1"

    def slow(body: dict, count: int) -> tuple[int, str]:
        time.sleep(0.02)
        return echo(model)(body, count)

    live = Scripted(model, slow)
    pool = ServerPool([late_url, live.url], cooldown_s=0.05)
    backend = _backend(model, late_url, live.url, pool=pool, max_concurrency=2)
    # vLLM lists every served name and answers with the first: an alias must be accepted
    late = Scripted(model, echo("alias"), names=["alias", model], port=port)
    try:
        requests = _requests(20, 1)
        out = backend.generate(requests, SAMPLING)
        assert [[c.text for c in cs] for cs in out] == _expected(requests)
        assert late.bodies and len(late.bodies) + len(live.bodies) == 20
    finally:
        live.close()
        late.close()


def test_429_waits_as_long_as_retry_after_says(model):
    def answer(body: dict, count: int) -> tuple:
        if count == 1:
            return 429, "slow down", {"Retry-After": "1"}
        return echo(model)(body, count)

    server = Scripted(model, answer)
    try:
        start = time.monotonic()
        _backend(model, server.url).generate(_requests(1, 1), SAMPLING)
        assert time.monotonic() - start >= 1.0 and len(server.bodies) == 2
    finally:
        server.close()


def test_a_proposer_or_judge_does_not_inherit_the_policys_served_name():
    policy = BackendParams(
        name="openai", base_urls=["http://p:1/v1"], served_model_name="policy", max_model_len=4096
    )
    other = backend_for_model(policy, {"base_urls": ["http://q:1/v1"]})
    assert other.served_model_name is None and other.max_model_len is None
    assert backend_for_model(policy, {"served_model_name": "big"}).served_model_name == "big"
    assert backend_with(policy, {"base_urls": ["http://q:1/v1"]}).served_model_name == "policy"


def test_a_shard_the_backend_never_reports_is_an_error_not_a_gap(tmp_path):
    class Forgetful(OutOfOrder):
        def generate_shards(self, shards, sampling, on_shard, *, progress=None) -> None:
            on_shard(0, [[Completion("x", 1, "stop")] * r.n for r in shards[0]])

    with pytest.raises(RuntimeError, match=r"did not report shards \[1\]"):
        ResumableBackend(Forgetful(), tmp_path, shard_size=2).generate(_requests(4), SAMPLING)


def test_shards_are_tokenized_when_reached_not_all_at_once(model):
    server = Scripted(model, echo(model))
    try:
        backend = _backend(model, server.url, max_concurrency=1)
        events: list[str] = []
        build = backend._jobs

        def recording(s, shard, sampling):
            events.append(f"tokenize {s}")
            return build(s, shard, sampling)

        backend._jobs = recording
        shards = [_requests(2, 1), _requests(2, 1), _requests(1, 2)]
        backend.generate_shards(shards, SAMPLING, lambda s, r: events.append(f"done {s}"))
        assert events == ["tokenize 0", "done 0", "tokenize 1", "done 1", "tokenize 2", "done 2"]
    finally:
        server.close()


def test_a_local_model_folder_served_under_another_name_is_recognised(model, tmp_path):
    # the CPU default's model is the folder data/models/base; a server started with its
    # absolute path serves it under that path: the card's root says it is the same folder
    server = Scripted("/elsewhere/name", echo("/elsewhere/name"), root=model)
    try:
        backend = _backend(model, server.url)
        assert backend.served_model == "/elsewhere/name"
        assert backend.generate(_requests(1, 1), SAMPLING)[0][0].text.startswith("seed=")
        with pytest.raises(ServerError, match="expected model 'pinned'"):
            _backend(model, server.url, served_model_name="pinned")  # a given name is kept
    finally:
        server.close()
    other = Scripted("/elsewhere/name", echo("/elsewhere/name"), root=str(tmp_path))
    try:
        with pytest.raises(ServerError, match="serves"):
            _backend(model, other.url, max_retries=0)  # another folder: refused
    finally:
        other.close()
