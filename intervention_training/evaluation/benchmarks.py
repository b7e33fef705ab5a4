r"""Evaluation benchmarks: load a configured benchmark as ``problem_id``/``problem``/``answer``.

The ``benchmarks`` stage (:func:`write_benchmarks`) loads every configured benchmark except
``heldout`` and ``train`` (both read from the problems artifact) once into the ``benchmarks``
artifact; the stages that use benchmarks (evaluate, contamination, and the problems stage when
it removes contaminated problems) read that artifact (:func:`read_benchmarks`), so editing a
loader here reruns only the ``benchmarks`` stage, and what follows only where the loaded rows
changed.

Sources (:class:`~intervention_training.config.BenchmarkSpec`):

- ``heldout``: the ``split == "eval"`` rows of the problems artifact (the CPU default);
- ``train``: the ``split == "train"`` rows of the problems artifact, in its order (the paper's
  Table 2: coverage and accuracy after SFT on the problems trained on); with ``subset:
  selected`` only those the grades stage passed on (``selected`` in the pass-rates artifact:
  the hard problems under ``grading.hard_only``) -- :func:`train_benchmark`;
- ``file``: a local ``.jsonl`` / ``.csv`` / ``.parquet`` file, read by the problems loaders;
- ``hub``: a data set read with ``datasets.load_dataset(hub_name, hub_config, split=...)``.

Formats (the column conventions; ``columns`` in the spec overrides any of them):

============== ================= ===================== =============== =====================
format         problem           answer                id              answer clean-up
============== ================= ===================== =============== =====================
answerbench    ``Problem``       ``Short Answer``      ``Problem ID``  none
olympiadbench  ``question``      ``final_answer``      ``id``          list items without
                                                                       ``$``, joined by ", "
gsm8k          ``question``      ``answer``            (hash)          text after ``####``,
                                                                       thousands commas gone
generic        ``problem`` or    ``answer``            ``id``,         none
               ``question``                            ``unique_id``,
                                                       ``problem_id``,
                                                       ``problem_idx``
                                                       or (hash)
============== ================= ===================== =============== =====================

An answer that is text (not a list, and not in ``olympiadbench`` format) and exactly one
``\boxed{...}`` (or ``\fbox{...}``), possibly inside ``$...$``, is unwrapped to the box's
content, as AMO-Bench writes its answers. (The grader would accept the wrapped form too;
unwrapped, the judge and the report show the bare answer.)

``auto`` picks ``answerbench`` when the first record has ``Short Answer``, ``olympiadbench``
when it has ``final_answer``, ``gsm8k`` when it has ``question`` and an ``answer`` containing
``####``, else ``generic``. (MATH-500, AIME and HMMT files are ``generic``; AIME answers such as
``073`` are kept as text; MathArena's hub sets, such as ``MathArena/hmmt_nov_2025``, number
their problems in ``problem_idx``.) Without an id column the id is
``{name}/{sha256(problem)[:16]}``. Rows with an empty problem or answer, or a repeated id or
problem text, are dropped and counted.

Files are read by :mod:`intervention_training.sources`, as the problem loader reads them: a CSV
row whose number of fields differs from the header's is dropped and counted as ``malformed_row``
(the published IMO-AnswerBench v2 CSV has one such row, whose quoting is broken).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import write_artifact
from ..config import BenchmarkSpec, ProblemsParams
from ..readers import Benchmark, heldout_benchmark, selected_problem_ids, train_benchmark
from ..sources import MALFORMED, ProblemSourceError, cell_text, iter_file, iter_hub

__all__ = [
    "detect_format",
    "load_benchmark",
    "selected_problem_ids",
    "train_benchmark",
    "write_benchmarks",
]

#: Sources read from the problems artifact, not loaded by the ``benchmarks`` stage.
PROBLEMS_SOURCES = ("heldout", "train")

FORMAT_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # format: (problem columns, answer columns, id columns), first present wins
    "answerbench": (("Problem",), ("Short Answer",), ("Problem ID",)),
    "olympiadbench": (("question",), ("final_answer",), ("id",)),
    "gsm8k": (("question",), ("answer",), ()),
    "generic": (
        ("problem", "question"),
        ("answer",),
        ("id", "unique_id", "problem_id", "problem_idx"),
    ),
}

_DOLLAR = re.compile(r"(?<!\\)\$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def detect_format(record: Mapping[str, Any]) -> str:
    """The format ``auto`` resolves to for a benchmark whose first record is ``record``."""
    if "Short Answer" in record:
        return "answerbench"
    if "final_answer" in record:
        return "olympiadbench"
    if "question" in record and "####" in str(record.get("answer", "")):
        return "gsm8k"
    return "generic"


def unwrap_boxed(text: str) -> str:
    r"""``text`` without a ``\boxed{...}`` / ``\fbox{...}`` that wraps all of it (inside
    optional ``$...$``), its content stripped; any other text unchanged. ``\boxed{1} and
    \boxed{2}`` or ``\boxed{1}+2`` are not one wrapping box and stay as they are. Braces are
    balanced as the grader's extraction balances them (a backslash escapes the next character)."""
    core = text.strip()
    if len(core) > 1 and core.startswith("$") and core.endswith("$") and core[-2] != "\\":
        core = core.strip("$").strip()
    command = next((c for c in _BOX_COMMANDS if core.startswith(c)), None)
    if command is None:
        return text
    brace = len(command)
    while brace < len(core) and core[brace] in " \t\r\n":
        brace += 1
    if brace >= len(core) or core[brace] != "{":
        return text
    depth, k = 0, brace
    while k < len(core):
        if core[k] == "\\":
            k += 2
            continue
        if core[k] == "{":
            depth += 1
        elif core[k] == "}":
            depth -= 1
            if depth == 0:
                break
        k += 1
    # The box must close on the last character: its content is everything in between.
    if k != len(core) - 1:
        return text
    return core[brace + 1 : k].strip()


