"""JSON-schema constrained decoding helpers built on xgrammar.

:class:`JsonGrammarCache` compiles each distinct schema once per tokenizer; :class:`RowGrammar`
wraps one ``GrammarMatcher`` for one generated row (rows of a batch may use different schemas).
"""

from __future__ import annotations

import json
from typing import Any

import torch


def xgrammar_version() -> str:
    """The installed xgrammar version (``"unknown"`` if it cannot be determined)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xgrammar")
    except PackageNotFoundError:
        return "unknown"


def schema_key(schema: dict) -> str:
    """Canonical text of a JSON schema, used as its cache key."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


class JsonGrammarCache:
    """Compiles JSON schemas to xgrammar grammars for one tokenizer and caches them.

    ``vocab_size`` is the model's vocabulary size (the width of its logits), which may exceed the
    tokenizer's. ``stop_token_ids`` are the tokens that end generation once the JSON is complete.
    Whitespace between JSON elements is not free (``any_whitespace=False``): small models otherwise
    tend to emit whitespace forever.

    Tokens holding a raw control character (bytes 0x00-0x1f) are also banned: compact JSON never
    needs one, and xgrammar 0.2.8 lets them into strings that carry ``minLength``/``maxLength``
    (its length-limited string rule is ``[^"\\\r\n]``), which ``json.loads`` then rejects. That
    rule also admits no escapes, so a length-limited string cannot hold a backslash (LaTeX): prefer
    plain ``{"type": "string"}`` for free text.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self.vocab_size = int(vocab_size)
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=self.vocab_size, stop_token_ids=list(stop_token_ids) or None
        )
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._compiled: dict[str, Any] = {}
        stops = set(info.stop_token_ids)
        self.banned = torch.zeros(self.vocab_size, dtype=torch.bool)
        for token_id, piece in enumerate(info.decoded_vocab[: self.vocab_size]):
            if token_id not in stops and any(byte < 0x20 for byte in piece):
                self.banned[token_id] = True

    def compiled(self, schema: dict) -> Any:
        """The compiled grammar for ``schema`` (compiled on first use)."""
        key = schema_key(schema)
        if key not in self._compiled:
            self._compiled[key] = self._compiler.compile_json_schema(key, any_whitespace=False)
        return self._compiled[key]

    def matcher(self, schema: dict) -> RowGrammar:
        """A fresh matcher for one generated row."""
        matcher = self._xgr.GrammarMatcher(self.compiled(schema))
        return RowGrammar(matcher, self.vocab_size, self.banned)


class RowGrammar:
    """The grammar state of one row: masks its logits and follows its accepted tokens."""

    def __init__(self, matcher: Any, vocab_size: int, banned: torch.Tensor | None = None) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = matcher
        self._banned = banned
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)

    def mask_(self, logits: torch.Tensor) -> torch.Tensor:
        """Set the logits of tokens the grammar forbids next to ``-inf`` (in place, 1-D CPU).

        Banned (control-character) tokens are removed too, unless nothing else would be left.
        """
        if self._matcher.fill_next_token_bitmask(self._bitmask, 0):
            self._xgr.apply_token_bitmask_inplace(
                logits.view(1, -1), self._bitmask, vocab_size=logits.shape[-1]
            )
        if self._banned is not None:
            width = min(logits.shape[-1], self._banned.shape[0])
            allowed = torch.isfinite(logits[:width]) & ~self._banned[:width]
            if bool(allowed.any()):
                logits[:width].masked_fill_(self._banned[:width], float("-inf"))
        return logits

    def accept(self, token_id: int) -> bool:
        """Advance the grammar by ``token_id``; False if the grammar rejects it."""
        return bool(self._matcher.accept_token(int(token_id)))

    @property
    def terminated(self) -> bool:
        """True once the JSON is complete and a stop token was accepted."""
        return bool(self._matcher.is_terminated())
