"""The ``interventions`` stage: parse each proposal's block, then a named filter chain with
counted drops. Entry point: :func:`write_interventions`.

Every proposal yields one row, kept or not; ``drop_reason`` says which filter removed it:

1. ``skipped`` - the proposal was never generated (its prompt did not fit, the attempt was empty);
2. ``no_error_found`` - the proposer left the content empty: it judged the attempt free of
   critical errors (a verdict, not a parse failure, so it is counted on its own);
3. a parse status from :data:`intervention_training.intervention_block.STATUSES` (no block,
   bad JSON, location out of range, ...);
4. ``content_too_long`` - the content exceeds ``max_content_chars``;
5. ``leaked`` - the content states the reference answer (judged by mathematical equivalence,
   see :mod:`intervention_training.leakage`);
6. ``duplicate`` - dropped by the per-attempt deduplication policy.

With ``double_newlines`` every newline of ``content`` is doubled (:func:`double_newlines`) on
each row within the length limit, so the column holds exactly the text the ``guided`` and
``sft_data`` stages insert after the prefix (one source of truth). The length check and the leak
check read the content as the model wrote it, so the switch changes only the text, never which
rows are kept (deduplication collapses whitespace, so it is unaffected too).

Deduplication policies (per failed attempt):

- ``earliest_location`` (default): among the surviving proposals of one attempt, identical
  contents (after collapsing whitespace and case) at the same location count once; the rest are
  ranked by location (earliest first: the first error is the one to fix), ties by proposal index,
  and the first ``max_per_attempt`` are kept. With ``max_per_attempt: 1`` this is the paper's
  "one intervention per failed attempt".
- ``first_proposal``: as above but ranked by proposal index only.
- ``none``: keep every surviving proposal.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .artifacts import ArtifactWriter, iter_artifact, iter_artifact_batches
from .config import InterventionsParams
from .intervention_block import parse_proposal
from .leakage import leaks_answer
from .readers import read_answers


def double_newlines(content: str) -> str:
    """``content`` with every ``"\\n"`` replaced by ``"\\n\\n"``: each line becomes a step of
    its own (blank lines already there become longer blank runs, one separator all the same)."""
    return content.replace("\n", "\n\n")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class _DedupKey(NamedTuple):
    location: int
    proposal_index: int
    content_digest: bytes  # of the normalised content: 16 bytes whatever its length
    row: int  # position in the stream


def _duplicates(by_attempt: Mapping[str, list[_DedupKey]], policy: str, keep: int) -> set[int]:
    """Rows (stream positions) the per-attempt deduplication policy drops."""
    drops: set[int] = set()
    if policy == "none":
        return drops
    for group in by_attempt.values():
        if policy == "earliest_location":
            group = sorted(group, key=lambda k: (k.location, k.proposal_index))
        else:
            group = sorted(group, key=lambda k: k.proposal_index)
        seen: set[tuple[int, bytes]] = set()
        n_kept = 0
        for k in group:
            key = (k.location, k.content_digest)
            if key in seen or n_kept >= keep:
                drops.add(k.row)
                continue
            seen.add(key)
            n_kept += 1
    return drops


class InterventionFilter:
    """The filter chain over a stream of proposal batches.

    :meth:`filter` returns each batch's rows with every filter applied except the per-attempt
    deduplication, which needs all proposals of an attempt; it keeps a small key (location, index,
    a digest of the normalised content, stream position) per surviving row. After the last batch,
    :meth:`duplicates` gives the stream positions to mark ``duplicate`` and :meth:`summary` the
    counts with those drops applied.
    """

    def __init__(
        self,
        answers: Mapping[str, str],
        params: InterventionsParams,
        *,
        leak_timeout_s: float = 5.0,
    ) -> None:
        self.answers, self.params, self.leak_timeout_s = answers, params, leak_timeout_s
        self._by_attempt: dict[str, list[_DedupKey]] = defaultdict(list)
        self._drops: Counter[str] = Counter()
        self._rows = 0
        self._parsed = 0
        self._duplicates: set[int] | None = None

    def filter(self, proposals: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Rows of ``interventions`` for one batch, before deduplication."""
        if self._duplicates is not None:
            raise RuntimeError("InterventionFilter.filter after duplicates()")
        rows = [self._row(p) for p in proposals]
        for r in rows:
            if r["parse_status"] == "ok":
                self._parsed += 1
            if r["kept"]:
                digest = hashlib.blake2b(_norm(r["content"]).encode(), digest_size=16).digest()
                key = _DedupKey(r["location"], r["proposal_index"], digest, self._rows)
                self._by_attempt[r["rollout_id"]].append(key)
            else:
                self._drops[r["drop_reason"]] += 1
            self._rows += 1
        return rows

    def _row(self, p: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "proposal_id": p["proposal_id"],
            "rollout_id": p["rollout_id"],
            "problem_id": p["problem_id"],
            "sample_id": p["sample_id"],
            "proposal_index": p["proposal_index"],
            "n_steps": p["n_steps"],
            "parse_status": "skipped",
            "location": None,
            "content": None,
            "repairs": [],
            "leaked": None,
            "leak_evidence": None,
            "kept": False,
            "drop_reason": "skipped",
        }
        if p["status"] != "generated" or p["text"] is None:
            return row
        parsed = parse_proposal(p["text"], p["n_steps"])
        row.update(
            parse_status=parsed.status,
            location=parsed.location,
            content=parsed.content,
            repairs=list(parsed.repairs),
        )
        if parsed.status != "ok":
            row["drop_reason"] = parsed.status
            return row
        if len(parsed.content or "") > self.params.max_content_chars:
            row["drop_reason"] = "content_too_long"
            return row
        if self.params.double_newlines:
            row["content"] = double_newlines(row["content"])
        if self.params.leak_check:
            verdict = leaks_answer(
                parsed.content, self.answers[p["problem_id"]], timeout_s=self.leak_timeout_s
            )
            row["leaked"] = verdict.leaked
            row["leak_evidence"] = verdict.evidence if verdict.leaked else None
            if verdict.leaked:
                row["drop_reason"] = "leaked"
                return row
        row["kept"], row["drop_reason"] = True, None
        return row

    def duplicates(self) -> set[int]:
        """Stream positions of the rows deduplication drops (call after the last batch)."""
        if self._duplicates is None:
            self._duplicates = _duplicates(
                self._by_attempt, self.params.dedup, self.params.max_per_attempt
            )
        return self._duplicates

    def summary(self) -> dict[str, Any]:
        dups = self.duplicates()
        drops = self._drops + Counter({"duplicate": len(dups)})
        attempts = sum(
            1 for keys in self._by_attempt.values() if any(k.row not in dups for k in keys)
        )
        return {
            "proposals": self._rows,
            "parsed": self._parsed,
            "kept": sum(len(keys) for keys in self._by_attempt.values()) - len(dups),
            "attempts_with_intervention": attempts,
            "dropped": dict(sorted(drops.items())),
        }


