"""Grader worker process: reads JSON requests on stdin, answers JSON lines on its protocol pipe.

Started by ``_pool.py`` as ``python <this file>`` (a fresh interpreter: safe whether or not the
parent imported torch or CUDA, and it imports neither the parent's ``__main__`` nor the
``intervention_training`` package, only ``_equivalence.py`` next to it).

Protocol (one JSON object per line):

* parent -> worker: ``{"op": "equiv", "candidate": str, "reference": str}`` or
  ``{"op": "reference", "reference": str}`` or ``{"op": "ping"}``.
* worker -> parent: first ``{"ready": true}`` once imports are done, then for each request
  ``{"ok": true, "value": ..., "detail": str|null}`` or ``{"ok": false, "error": "Type: msg"}``.

The worker has no time limit of its own (math-verify's signal-based timeouts are disabled); the
parent kills it at the deadline. It exits on stdin EOF or when its parent process goes away.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def main() -> None:
    """Serve requests until stdin closes."""
    # Keep the protocol channel private: anything printed by libraries goes to stderr.
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()

    if __package__:
        from . import _equivalence as eq
    else:  # started as a script
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import _equivalence as eq  # type: ignore[no-redef]

    eq.equivalent("1", "1")  # warm the parser (ANTLR tables) before announcing readiness
    proto.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "equiv":
                value, detail = eq.equivalent(req["candidate"], req["reference"])
                resp = {"ok": True, "value": value, "detail": detail}
            elif op == "reference":
                resp = {"ok": True, "value": eq.reference_issue(req["reference"]), "detail": None}
            elif op == "ping":
                resp = {"ok": True, "value": os.getpid(), "detail": None}
            else:
                resp = {"ok": False, "error": f"ValueError: unknown op {op!r}"}
        except RecursionError:
            resp = {"ok": False, "error": "RecursionError: expression too deeply nested"}
        except Exception as exc:  # noqa: BLE001 - every failure is reported, never fatal
            msg = " ".join(str(exc).split())[:300]
            resp = {"ok": False, "error": f"{type(exc).__name__}: {msg}"}
        proto.write(json.dumps(resp) + "\n")


if __name__ == "__main__":
    main()
