"""Resumable generation: finished work is kept in shards so a crashed stage redoes only the rest.

:class:`ResumableBackend` wraps any generation backend and has the same ``generate`` method.
Each call is fingerprinted by everything that decides its output: every request (prompt, n,
seed, budget, stop strings, schema), the sampling parameters and the backend's description
(backend, model, revision, dtype). The call's requests are cut into shards of ``shard_size``
requests; a shard's completions are written atomically to
``<work_dir>/<fingerprint>/shard-NNNNN.parquet`` as soon as it is done. A backend with a
``generate_shards`` method (the ``openai`` one) gets every missing shard at once and reports each
as it completes, so many shards are in flight and a slow sample holds up only its own shard.
A rerun with the same fingerprint reads back every complete shard and generates only the
missing ones; a changed fingerprint lands in a different folder, so old and new work never mix.
A shard that cannot be read back (torn write, wrong row count, wrong fingerprint) is regenerated.

The work folder is not a DVC output (DVC deletes outputs before a stage runs); a stage calls
:meth:`ResumableBackend.finish` after its artifact is written, which removes the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import atomic_write_bytes
from .generation import Completion, GenerationBackend, GenerationRequest, SamplingParams

log = logging.getLogger("intervention_training")

SHARD_SCHEMA = pa.schema(
    [
        pa.field("request_index", pa.int64(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
    ]
)


def fingerprint(
    requests: Sequence[GenerationRequest], sampling: SamplingParams, backend: dict[str, Any]
) -> str:
    """A hex digest of everything that decides the completions of one ``generate`` call."""
    h = hashlib.sha256()
    h.update(
        json.dumps({"sampling": asdict(sampling), "backend": backend}, sort_keys=True).encode()
    )
    for r in requests:
        h.update(json.dumps(asdict(r), sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class ResumableBackend:
    """A generation backend whose finished shards survive a crash (see module docstring)."""

    def __init__(self, backend: GenerationBackend, work_dir: str | Path, shard_size: int = 64):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.backend = backend
        self.work_dir = Path(work_dir)
        self.shard_size = shard_size
        self.reused_shards = 0
        self.generated_shards = 0
        self._used: set[str] = set()

    # Read through to the wrapped backend when asked (not copied at construction), so that a
    # backend that loads its model on first use is not loaded by wrapping it.
    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def max_context(self) -> int:
        return self.backend.max_context

    @property
    def supports_json_trigger(self) -> bool:
        return getattr(self.backend, "supports_json_trigger", False)

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def describe(self) -> dict[str, str]:
        return self.backend.describe()

    def _read_shard(self, path: Path, fp: str, chunk: Sequence[GenerationRequest]) -> list | None:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            return None
        meta = table.schema.metadata or {}
        if meta.get(b"int.fingerprint", b"").decode() != fp:
            return None
        if table.num_rows != sum(r.n for r in chunk):
            return None
        rows = table.to_pylist()
        out: list[list[Completion]] = [[] for _ in chunk]
        base = rows[0]["request_index"] if rows else 0
        for row in rows:
            out[row["request_index"] - base].append(
                Completion(row["text"], row["n_tokens"], row["finish_reason"])
            )
        if any(len(c) != r.n for c, r in zip(out, chunk, strict=True)):
            return None
        return out

    def _write_shard(
        self, path: Path, fp: str, start: int, results: list[list[Completion]]
    ) -> None:
        rows = [
            {
                "request_index": start + i,
                "sample_index": j,
                "text": c.text,
                "n_tokens": c.n_tokens,
                "finish_reason": c.finish_reason,
            }
            for i, completions in enumerate(results)
            for j, c in enumerate(completions)
        ]
        table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA).replace_schema_metadata(
            {b"int.fingerprint": fp.encode()}
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingParams,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """Same contract as the wrapped backend; completed shards are reused."""
        if not requests:
            return []
        fp = fingerprint(requests, sampling, self.backend.describe())
        folder = self.work_dir / fp
        self._used.add(fp)
        stale = [p.name for p in self.work_dir.glob("*") if p.is_dir() and p.name not in self._used]
        if stale and not folder.exists():
            log.info(
                "[resume] %d work folder(s) in %s come from other inputs or settings; "
                "starting this call clean",
                len(stale),
                self.work_dir,
            )
        folder.mkdir(parents=True, exist_ok=True)
        starts = range(0, len(requests), self.shard_size)
        chunks = [requests[start : start + self.shard_size] for start in starts]
        paths = [folder / f"shard-{i:05d}.parquet" for i in range(len(chunks))]
        done: list[list[list[Completion]] | None] = []
        for path, chunk in zip(paths, chunks, strict=True):
            done.append(self._read_shard(path, fp, chunk) if path.exists() else None)
        missing = [i for i, d in enumerate(done) if d is None]
        self.reused_shards += len(chunks) - len(missing)
        if progress:
            progress(sum(len(chunks[i]) for i, d in enumerate(done) if d is not None))

        def finished(k: int, results: list[list[Completion]]) -> None:
            i = missing[k]
            self._write_shard(paths[i], fp, i * self.shard_size, results)
            self.generated_shards += 1
            done[i] = results

        many = getattr(self.backend, "generate_shards", None) if missing else None
        if many is not None:  # shards in flight together, each written as soon as it is done
            many([chunks[i] for i in missing], sampling, finished, progress=progress)
        else:
            for k, i in enumerate(missing):
                finished(k, self.backend.generate(chunks[i], sampling))
                if progress:
                    progress(len(chunks[i]))
        lost = [i for i, d in enumerate(done) if d is None]
        if lost:  # a backend that returned without reporting every shard: never drop them
            raise RuntimeError(f"the backend did not report shards {lost} of this call")
        return [completions for shard in done if shard is not None for completions in shard]

    def finish(self) -> None:
        """Remove the work folder once the stage's artifact is safely written."""
        if self.reused_shards:
            log.info(
                "[resume] reused %d shard(s), generated %d",
                self.reused_shards,
                self.generated_shards,
            )
        shutil.rmtree(self.work_dir, ignore_errors=True)
