"""Reading and writing Parquet artifacts: validated against :mod:`schemas`, written atomically.

Writes go to a temporary file in the destination folder and are renamed into place, so a killed
stage leaves either the previous artifact or none, never a partial file that looks complete.
Parquet key-value metadata carries the schema name and version, the provenance (model, sampling,
seed, backend, package version) and the stage's summary counts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError
from .schemas import SCHEMA_VERSION, SCHEMAS

META_SCHEMA = b"int.schema"
META_VERSION = b"int.schema_version"
META_PROVENANCE = b"int.provenance"
META_SUMMARY = b"int.summary"


class ArtifactError(InputError):
    """An artifact is missing, unreadable or does not match its declared schema."""


def package_version() -> str:
    try:
        return importlib_metadata.version("intervention-training")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


class _AtomicFile:
    """A temporary file beside ``path``: :meth:`commit` renames it into place, :meth:`abort` drops
    it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self.fh: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.chmod(self.tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place atomically."""
    f = _AtomicFile(path)
    try:
        write(f.fh)
    except BaseException:
        f.abort()
        raise
    f.commit()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    atomic_write(path, lambda fh: fh.write(data))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def temporary_dir_beside(out_dir: str | Path) -> Path:
    """An empty-to-be folder path beside ``out_dir`` (``<name>.tmp``; a leftover of a killed
    run is removed) in which to build a folder output before :func:`replace_dir`."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def replace_dir(tmp: str | Path, out_dir: str | Path) -> None:
    """Put the finished folder ``tmp`` at ``out_dir``, replacing what was there. A run killed
    before this call leaves the old ``out_dir`` untouched."""
    tmp, out_dir = Path(tmp), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out_dir)


def _column_problem(name: str, expected: pa.Field, actual: pa.Field | None) -> str | None:
    if actual is None:
        return f"column {name!r} is missing"
    if not actual.type.equals(expected.type):
        return f"column {name!r} has type {actual.type}, expected {expected.type}"
    return None


def to_table(
    rows: Iterable[Mapping[str, Any]] | pa.Table,
    name: str,
    *,
    where: str | None = None,
    offset: int = 0,
) -> pa.Table:
    """Build a table for artifact ``name`` from row dicts, checking columns, types and nulls
    (rows are numbered from ``offset`` in errors)."""
    schema = SCHEMAS[name]
    where = where or name
    if isinstance(rows, pa.Table):
        table = rows
    else:
        rows = list(rows)
        keys = set().union(*(r.keys() for r in rows)) if rows else set()
        missing = set(schema.names) - keys if rows else set()
        if missing:
            raise ArtifactError(f"{where}: rows lack column(s) {sorted(missing)}")
        extra = keys - set(schema.names)
        if extra:
            raise ArtifactError(f"{where}: rows have undeclared column(s) {sorted(extra)}")
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ArtifactError(f"{where}: rows do not match the schema: {exc}") from exc
    return validate_table(table, name, where=where, offset=offset)


def _check_columns(actual: pa.Schema, name: str, *, where: str) -> None:
    """Every declared column present with its declared type, and no undeclared one."""
    schema = SCHEMAS[name]
    for field in schema:
        found = actual.field(field.name) if field.name in actual.names else None
        problem = _column_problem(field.name, field, found)
        if problem:
            raise ArtifactError(f"{where}: {problem}")
    extra = [n for n in actual.names if n not in schema.names]
    if extra:
        raise ArtifactError(f"{where}: undeclared column(s) {extra}")


def _checked(table: pa.Table, wanted: pa.Schema, *, where: str, offset: int) -> pa.Table:
    """``table`` reduced to ``wanted``'s columns, after checking nulls (rows numbered from
    ``offset``)."""
    for field in wanted:
        if field.nullable:
            continue
        col = table.column(field.name)
        if col.null_count:
            idx = pc.index(col.is_null(), True).as_py()
            raise ArtifactError(
                f"{where}: row {offset + idx}, column {field.name!r}: null in a non-nullable column"
            )
    return table.select(wanted.names).cast(wanted)


def validate_table(table: pa.Table, name: str, *, where: str, offset: int = 0) -> pa.Table:
    """Check ``table`` against schema ``name`` (columns, types, nulls); return it reordered."""
    _check_columns(table.schema, name, where=where)
    return _checked(table, SCHEMAS[name], where=where, offset=offset)


