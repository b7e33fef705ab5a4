"""A scripted generation backend: a test double for stage logic, never used by the pipeline.

It templates with a real tokenizer, records every request it receives, and answers each sample
with ``script(request, j)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from intervention_training.generation import Completion, GenerationRequest, SamplingParams


class ScriptedBackend:
    name = "scripted"
    model_id = "scripted"

    def __init__(
        self,
        tokenizer: Any,
        script: Callable[[GenerationRequest, int], str],
        max_context: int = 100_000,
    ) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.max_context = max_context
        self.calls: list[list[GenerationRequest]] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            texts = [self.script(r, j) for j in range(r.n)]
            out.append([Completion(t, len(t.split()) + 1, "stop") for t in texts])
            if progress:
                progress(1)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> dict[str, str]:
        return {"backend": self.name}
