"""The servers behind the ``openai`` backend: which one takes a request, which are down, and what
an answer means.

Routing is sticky: every sample of one prompt goes to the server that took its first sample (its
prefix cache holds the prompt), and a new prompt goes to the live server with the fewest samples
in flight. A server that refuses connections, drops one, times out or answers 502/503/504 is
*down* for a cooldown that doubles with each failure in a row (2 s, 4 s, ... at most 30 s);
after it, the next request probes it again, so a restarted server rejoins on its own. A retry
goes to another live server than the one it failed on. Nothing here does I/O: the backend does
the HTTP and tells the pool what happened, so the policy is tested without servers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import FINISH_LENGTH, FINISH_STOP, Completion

#: Answers worth another try (elsewhere or later): timeout, rate limit, server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class MalformedAnswer(ValueError):
    """A 200 answer that is not one completion with its text, finish reason and token count."""


@dataclass
class Server:
    """One server's state as the pool sees it."""

    url: str
    in_flight: int = 0
    sent: int = 0
    failures: int = 0  # connection failures in a row
    down_until: float = 0.0
    last_error: str = ""
    # the names it serves (its /v1/models at start): vLLM answers an alias with its first name
    names: frozenset[str] = frozenset()


class ServerPool:
    """Sticky, least-loaded routing over servers that may go down and come back."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        cooldown_s: float = 2.0,
        max_cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("a server pool needs at least one URL")
        self.servers = [Server(url) for url in urls]
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._sticky: dict[Hashable, Server] = {}

    def live(self) -> list[Server]:
        now = self._clock()
        return [s for s in self.servers if s.down_until <= now]

    def route(self, key: Hashable, avoid: Server | None = None) -> Server | None:
        """The server for the prompt ``key`` (None when every server is down); ``avoid`` (the
        server a retry failed on) is taken only when no other server is live."""
        server = self._sticky.get(key)
        if server is not None and server is not avoid and server.down_until <= self._clock():
            return server
        live = self.live()
        if avoid is not None and len(live) > 1:
            live = [s for s in live if s is not avoid]
        if not live:
            return None
        server = min(live, key=lambda s: (s.in_flight, s.sent))
        self._sticky[key] = server
        return server

    def release(self, key: Hashable) -> None:
        """Forget ``key``'s server once all its samples are done."""
        self._sticky.pop(key, None)

    def mark_down(self, server: Server, error: str) -> float:
        """Take ``server`` out of routing after a connection failure; returns the cooldown.

        The failures of samples already in flight when it went down count once: the cooldown
        grows only with failures seen after it came back."""
        now = self._clock()
        server.last_error = error
        if server.down_until > now:
            return server.down_until - now
        server.failures += 1
        cooldown = min(self.cooldown_s * 2 ** (server.failures - 1), self.max_cooldown_s)
        server.down_until = now + cooldown
        return cooldown

    def mark_up(self, server: Server) -> None:
        server.failures = 0

    def wait_s(self) -> float:
        """Seconds until the first down server may be tried again (0 when one is live)."""
        now = self._clock()
        return max(0.0, min(s.down_until for s in self.servers) - now)

    def errors(self) -> str:
        """Each server's last error, for a message that says why the stage stopped."""
        return "; ".join(f"{s.url}: {s.last_error or 'no error'}" for s in self.servers)


def parse_completion(payload: str, served_names: Collection[str]) -> Completion:
    """The one completion of a ``/v1/completions`` answer with ``n=1``.

    The text and finish reason come from the choice; the token count from ``usage``
    (``completion_tokens``, one sample per request), else from the choice's ``token_ids``.
    A ``model`` not among ``served_names`` raises ValueError (not retried: the server now runs
    another model); anything else off raises :class:`MalformedAnswer`.
    """
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"not JSON ({exc}): {payload[:200]!r}") from None
    if not isinstance(data, dict):
        raise MalformedAnswer(f"not a JSON object: {payload[:200]!r}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise MalformedAnswer(f"model is not a string: {payload[:200]!r}")
    if model is not None and model not in served_names:
        raise ValueError(f"answered as model {model!r}, expected one of {sorted(served_names)}")
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise MalformedAnswer(f"expected one choice: {payload[:200]!r}")
    choice: dict[str, Any] = choices[0]
    text = choice.get("text")
    if not isinstance(text, str):
        raise MalformedAnswer(f"choice without text: {payload[:200]!r}")
    reason = choice.get("finish_reason")
    if reason not in (FINISH_STOP, FINISH_LENGTH):
        raise MalformedAnswer(f"finish_reason {reason!r} (neither stop nor length)")
    usage = data.get("usage")
    n_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if not isinstance(n_tokens, int) and isinstance(choice.get("token_ids"), list):
        n_tokens = len(choice["token_ids"])
    if not isinstance(n_tokens, int) or n_tokens < 0:
        raise MalformedAnswer("no completion token count (usage.completion_tokens)")
    return Completion(text=text, n_tokens=n_tokens, finish_reason=reason)


def served_models(payload: str) -> dict[str, dict[str, Any]]:
    """The model cards of a ``/v1/models`` answer, by id."""
    try:
        data = json.loads(payload)
        cards = {str(card["id"]): card for card in data["data"] if isinstance(card, dict)}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MalformedAnswer(f"not a model list ({exc!r}): {payload[:200]!r}") from None
    return cards