DEFAULT_BATCH_ROWS = 8_192
"""Rows per Parquet row group written, and the most rows per streamed batch."""

BATCH_BYTES = 64 * 2**20
"""Streamed batches hold about this many bytes of (uncompressed) column data: 8,192 rows of
1 kB, but only about 1,300 paper-size rollouts (16k tokens, about 50 kB of text each). As Python
row dicts a batch takes two to three times this."""


def _base_metadata(name: str, provenance: Mapping[str, Any] | None) -> dict[bytes, bytes]:
    return {
        META_SCHEMA: name.encode(),
        META_VERSION: SCHEMA_VERSION.encode(),
        META_PROVENANCE: json.dumps(
            {"package_version": package_version(), **(provenance or {})}, sort_keys=True
        ).encode(),
    }


class ArtifactWriter:
    """Write artifact ``name`` batch by batch, validated, into a temporary file renamed at the end.

    Use as a context manager: each :meth:`write` validates its rows against the schema and appends
    them as row groups (at most ``row_group_rows`` rows and about :data:`BATCH_BYTES` each);
    leaving the block without an exception adds the summary to the file's metadata and renames
    the file into place; an exception removes the temporary file, so the previous artifact (if
    any) stays as it was. Memory is that of one batch, whatever the total.
    The summary, known only at the end, goes in the file's key-value metadata
    (:func:`read_metadata` and :func:`read_artifact` merge it back).
    """

    def __init__(
        self,
        path: str | Path,
        name: str,
        *,
        provenance: Mapping[str, Any] | None = None,
        row_group_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.path, self.name, self.row_group_rows = Path(path), name, row_group_rows
        self.summary: dict[str, Any] = {}
        self.rows_written = 0
        self._schema = SCHEMAS[name].with_metadata(_base_metadata(name, provenance))
        self._file: _AtomicFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ArtifactWriter:
        self._file = _AtomicFile(self.path)
        try:
            self._writer = pq.ParquetWriter(self._file.fh, self._schema, compression="zstd")
        except BaseException:
            self._file.abort()
            raise
        return self

    def write(self, rows: Iterable[Mapping[str, Any]] | pa.Table) -> pa.Table:
        """Validate ``rows`` (row dicts or a table), append them to the file, return the table."""
        if self._writer is None:
            raise RuntimeError("ArtifactWriter.write outside its `with` block")
        table = to_table(rows, self.name, offset=self.rows_written)
        if table.num_rows:
            per_row = max(1.0, table.nbytes / table.num_rows)
            rows = max(1, min(self.row_group_rows, int(BATCH_BYTES / per_row)))
            self._writer.write_table(table, row_group_size=rows)
        self.rows_written += table.num_rows
        return table

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._file is not None and self._writer is not None
        if exc_type is not None:
            try:
                self._writer.close()
            finally:
                self._file.abort()
            return
        try:
            summary = json.dumps(self.summary, sort_keys=True).encode()
            self._writer.add_key_value_metadata({META_SUMMARY: summary})
            self._writer.close()
        except BaseException:
            self._file.abort()
            raise
        self._file.commit()


def write_artifact(
    rows: Iterable[Mapping[str, Any]] | pa.Table,
    path: str | Path,
    name: str,
    *,
    provenance: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Validate ``rows`` against schema ``name`` and write them atomically to ``path``."""
    with ArtifactWriter(path, name, provenance=provenance) as writer:
        table = writer.write(rows)
        writer.summary = dict(summary or {})
    return table


def _open(path: str | Path, name: str) -> tuple[pq.ParquetFile, dict[bytes, bytes]]:
    """Open artifact ``name`` at ``path``; check its declared name, version and column types."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact {name!r} not found (run its stage first)")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file: {exc}") from exc
    meta = _merged_metadata(pf)
    found = meta.get(META_SCHEMA, b"").decode()
    if found and found != name:
        raise ArtifactError(f"{path}: holds artifact {found!r}, expected {name!r}")
    version = meta.get(META_VERSION, b"").decode()
    if version and version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema version {version}, this code reads {SCHEMA_VERSION}; rerun the stage"
        )
    return pf, meta


