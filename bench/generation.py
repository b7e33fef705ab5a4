"""CPU generation: the transformers backend's batched generation against one-prompt-at-a-time HF.

Usage (from the repository root):

    .venv/bin/python bench/generation.py [--quick] [--model PATH] [--prompts 8] [--new-tokens 64]

Model: ``data/models/base`` (SmolLM2-135M-Instruct converted by the ``base_model`` stage) when
present; ``--quick`` (or its absence) uses the tiny random model of ``tests/tiny_model.py``.
Prompts: the first MATH-500 problems from ``../shared/data`` (a fixed list when absent), rendered
with the model's chat template as the rollouts stage does. Greedy decoding (temperature 0).

Compared, in one process, same prompts, same budget:

* ``HF generate, one prompt at a time`` -- ``model.generate(do_sample=False)`` per prompt;
* ``backend, batch_size=1`` -- the project's backend, one row per forward pass;
* ``backend, batch_size=N`` -- the project's backend, all prompts in one left-padded batch.

Reports generated tokens/s and whether every text is identical to the one-at-a-time output.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import SHARED_DATA, SMALL_PROBLEMS, bench_model, machine, table

FALLBACK_PROMPTS = [
    *SMALL_PROBLEMS,
    "Compute 2^10 - 1.",
    "Find the area of a circle with radius 3.",
]


def load_problems(n: int) -> list[str]:
    path = SHARED_DATA / "benchmarks" / "math500.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as f:
            probs = [json.loads(line)["problem"] for line in f if line.strip()]
        return probs[:n]
    return (FALLBACK_PROMPTS * (n // len(FALLBACK_PROMPTS) + 1))[:n]


def hf_one_at_a_time(backend, prompts: list[str], new_tokens: int) -> tuple[list[str], int, float]:
    """Plain ``model.generate`` per prompt, greedy; texts decoded as the backend decodes."""
    from transformers import GenerationConfig

    model, tok = backend.model, backend.tokenizer
    eos = backend._eos_ids
    config = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=new_tokens, eos_token_id=eos,
        pad_token_id=backend._pad_id,
    )  # fmt: skip
    texts, n_tokens = [], 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            ids = tok(p, add_special_tokens=False, return_tensors="pt")["input_ids"]
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
            )
            new = out[0, ids.shape[1] :].tolist()
            n_tokens += len(new)
            texts.append(backend._decode_continuation(ids[0].tolist(), new))
    return texts, n_tokens, time.perf_counter() - t0


def backend_generate(backend, prompts: list[str], new_tokens: int, batch_size: int):
    from intervention_training.generation import GenerationRequest, SamplingParams

    backend.batch_size = batch_size
    sampling = SamplingParams(temperature=0.0, max_new_tokens=new_tokens)
    reqs = [GenerationRequest(prompt=p, n=1, seed=i) for i, p in enumerate(prompts)]
    t0 = time.perf_counter()
    outs = backend.generate(reqs, sampling)
    dt = time.perf_counter() - t0
    texts = [o[0].text for o in outs]
    return texts, sum(o[0].n_tokens for o in outs), dt


def run(model: str, n_prompts: int, new_tokens: int, reps: int = 1) -> dict:
    """Measure the three ways; return {"rows": [...], "identical": {...}, "texts": ...}."""
    from intervention_training.backends import make_backend
    from intervention_training.prompts import rollout_prompt

    backend = make_backend("transformers", model, batch_size=n_prompts)
    prompts = [rollout_prompt(backend.tokenizer, p) for p in load_problems(n_prompts)]
    # warm-up (first forward pass allocates and compiles kernels)
    backend_generate(backend, prompts[:1], 4, 1)
    results: dict[str, list[tuple[list[str], int, float]]] = {}
    for _ in range(reps):  # interleaved, so load from other jobs hits all three alike
        results.setdefault("hf", []).append(hf_one_at_a_time(backend, prompts, new_tokens))
        results.setdefault("b1", []).append(backend_generate(backend, prompts, new_tokens, 1))
        results.setdefault("bn", []).append(
            backend_generate(backend, prompts, new_tokens, n_prompts)
        )
    ref_texts = results["hf"][0][0]
    prompt_tokens = [backend.count_tokens(p) for p in prompts]
    rows, identical = [], {}
    names = {
        "hf": "HF generate, one prompt at a time",
        "b1": "backend, batch_size=1",
        "bn": f"backend, batch_size={n_prompts}",
    }
    best_hf = min(r[2] for r in results["hf"])
    for key, label in names.items():
        best = min(results[key], key=lambda r: r[2])
        texts, toks, dt = best
        identical[label] = sum(a == b for a, b in zip(texts, ref_texts, strict=True))
        rows.append(
            [label, toks, dt, toks / dt, best_hf / dt, f"{identical[label]}/{len(prompts)}"]
        )
    diffs = []
    for key in ("b1", "bn"):
        texts = results[key][0][0]
        for i, (a, b) in enumerate(zip(texts, ref_texts, strict=True)):
            if a != b:
                k = next(
                    (j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b))
                )
                diffs.append((names[key], i, k, a[k : k + 30], b[k : k + 30]))
    return {
        "rows": rows,
        "identical": identical,
        "diffs": diffs,
        "prompt_tokens": prompt_tokens,
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model")
    ap.add_argument("--model", default=None, help="model folder (default: data/models/base)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions (best is kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, label = bench_model(args.model, args.quick)
    print(f"machine: {machine()}")
    print(f"model: {label}; {args.prompts} prompts x {args.new_tokens} new tokens, greedy")
    r = run(model, args.prompts, args.new_tokens, reps=1 if args.quick else args.reps)
    print(f"torch threads: {r['threads']}; prompt tokens: {r['prompt_tokens']}\n")
    print(
        table(
            ["generation", "tokens", "seconds", "tokens/s", "speed-up", "texts identical"],
            r["rows"],
        )
    )
    for name, i, k, a, b in r["diffs"]:
        print(f"  differs: {name}, prompt {i}, from char {k}: {a!r} vs {b!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
