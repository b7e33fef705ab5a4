"""Problem sets: load from the embedded CHAMP set, a local file or a hub data set; normalise.

Every source ends as rows of the ``problems`` schema: a stable ``problem_id``, the problem, the
short reference answer, the worked reference solution, the source, and a seeded ``split``
("train" or "eval"). Rows that cannot serve the method are dropped and counted by reason:
``empty_problem``, ``empty_answer``, ``empty_solution``, ``too_long`` (problem or solution longer
than ``max_chars``), ``unparseable_answer`` (the grader cannot read the reference) and
``duplicate`` (the same id or the same problem text twice), ``malformed_row`` (a CSV row with
the wrong number of fields, see :mod:`.sources`). A source with no rows at all, or with no
usable row left, is an error.

Entry point of the ``problems`` stage: :func:`write_problems`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import write_artifact
from .config import ContaminationParams, ProblemsParams
from .sources import MALFORMED, ProblemSourceError, cell_text, iter_file, iter_hub

CHAMP_RELATIVE = Path("dataset_files") / "v0.json"


@dataclass
class LoadResult:
    rows: list[dict[str, Any]]
    dropped: Counter = field(default_factory=Counter)
    n_read: int = 0

    def summary(self) -> dict[str, Any]:
        splits = Counter(r["split"] for r in self.rows)
        return {
            "read": self.n_read,
            "kept": len(self.rows),
            "train": splits.get("train", 0),
            "eval": splits.get("eval", 0),
            "dropped": dict(sorted(self.dropped.items())),
        }


def champ_path() -> Path:
    """Location of the CHAMP JSON inside the installed ``champ-dataset`` package."""
    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ProblemSourceError("the 'champ-dataset' package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / CHAMP_RELATIVE


_CHAMP_ALTERNATIVE = re.compile(r",\s*or (?:equivalently|an equivalent form such as)\s+")
_CHAMP_ASIDE = re.compile(r"(?:,\s*or approximately .*|\s*\((?:i\.e\.|e\.g\.)[^)]*\))$")


def champ_answer(text: str) -> str:
    """CHAMP's short answer in a form a grader can check.

    CHAMP often writes ``"C(10, 5), or equivalently 252"`` or ``"5/14, or approximately 35.7%"``;
    the last exact alternative is kept and approximations and "i.e." asides are dropped.
    """
    text = _CHAMP_ASIDE.sub("", text.strip())
    return _CHAMP_ALTERNATIVE.split(text)[-1].strip()


def iter_champ(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Raw records of the CHAMP set, mapped to problem / answer / solution / id."""
    path = path or champ_path()
    data = json.loads(path.read_text(encoding="utf-8"))
    for ident, rec in data["problems"].items():
        steps = [s.get("_text", "") for s in rec.get("solution", {}).get("steps", [])]
        yield {
            "problem_id": f"champ/{ident}",
            "problem": rec.get("_text", ""),
            "answer": champ_answer(rec.get("_answer", "")),
            "reference_solution": "\n\n".join(s.strip() for s in steps if s and s.strip()),
        }


def normalise(
    records: Iterator[dict[str, Any]], params: ProblemsParams, *, source: str, where: str
) -> tuple[list[dict[str, Any]], Counter, int]:
    """Map source columns to the problems schema; drop and count rows that cannot be used."""
    cols = params.columns
    wanted = {
        "problem": cols.problem,
        "answer": cols.answer,
        "reference_solution": cols.reference_solution,
    }
    rows: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    seen_ids: set[str] = set()
    seen_text: set[str] = set()
    n = 0
    for i, rec in enumerate(records):
        n += 1
        loc = f"{where}: row {i + 1}"
        if MALFORMED in rec:
            dropped["malformed_row"] += 1
            continue
        mapped = {}
        for target, column in wanted.items():
            if column not in rec and target not in rec:
                raise ProblemSourceError(
                    f"{loc}: column {column!r} (for {target}) is missing; "
                    f"columns present: {sorted(rec)}"
                )
            key = column if column in rec else target
            mapped[target] = cell_text(rec[key], loc, key).strip()
        if cols.problem_id:
            if cols.problem_id not in rec:
                raise ProblemSourceError(f"{loc}: id column {cols.problem_id!r} is missing")
            pid = cell_text(rec[cols.problem_id], loc, cols.problem_id).strip()
        else:
            pid = rec.get("problem_id") or ""
        if not pid:
            digest = hashlib.sha256(mapped["problem"].encode()).hexdigest()[:16]
            pid = f"{source}/{digest}"
        reason = None
        if not mapped["problem"]:
            reason = "empty_problem"
        elif not mapped["answer"]:
            reason = "empty_answer"
        elif not mapped["reference_solution"]:
            reason = "empty_solution"
        elif max(len(mapped["problem"]), len(mapped["reference_solution"])) > params.max_chars:
            reason = "too_long"
        elif pid in seen_ids or mapped["problem"] in seen_text:
            reason = "duplicate"
        if reason:
            dropped[reason] += 1
            continue
        seen_ids.add(pid)
        seen_text.add(mapped["problem"])
        rows.append({"problem_id": str(pid), **mapped, "source": source})
    return rows, dropped, n


