"""Reading and writing Parquet artifacts: validated against :mod:`schemas`, written atomically.

Writes go to a temporary file in the destination folder and are renamed into place, so a killed
stage leaves either the previous artifact or none, never a partial file that looks complete.
Parquet key-value metadata carries the schema name and version, the provenance (model, sampling,
seed, backend, package version) and the stage's summary counts.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import SCHEMA_VERSION, SCHEMAS

META_SCHEMA = b"int.schema"
META_VERSION = b"int.schema_version"
META_PROVENANCE = b"int.provenance"
META_SUMMARY = b"int.summary"


class ArtifactError(ValueError):
    """An artifact is missing, unreadable or does not match its declared schema."""


def package_version() -> str:
    try:
        return importlib_metadata.version("intervention-training")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    atomic_write(path, lambda fh: fh.write(data))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _column_problem(name: str, expected: pa.Field, actual: pa.Field | None) -> str | None:
    if actual is None:
        return f"column {name!r} is missing"
    if not actual.type.equals(expected.type):
        return f"column {name!r} has type {actual.type}, expected {expected.type}"
    return None


def to_table(rows: Iterable[Mapping[str, Any]] | pa.Table, name: str) -> pa.Table:
    """Build a table for artifact ``name`` from row dicts, checking columns, types and nulls."""
    schema = SCHEMAS[name]
    if isinstance(rows, pa.Table):
        table = rows
    else:
        rows = list(rows)
        missing = (
            {f.name for f in schema} - set().union(*(r.keys() for r in rows)) if rows else set()
        )
        if missing:
            raise ArtifactError(f"{name}: rows lack column(s) {sorted(missing)}")
        extra = set().union(*(r.keys() for r in rows)) - {f.name for f in schema} if rows else set()
        if extra:
            raise ArtifactError(f"{name}: rows have undeclared column(s) {sorted(extra)}")
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ArtifactError(f"{name}: rows do not match the schema: {exc}") from exc
    return validate_table(table, name, where=name)


def validate_table(table: pa.Table, name: str, *, where: str) -> pa.Table:
    """Check ``table`` against schema ``name`` (columns, types, nulls); return it reordered."""
    schema = SCHEMAS[name]
    for field in schema:
        actual = table.schema.field(field.name) if field.name in table.schema.names else None
        problem = _column_problem(field.name, field, actual)
        if problem:
            raise ArtifactError(f"{where}: {problem}")
        if not field.nullable:
            col = table.column(field.name)
            if col.null_count:
                idx = next(i for i, v in enumerate(col.is_null().to_pylist()) if v)
                raise ArtifactError(
                    f"{where}: row {idx}, column {field.name!r}: null in a non-nullable column"
                )
    extra = [n for n in table.schema.names if n not in schema.names]
    if extra:
        raise ArtifactError(f"{where}: undeclared column(s) {extra}")
    return table.select(schema.names).cast(schema)


def write_artifact(
    rows: Iterable[Mapping[str, Any]] | pa.Table,
    path: str | Path,
    name: str,
    *,
    provenance: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Validate ``rows`` against schema ``name`` and write them atomically to ``path``."""
    table = to_table(rows, name)
    meta = {
        META_SCHEMA: name.encode(),
        META_VERSION: SCHEMA_VERSION.encode(),
        META_PROVENANCE: json.dumps(
            {"package_version": package_version(), **(provenance or {})}, sort_keys=True
        ).encode(),
        META_SUMMARY: json.dumps(dict(summary or {}), sort_keys=True).encode(),
    }
    table = table.replace_schema_metadata(meta)
    # Streamed to the temporary file: no second in-memory copy of the encoded file.
    atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
    return table


def read_artifact(path: str | Path, name: str) -> pa.Table:
    """Read artifact ``name`` from ``path`` and check it matches the declared schema."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact {name!r} not found (run its stage first)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file: {exc}") from exc
    meta = table.schema.metadata or {}
    found = meta.get(META_SCHEMA, b"").decode()
    if found and found != name:
        raise ArtifactError(f"{path}: holds artifact {found!r}, expected {name!r}")
    version = meta.get(META_VERSION, b"").decode()
    if version and version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema version {version}, this code reads {SCHEMA_VERSION}; rerun the stage"
        )
    return validate_table(table, name, where=str(path)).replace_schema_metadata(meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Provenance and summary of an artifact, without reading its rows."""
    meta = pq.read_schema(path).metadata or {}
    return {
        "schema": meta.get(META_SCHEMA, b"").decode(),
        "schema_version": meta.get(META_VERSION, b"").decode(),
        "provenance": json.loads(meta.get(META_PROVENANCE, b"{}")),
        "summary": json.loads(meta.get(META_SUMMARY, b"{}")),
    }