def clean_answer(value: Any, fmt: str, where: str, column: str) -> str:
    """The reference answer of a record in format ``fmt`` as text (see the module table)."""
    if fmt == "olympiadbench" or isinstance(value, list | tuple):
        items = value if isinstance(value, list | tuple) else [value]
        parts = [_DOLLAR.sub("", cell_text(v, where, column)).strip() for v in items]
        return ", ".join(p for p in parts if p)
    text = cell_text(value, where, column)
    if fmt == "gsm8k":
        if "####" not in text:
            return ""
        text = _THOUSANDS.sub("", text.rsplit("####", 1)[1])
    return unwrap_boxed(text).strip()


def _pick(record: Mapping[str, Any], override: str | None, defaults: tuple[str, ...]) -> str | None:
    if override is not None:
        return override
    return next((c for c in defaults if c in record), None)


def normalise_records(
    records: Iterable[Mapping[str, Any]], spec: BenchmarkSpec, *, where: str
) -> Benchmark:
    """Map raw records of ``spec``'s format to benchmark rows; drop and count unusable ones.

    Raises :class:`ProblemSourceError` naming the row and column when a needed column is absent.
    """
    rows: list[dict[str, str]] = []
    dropped: Counter = Counter()
    seen_ids: set[str] = set()
    seen_text: set[str] = set()
    fmt = spec.format
    n = 0
    for i, rec in enumerate(records):
        n += 1
        loc = f"{where}: row {i + 1}"
        if MALFORMED in rec:
            dropped["malformed_row"] += 1
            continue
        if fmt == "auto":
            fmt = detect_format(rec)
        problem_cols, answer_cols, id_cols = FORMAT_COLUMNS[fmt]
        pcol = _pick(rec, spec.columns.problem, problem_cols)
        acol = _pick(rec, spec.columns.answer, answer_cols)
        for target, col in (("problem", pcol), ("answer", acol)):
            if col is None or col not in rec:
                wanted = col or " / ".join(problem_cols if target == "problem" else answer_cols)
                raise ProblemSourceError(
                    f"{loc}: no {target} column (format {fmt}, looked for {wanted}); "
                    f"columns present: {sorted(rec)}"
                )
        assert pcol is not None and acol is not None
        problem = cell_text(rec[pcol], loc, pcol).strip()
        answer = clean_answer(rec[acol], fmt, loc, acol)
        icol = _pick(rec, spec.columns.problem_id, id_cols)
        if spec.columns.problem_id is not None and icol not in rec:
            raise ProblemSourceError(f"{loc}: id column {icol!r} is missing")
        pid = cell_text(rec[icol], loc, icol).strip() if icol is not None else ""
        if not pid:
            pid = f"{spec.name}/{hashlib.sha256(problem.encode()).hexdigest()[:16]}"
        reason = None
        if not problem:
            reason = "empty_problem"
        elif not answer:
            reason = "empty_answer"
        elif pid in seen_ids or problem in seen_text:
            reason = "duplicate"
        if reason:
            dropped[reason] += 1
            continue
        seen_ids.add(pid)
        seen_text.add(problem)
        rows.append({"problem_id": pid, "problem": problem, "answer": answer})
        if spec.limit is not None and len(rows) >= spec.limit:
            break
    if n == 0:
        raise ProblemSourceError(f"{where}: benchmark {spec.name!r} has no rows (empty source)")
    if not rows:
        reasons = dict(sorted(dropped.items()))
        raise ProblemSourceError(
            f"{where}: none of the {n} rows of benchmark {spec.name!r} is usable; dropped {reasons}"
        )
    return Benchmark(spec.name, rows, fmt, n_read=n, dropped=dropped)