def _order_key(seed: int, problem_id: str) -> str:
    return hashlib.sha256(f"{seed}:{problem_id}".encode()).hexdigest()


def select_and_split(
    rows: list[dict[str, Any]], *, limit: int | None, eval_fraction: float, seed: int
) -> list[dict[str, Any]]:
    """Seeded, order-independent choice of ``limit`` rows and of the held-out eval part.

    Rows are ranked by a hash of (seed, problem_id), so the choice does not depend on file order;
    the first ``round(n * eval_fraction)`` ranked rows form the eval split.
    """
    ranked = sorted(rows, key=lambda r: _order_key(seed, r["problem_id"]))
    if limit is not None:
        ranked = ranked[:limit]
    n_eval = round(len(ranked) * eval_fraction)
    out = []
    for i, row in enumerate(ranked):
        out.append({**row, "split": "eval" if i < n_eval else "train"})
    return sorted(out, key=lambda r: r["problem_id"])


def load_problems(
    params: ProblemsParams,
    *,
    reference_check: Callable[[str], str | None] | None = None,
    contaminated: Callable[[list[dict[str, Any]]], set[str]] | None = None,
    cache_dir: str | None = None,
) -> LoadResult:
    """Load, normalise, filter and split the configured problem set.

    ``reference_check`` returns None for a reference answer the grader can read, else a reason;
    rows it rejects are dropped as ``unparseable_answer``. ``contaminated`` returns the ids of
    rows that overlap an evaluation benchmark; they are dropped as ``contaminated``.
    """
    if params.source == "champ":
        records, source, where = iter_champ(), "champ", str(champ_path())
    elif params.source == "file":
        path = Path(params.path or "")
        records, source, where = iter_file(path), path.stem, str(path)
    else:
        records, source, where = (
            iter_hub(params, cache_dir),
            str(params.hub_name),
            str(params.hub_name),
        )
    rows, dropped, n_read = normalise(records, params, source=source, where=where)
    if n_read == 0:
        raise ProblemSourceError(f"{where}: no rows (empty source)")
    if reference_check is not None:
        kept = []
        for row in rows:
            if reference_check(row["answer"]) is None:
                kept.append(row)
            else:
                dropped["unparseable_answer"] += 1
        rows = kept
    if contaminated is not None and rows:
        bad = contaminated(rows)
        dropped["contaminated"] += sum(r["problem_id"] in bad for r in rows)
        rows = [r for r in rows if r["problem_id"] not in bad]
        if not dropped["contaminated"]:
            del dropped["contaminated"]
    if not rows:
        reasons = dict(sorted(dropped.items()))
        raise ProblemSourceError(f"{where}: none of the {n_read} rows is usable; dropped {reasons}")
    rows = select_and_split(
        rows, limit=params.limit, eval_fraction=params.eval_fraction, seed=params.seed
    )
    return LoadResult(rows=rows, dropped=dropped, n_read=n_read)


def write_problems(
    out_path: str | Path,
    params: ProblemsParams,
    *,
    benchmarks_path: str | Path | None = None,
    contamination: ContaminationParams | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The ``problems`` stage: load, filter and split the problem set; return the summary.

    With ``contamination.remove`` on, problems that share n-grams with a benchmark of the
    ``benchmarks`` artifact at ``benchmarks_path`` are dropped as ``contaminated``.
    """
    from .grading import reference_problem

    contaminated = None
    if contamination is not None and contamination.remove:
        if benchmarks_path is None:
            raise ProblemSourceError(
                "evaluation.contamination.remove needs the benchmarks artifact (--benchmarks)"
            )
        from .evaluation.contamination import contaminated_problem_ids
        from .readers import read_benchmark_rows

        rows_by_name = read_benchmark_rows(benchmarks_path)

        def contaminated(rows: list[dict[str, Any]]) -> set[str]:
            return contaminated_problem_ids(
                rows, rows_by_name, n=contamination.ngram, min_shared=contamination.min_shared
            )

    result = load_problems(
        params, reference_check=reference_problem, contaminated=contaminated, cache_dir=cache_dir
    )
    summary = result.summary()
    provenance = {"params": params.model_dump()}
    write_artifact(result.rows, out_path, "problems", provenance=provenance, summary=summary)
    return summary
