"""GPU generation with vLLM: the project's backend against bare ``vllm.LLM.generate``.

Prepared for a GPU machine with the ``vllm`` extra installed (``bash scripts/setup.sh vllm``); it
exits with a message (status 0) when vLLM or a CUDA GPU is absent. vLLM is imported lazily.

Usage (from the repository root):

    .venv/bin/python bench/gpu_vllm.py [--quick] [--model NAME] [--problems 64] [--samples 4]
        [--max-new-tokens 1024] [--gpu-memory-utilization 0.85]

Part 1 -- rollouts: the rollouts stage's own code (``rollouts.run_rollouts`` through
``make_backend("vllm", model, ...)``: one vLLM request per sample with its own seed, token-id
prompts, stop ids) against a bare ``vllm.LLM.generate`` of the same prompt token ids with
``SamplingParams(n=K, temperature, top_p, top_k, max_tokens, seed)`` in a single call. Both use
the same engine instance, so model load time is excluded; target: backend overhead < 10% of the
bare call's wall time (generated tokens/s reported for both).

Part 2 -- proposals-like workload: many long shared prefixes (problem + reference + attempt,
several proposals per attempt) with short continuations, run on two engines, prefix caching on and
off (``enable_prefix_caching``), through the project's backend. Reports tokens/s and the speed-up
from caching.

Each engine is torn down before the next is created (``del`` + ``gc`` + ``torch.cuda.empty_cache``);
``--quick`` uses 16 problems and 256 new tokens.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

from _common import SHARED_DATA, machine, table


def _have_gpu() -> str | None:
    """None when vLLM and a CUDA GPU are usable, else the reason."""
    try:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return "vllm is not installed (bash scripts/setup.sh vllm)"
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    except Exception as exc:  # noqa: BLE001
        return f"cannot check for a GPU: {exc}"
    return None


def load_problems(n: int) -> list[dict]:
    path = SHARED_DATA / "benchmarks" / "math500.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        rows = [
            {"problem": f"Compute {i} * {i + 7} and explain.", "solution": "...", "answer": "0"}
            for i in range(n)
        ]
    return [
        {
            "problem_id": f"p{i}",
            "problem": r["problem"],
            "answer": str(r.get("answer", "")),
            "reference_solution": r.get("solution", ""),
        }
        for i, r in enumerate(rows[:n])
    ]


def _free(obj) -> None:
    import torch

    del obj
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_rollouts(args, problems) -> list[list[object]]:
    from vllm import SamplingParams as VSP

    from intervention_training.backends import make_backend
    from intervention_training.config import RolloutsParams
    from intervention_training.prompts import rollout_prompt
    from intervention_training.rollouts import run_rollouts

    backend = make_backend(
        "vllm",
        args.model,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        enable_prefix_caching=True,
    )
    params = RolloutsParams(
        samples_per_problem=args.samples,
        sampling={
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
            "max_new_tokens": args.max_new_tokens,
        },
        seed=0,
    )
    tok = backend.tokenizer
    prompts = [rollout_prompt(tok, p["problem"]) for p in problems]
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    bare_params = VSP(
        n=args.samples,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        max_tokens=args.max_new_tokens,
        seed=0,
    )
    # warm-up: CUDA graphs, allocator
    backend.llm.generate([{"prompt_token_ids": ids[0]}], VSP(max_tokens=8), use_tqdm=False)
    rows = []
    for rep in range(args.reps):  # interleaved; the prefix cache is reset between runs
        for name in ("bare vllm.LLM.generate", "project backend (run_rollouts)"):
            _reset_prefix_cache(backend.llm)
            t0 = time.perf_counter()
            if name.startswith("bare"):
                outs = backend.llm.generate(
                    [{"prompt_token_ids": i} for i in ids], bare_params, use_tqdm=False
                )
                n_tok = sum(len(o.token_ids) for out in outs for o in out.outputs)
            else:
                out_rows = run_rollouts(problems, backend, params)
                n_tok = sum(r["n_tokens"] for r in out_rows)
            dt = time.perf_counter() - t0
            rows.append([name, rep + 1, n_tok, dt, n_tok / dt])
    _free(backend)
    bare = min(r[3] for r in rows if r[0].startswith("bare"))
    for r in rows:
        r.append(f"{100 * (r[3] / bare - 1):+.1f}%")
    return rows


def _reset_prefix_cache(llm) -> None:
    reset = getattr(llm, "reset_prefix_cache", None)
    if reset is not None:
        try:
            reset()
        except Exception:  # noqa: BLE001, S110 - older vLLM: nothing to reset
            pass


def bench_prefix_caching(args, problems) -> list[list[object]]:
    from intervention_training.backends import make_backend
    from intervention_training.generation import GenerationRequest, SamplingParams
    from intervention_training.generation.base import render_chat

    rows = []
    for caching in (True, False):
        backend = make_backend(
            "vllm",
            args.model,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            enable_prefix_caching=caching,
        )
        tok = backend.tokenizer
        attempt = "\n\n".join(f"Step {i}: some reasoning about the problem." * 6 for i in range(30))
        reqs = []
        for p in problems:
            msgs = [
                {
                    "role": "user",
                    "content": f"{p['problem']}\n\nReference solution:\n{p['reference_solution']}"
                    f"\n\nAttempt to audit:\n{attempt}",
                },
            ]
            prompt = render_chat(tok, msgs)
            # several proposals per attempt, as the proposals stage asks (shared prefix)
            reqs.append(GenerationRequest(prompt=prompt, n=args.samples, seed=len(reqs)))
        sampling = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=128)
        backend.generate(reqs[:1], SamplingParams(max_new_tokens=4))  # warm-up
        _reset_prefix_cache(backend.llm)
        t0 = time.perf_counter()
        outs = backend.generate(reqs, sampling)
        dt = time.perf_counter() - t0
        n_tok = sum(c.n_tokens for out in outs for c in out)
        n_prompt = sum(backend.count_tokens(r.prompt) * r.n for r in reqs)
        rows.append([f"prefix caching {'on' if caching else 'off'}", n_prompt, n_tok, dt])
        _free(backend)
    off = rows[1][3]
    for r in rows:
        r.append(off / r[3])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="16 problems, 256 new tokens")
    ap.add_argument("--model", default="Qwen/Qwen3-4B-Instruct-2507")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4, help="samples (or proposals) per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--skip-prefix", action="store_true", help="only part 1")
    args = ap.parse_args()
    if args.quick:
        args.problems, args.max_new_tokens = min(args.problems, 16), min(args.max_new_tokens, 256)
    why = _have_gpu()
    if why:
        print(f"skipped: {why}; this benchmark needs vLLM on a CUDA GPU")
        return 0
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"machine: {machine()}; GPU: {torch.cuda.get_device_name(0)}")
    print(f"model {args.model}; {args.problems} problems x {args.samples} samples\n")
    problems = load_problems(args.problems)
    rows = bench_rollouts(args, problems)
    print("## rollouts: project backend vs bare vllm.LLM.generate (target overhead < 10%)")
    print(table(["path", "rep", "tokens", "seconds", "tokens/s", "vs best bare"], rows))
    if not args.skip_prefix:
        rows = bench_prefix_caching(args, problems)
        print("\n## proposals-like workload (long shared prefixes, short outputs)")
        print(table(["engine", "prompt tokens", "new tokens", "seconds", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