def _hub_records(spec: BenchmarkSpec, cache_dir: str | None) -> Iterator[dict[str, Any]]:
    params = ProblemsParams(
        source="hub",
        hub_name=spec.hub_name,
        hub_config=spec.hub_config,
        hub_revision=spec.hub_revision,
        split=spec.split,
    )
    return iter_hub(params, cache_dir)


def load_benchmark(
    spec: BenchmarkSpec,
    *,
    heldout: Sequence[Mapping[str, Any]] | None = None,
    selected: Collection[str] | None = None,
    cache_dir: str | None = None,
) -> Benchmark:
    """Load one benchmark. ``heldout`` (rows of the problems artifact) is required for
    ``source`` ``heldout`` (its ``split == "eval"`` rows are used) and ``train`` (its
    ``split == "train"`` rows; ``selected``: see :func:`train_benchmark`). With ``limit``, the
    first ``limit`` usable rows in source order are kept."""
    if spec.source in PROBLEMS_SOURCES:
        if heldout is None:
            raise ProblemSourceError(f"benchmark {spec.name!r}: the problems artifact is needed")
        if spec.source == "train":
            return train_benchmark(spec, heldout, selected)
        return heldout_benchmark(spec, heldout)
    if spec.source == "file":
        path = Path(spec.path or "")
        records = iter_file(path)
        return normalise_records(records, spec, where=str(path))
    return normalise_records(_hub_records(spec, cache_dir), spec, where=str(spec.hub_name))


def write_benchmarks(
    out_path: str | Path, specs: Sequence[BenchmarkSpec], *, cache_dir: str | None = None
) -> dict[str, Any]:
    """The ``benchmarks`` stage: load every benchmark of ``specs`` but ``heldout`` and ``train``
    (read from the problems artifact by the stages that use them) into one artifact; the summary
    holds each one's load counts (format, read, kept, dropped)."""
    rows: list[dict[str, str]] = []
    summary: dict[str, Any] = {}
    for spec in specs:
        if spec.source in PROBLEMS_SOURCES:
            continue
        bench = load_benchmark(spec, cache_dir=cache_dir)
        rows += [
            {"item_id": f"{spec.name}/{r['problem_id']}", "benchmark": spec.name, **r}
            for r in bench.rows
        ]
        summary[spec.name] = bench.summary()
    provenance = {"params": [s.model_dump(mode="json") for s in specs]}
    write_artifact(rows, out_path, "benchmarks", provenance=provenance, summary=summary)
    return summary
