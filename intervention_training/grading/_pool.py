"""A small pool of persistent grader processes with a hard per-request deadline.

Why processes: sympy can run for hours on innocent-looking input (``9^{9^{9}}`` compared with a
number), and math-verify's own timeouts use ``signal.alarm`` (main thread only). Here every
request runs in a separate interpreter; when a request passes its deadline the parent kills that
process, reports a timeout, and launches a replacement. This works from any thread of any process.

Design:

* Workers are fresh interpreters (``subprocess`` running ``_worker.py``; the equivalent of the
  ``spawn`` start method, safe when torch/CUDA is loaded, and without re-importing the parent's
  ``__main__``). They start lazily, are reused across calls, and are killed at interpreter exit.
* A worker is used by one thread at a time (check-out / check-in under a condition variable);
  parallelism comes from several threads each holding one worker (a "lease"). Batches keep
  requests with the same reference on the same worker, whose parse cache then pays off.
* The deadline covers the request itself, not the worker's start-up (imports, ~0.5 s), which has
  its own generous limit.
* After ``os.fork()`` the child forgets the parent's workers (it must not kill or share them).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WORKER_SCRIPT = str(Path(__file__).with_name("_worker.py"))
STARTUP_TIMEOUT_S = 120.0


class WorkerTimeout(Exception):
    """The request passed its deadline; the worker was killed."""


class WorkerCrash(Exception):
    """The worker died or could not be started."""


def default_workers() -> int:
    """Default pool size: the CPU count, between 1 and 8."""
    return max(1, min(8, os.cpu_count() or 1))


class _Worker:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._ready = False

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        if not sys.executable:
            raise WorkerCrash("sys.executable is empty; cannot start a grader worker")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONSTARTUP", None)
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._ready = False
        self._buf = b""

    def _read_line(self, deadline: float) -> bytes | None:
        """One protocol line, or ``None`` at the deadline. Raises WorkerCrash on EOF."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise WorkerCrash(f"grader worker exited (code {self.proc.poll()})")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def ensure_ready(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.launch()
        if self._ready:
            return
        line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if line is None:
            self.kill()
            raise WorkerCrash("grader worker did not start in time")
        self._ready = True

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait at most ``timeout_s`` seconds for its answer."""
        self.ensure_ready()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerCrash(f"grader worker pipe closed: {exc}") from exc
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            self.kill()
            raise WorkerTimeout
        return json.loads(line)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        self._ready = False
        self._buf = b""
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class _Lease:
    """One worker checked out of a pool; a worker lost to a timeout or crash is replaced."""

    def __init__(self, pool: WorkerPool, worker: _Worker) -> None:
        self._pool = pool
        self._worker: _Worker | None = worker

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self._worker is None:
            self._worker = self._pool._acquire()
        w = self._worker
        try:
            return w.call(request, timeout_s)
        except WorkerTimeout:
            self._pool.stats.killed_on_timeout += 1
            self._worker = None
            self._pool._release(w, replace=True)
            raise
        except WorkerCrash:
            self._pool.stats.crashed += 1
            w.kill()
            self._worker = None
            self._pool._release(w, replace=True)
            raise
        except BaseException:
            w.kill()
            self._worker = None
            self._pool._release(w, replace=True)
            raise

    def close(self) -> None:
        if self._worker is not None:
            w, self._worker = self._worker, None
            self._pool._release(w, replace=False)


@dataclass
class PoolStats:
    """Counters, for tests and diagnostics."""

    started: int = 0
    killed_on_timeout: int = 0
    crashed: int = 0


class WorkerPool:
    """Check-out/check-in pool of grader workers; thread-safe."""

    def __init__(self, max_workers: int | None = None) -> None:
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._max = max_workers or default_workers()
        self._closed = False
        self.stats = PoolStats()

    @property
    def max_workers(self) -> int:
        return self._max

    def ensure_capacity(self, n: int) -> None:
        """Allow at least ``n`` workers (the pool never shrinks)."""
        with self._cond:
            if n > self._max:
                self._max = n
                self._cond.notify_all()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerCrash("grader pool is shut down")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self._max:
                    w = _Worker()
                    self._all.add(w)
                    self.stats.started += 1
                    return w
                self._cond.wait()

    def _release(self, w: _Worker, *, replace: bool) -> None:
        with self._cond:
            if replace:
                # Launch the replacement now so its start-up overlaps other work.
                self._all.discard(w)
                if not self._closed:
                    new = _Worker()
                    try:
                        new.launch()
                    except Exception:  # noqa: BLE001 - retried lazily on next acquire
                        new = None
                    if new is not None:
                        self._all.add(new)
                        self._idle.append(new)
                        self.stats.started += 1
            else:
                self._idle.append(w)
            self._cond.notify()

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Run one request on some worker. Raises WorkerTimeout or WorkerCrash."""
        with self.lease() as lease:
            return lease.call(request, timeout_s)

    @contextmanager
    def lease(self) -> Iterator[_Lease]:
        """Hold one worker for a sequence of calls (keeps its parse cache warm)."""
        lease = _Lease(self, self._acquire())
        try:
            yield lease
        finally:
            lease.close()

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [w.proc.pid for w in self._all if w.proc is not None]

    def shutdown(self) -> None:
        """Kill every worker; the pool refuses further work."""
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for w in workers:
            w.kill()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> WorkerPool:
    """The module-level pool, created on first use and shut down at interpreter exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool()
        return _POOL


def shutdown_pool() -> None:
    """Kill the module-level pool's workers (a new pool is created on next use)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown()


def _forget_in_child() -> None:
    # The child of a fork must not use or kill the parent's workers.
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


atexit.register(shutdown_pool)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