def _merged_metadata(pf: pq.ParquetFile) -> dict[bytes, bytes]:
    """The Arrow schema's metadata plus the file's key-value pairs written at close."""
    meta = dict(pf.schema_arrow.metadata or {})
    for key, value in (pf.metadata.metadata or {}).items():
        if key != b"ARROW:schema":
            meta[key] = value
    return meta


def _wanted(name: str, columns: Sequence[str] | None) -> pa.Schema:
    schema = SCHEMAS[name]
    if columns is None:
        return schema
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise ValueError(f"{name}: no column(s) {unknown} in the schema")
    return pa.schema([schema.field(c) for c in columns])


def read_artifact(path: str | Path, name: str, *, columns: Sequence[str] | None = None) -> pa.Table:
    """Read artifact ``name`` from ``path`` (only ``columns`` if given), checked against its
    schema."""
    pf, meta = _open(path, name)
    _check_columns(pf.schema_arrow, name, where=str(path))
    try:
        table = pf.read(columns=list(columns) if columns is not None else None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file: {exc}") from exc
    wanted = _wanted(name, columns)
    return _checked(table, wanted, where=str(path), offset=0).replace_schema_metadata(meta)


def iter_artifact(
    path: str | Path,
    name: str,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Artifact ``name`` as successive lists of row dicts of at most ``batch_rows`` rows
    (default: as many as fit in :data:`BATCH_BYTES`, at most :data:`DEFAULT_BATCH_ROWS`).

    The file is checked as :func:`read_artifact` checks it (name, version, column types; nulls
    batch by batch, reported with the row number in the file), but only one batch is held in
    memory at a time.
    """
    for batch in iter_artifact_batches(path, name, columns=columns, batch_rows=batch_rows):
        yield batch.to_pylist()


def iter_artifact_batches(
    path: str | Path,
    name: str,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int | None = None,
) -> Iterator[pa.Table]:
    """Artifact ``name`` as successive checked tables of at most ``batch_rows`` rows (default:
    see :func:`iter_artifact`)."""
    pf, _ = _open(path, name)
    _check_columns(pf.schema_arrow, name, where=str(path))
    wanted = _wanted(name, columns)
    if batch_rows is None:
        batch_rows = auto_batch_rows(pf, wanted.names)
    offset = 0
    try:
        batches = pf.iter_batches(batch_size=batch_rows, columns=wanted.names)
        for batch in batches:
            table = pa.Table.from_batches([batch])
            yield _checked(table, wanted, where=str(path), offset=offset)
            offset += batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file: {exc}") from exc


def auto_batch_rows(pf: pq.ParquetFile, columns: Sequence[str]) -> int:
    """Rows per batch so that a batch of ``columns`` holds about :data:`BATCH_BYTES` (from the
    uncompressed sizes in the file's footer; no row is read)."""
    meta = pf.metadata
    if meta.num_rows == 0:
        return DEFAULT_BATCH_ROWS
    names = set(columns)
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            if col.path_in_schema.split(".", 1)[0] in names:
                total += col.total_uncompressed_size
    per_row = max(1.0, total / meta.num_rows)
    return max(1, min(DEFAULT_BATCH_ROWS, int(BATCH_BYTES / per_row)))


def select_rows(
    path: str | Path,
    name: str,
    column: str,
    values: Collection[Any],
    *,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The rows of artifact ``name`` whose ``column`` is in ``values``, in file order (streamed:
    no other row is held). ``columns`` limits the fields read (``column`` is always read)."""
    wanted = set(values)
    if columns is not None:
        columns = tuple(dict.fromkeys((*columns, column)))
    return [
        r
        for batch in iter_artifact(path, name, columns=columns)
        for r in batch
        if r[column] in wanted
    ]


def count_rows(path: str | Path, name: str) -> int:
    """Number of rows of artifact ``name`` (from the file footer; reads no rows)."""
    pf, _ = _open(path, name)
    return pf.metadata.num_rows


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Provenance and summary of an artifact, without reading its rows."""
    meta = _merged_metadata(pq.ParquetFile(path))
    return {
        "schema": meta.get(META_SCHEMA, b"").decode(),
        "schema_version": meta.get(META_VERSION, b"").decode(),
        "provenance": json.loads(meta.get(META_PROVENANCE, b"{}")),
        "summary": json.loads(meta.get(META_SUMMARY, b"{}")),
    }
