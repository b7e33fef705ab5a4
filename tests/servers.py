"""Real vLLM OpenAI servers on 127.0.0.1 for the server tests and the server benchmark.

A helper module, not a test file. Each server is ``python -m vllm.entrypoints.openai.api_server``
with the command line :func:`intervention_training.serving.vllm_server_command` builds (the
offline backend's engine settings), its own port, and its OpenMP threads bound to one core so
that two servers on a small machine do not fight over the same one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from intervention_training.config import BackendParams
from intervention_training.serving import vllm_server_command, wait_healthy

#: float32 (the offline tests' dtype) and a small KV cache: a tiny model needs little.
SERVER_PARAMS = BackendParams(name="vllm", dtype="float32", kv_cache_gib=0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One server process; ``url`` is its ``http://127.0.0.1:port/v1``."""

    model_dir: Path
    port: int
    log_path: Path
    core: int = 0
    aliases: Sequence[str] = ()
    params: BackendParams = SERVER_PARAMS
    env: dict[str, str] = field(default_factory=dict)
    extra: Sequence[str] = ()  # more vLLM flags
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        argv = vllm_server_command(
            self.model_dir, self.params, port=self.port, on_cpu=True, extra=self.extra
        )
        at = argv.index("--served-model-name") + 2
        return argv[:at] + list(self.aliases) + argv[at:]

    def start(self) -> None:
        env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND=str(self.core % (os.cpu_count() or 1)))
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **self.env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def wait(self, timeout_s: float = 240.0) -> None:
        try:
            wait_healthy(self.url, timeout_s, self.process)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n{tail}") from None

    def kill(self) -> None:
        """SIGKILL the server and its engine process (its whole session)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_servers(servers: Sequence[Server], timeout_s: float = 240.0) -> None:
    """Start ``servers`` together and wait until each is healthy (stopping all on failure)."""
    for server in servers:
        server.start()
    try:
        for server in servers:
            server.wait(timeout_s)
    except BaseException:
        for server in servers:
            server.stop()
        raise