def _mark_duplicates(table: pa.Table, rows: np.ndarray, offset: int) -> pa.Table:
    """``table`` (stream positions ``offset``...) with the sorted positions ``rows`` that fall in
    it set to ``kept=False``, ``drop_reason='duplicate'``."""
    lo, hi = np.searchsorted(rows, [offset, offset + table.num_rows])
    if lo == hi:
        return table
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows[lo:hi] - offset] = True
    hit = pa.array(mask)
    kept = pc.if_else(hit, False, table.column("kept"))
    reason = pc.if_else(hit, "duplicate", table.column("drop_reason"))
    table = table.set_column(table.schema.get_field_index("kept"), "kept", kept)
    return table.set_column(table.schema.get_field_index("drop_reason"), "drop_reason", reason)


def write_interventions(
    problems_path: str | Path,
    proposals_path: str | Path,
    out_path: str | Path,
    params: InterventionsParams,
    *,
    leak_timeout_s: float = 5.0,
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """The ``interventions`` stage, streamed; returns the summary. ``leak_timeout_s`` bounds
    each math-verify call of the leak check (``grading.timeout_s`` in params).

    Pass 1 filters the proposals batch by batch into a temporary artifact beside ``out_path``;
    when the deduplication drops any row, pass 2 copies that file to ``out_path`` marking those
    rows (Arrow columns only, no Python rows); otherwise the pass-1 file is renamed into place.
    """
    out_path = Path(out_path)
    provenance = {"params": params.model_dump()}
    chain = InterventionFilter(read_answers(problems_path), params, leak_timeout_s=leak_timeout_s)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_path.name}.", dir=out_path.parent) as tmp:
        first = Path(tmp) / out_path.name
        with ArtifactWriter(first, "interventions", provenance=provenance) as w:
            for batch in iter_artifact(proposals_path, "proposals", batch_rows=batch_rows):
                w.write(chain.filter(batch))
            w.summary = summary = chain.summary()
        dups = np.array(sorted(chain.duplicates()), dtype=np.int64)
        if not len(dups):
            os.replace(first, out_path)
            return summary
        with ArtifactWriter(out_path, "interventions", provenance=provenance) as w:
            offset = 0
            for table in iter_artifact_batches(first, "interventions", batch_rows=batch_rows):
                w.write(_mark_duplicates(table, dups, offset))
                offset += table.num_rows
            w.summary = summary
    return summary
