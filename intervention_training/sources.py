"""Reading raw records: local .jsonl / .csv / .parquet files and hub data sets, and cells as text.

Both the problem loader (:mod:`.problems`) and the benchmark loaders
(:mod:`.evaluation.benchmarks`) read their sources through this module, so a file behaves the
same whichever stage reads it:

* JSONL: one object per line; blank lines skipped; invalid UTF-8 or JSON is an error naming the
  line.
* CSV (UTF-8, an optional BOM): a row whose number of fields differs from the header's is not
  an error but a record ``{MALFORMED: line}`` that the loaders drop and count as
  ``malformed_row`` (the published IMO-AnswerBench CSV has one such row), with a warning that
  names its line (broken quoting can merge several lines into one such row); a file the csv
  module cannot parse at all is an error naming the row.
* Parquet: any file pyarrow reads.
* A cell becomes text by :func:`cell_text`, the one rule for both loaders.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .config import ProblemsParams
from .errors import InputError

log = logging.getLogger("intervention_training")

#: Key of the record a CSV row with the wrong number of fields becomes (value: its line).
MALFORMED = "\x00malformed_row"


class ProblemSourceError(InputError):
    """A problem source is unreadable or lacks a required column; names the file, row, column."""


def cell_text(value: Any, where: str, column: str) -> str:
    """A source cell as text: None and NaN are empty; numbers their decimal form (``3``,
    ``0.5``); a list or tuple of such cells its items joined by ``", "``. A boolean, a mapping or
    any other type is an error naming ``where`` (file and row) and the column."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ProblemSourceError(f"{where}, column {column!r}: expected text, got a boolean")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return "" if isinstance(value, float) and math.isnan(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v, where, column) for v in value)
    raise ProblemSourceError(
        f"{where}, column {column!r}: expected text, got {type(value).__name__}"
    )


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProblemSourceError(f"{path}: line {lineno}: invalid UTF-8 ({exc})") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProblemSourceError(f"{path}: line {lineno}: invalid JSON: {exc}") from None
            if not isinstance(rec, dict):
                raise ProblemSourceError(f"{path}: line {lineno}: expected a JSON object")
            yield rec


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemSourceError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                log.warning(
                    "%s: row ending on line %d has %d fields where the header has %d; "
                    "dropped (malformed_row)",
                    path,
                    reader.line_num,
                    len(row),
                    len(header),
                )
                yield {MALFORMED: reader.line_num}
            else:
                yield dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise ProblemSourceError(f"{path}: row {reader.line_num}: broken CSV: {exc}") from None


def _read_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - report any reader failure with the path
        raise ProblemSourceError(f"{path}: not a readable Parquet file: {exc}") from None
    yield from table.to_pylist()


READERS: dict[str, Callable[[Path], Iterator[dict[str, Any]]]] = {
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def iter_file(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a local .jsonl / .csv / .parquet file, in file order."""
    if not path.exists():
        raise ProblemSourceError(f"{path}: file not found")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ProblemSourceError(f"{path}: unsupported extension; use one of {sorted(READERS)}")
    return reader(path)


def iter_hub(params: ProblemsParams, cache_dir: str | None = None) -> Iterator[dict[str, Any]]:
    """Records of a data set loaded with ``datasets.load_dataset`` (hub name or local folder)."""
    import datasets

    ds = datasets.load_dataset(
        params.hub_name,
        params.hub_config,
        split=params.split,
        revision=params.hub_revision,
        cache_dir=cache_dir,
    )
    yield from ds
