"""Finding and reading artifacts for the CLI: names or paths in, schema-checked rows out.

An artifact is named by its schema name (``interventions``, ``sft``, ...), resolved to
``<data_dir>/<name>.parquet`` (the file names dvc.yaml uses), or given as a path to any Parquet
file the pipeline wrote; its schema then comes from the file's ``int.schema`` metadata, or from
the file name when the metadata is absent. Problems here raise :class:`CliInputError`, which the
commands turn into exit status 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..artifacts import META_SCHEMA, ArtifactError, count_rows, read_artifact, select_rows
from ..errors import InputError
from ..schemas import KEYS, SCHEMAS

#: Artifacts that are not one file ``<data_dir>/<name>.parquet`` (one file per evaluated model):
#: given by path, e.g. ``int show data/eval/base.parquet``.
BY_PATH: dict[str, str] = {"eval_samples": "data/eval/<model>.parquet"}

#: Every artifact name that resolves to ``<data_dir>/<name>.parquet``, in pipeline order.
NAMES: tuple[str, ...] = tuple(n for n in SCHEMAS if n not in BY_PATH)

Row = dict[str, Any]


class CliInputError(InputError):
    """Bad input to a command: an unknown artifact name, a missing file, an invalid option."""


@dataclass(frozen=True)
class ArtifactRef:
    """A resolved artifact: its schema name and file."""

    name: str
    path: Path


def artifact_path(data_dir: Path, name: str) -> Path:
    """Where artifact ``name`` lives under ``data_dir`` (the file names dvc.yaml uses)."""
    return Path(data_dir) / f"{name}.parquet"


def _name_of_file(path: Path) -> str:
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # any unreadable file is bad input
        raise CliInputError(f"{path}: not a readable Parquet file ({exc})") from None
    name = meta.get(META_SCHEMA, b"").decode()
    if name in SCHEMAS:
        return name
    stem = re.sub(r"[^a-z_]", "", path.stem.lower())
    if stem in SCHEMAS:
        return stem
    raise CliInputError(f"{path}: no int.schema metadata and the file name names no artifact")


def resolve(ref: str, data_dir: Path) -> ArtifactRef:
    """Resolve ``ref`` (an artifact name, a unique prefix of one, or a path) to an artifact.

    Raises :class:`CliInputError` for an unknown name or a file that does not exist.
    """
    candidate = Path(ref)
    if candidate.suffix == ".parquet" or candidate.is_file() or "/" in ref or os.sep in ref:
        if not candidate.is_file():
            raise CliInputError(f"{ref}: no such artifact file")
        return ArtifactRef(_name_of_file(candidate), candidate)
    key = ref.strip().lower().replace("-", "_")
    if key in BY_PATH:
        raise CliInputError(
            f"{key} artifacts are one file per model; give its path ({BY_PATH[key]})"
        )
    matches = [n for n in NAMES if n == key] or [n for n in NAMES if n.startswith(key)]
    if len(matches) != 1:
        known = ", ".join(NAMES)
        what = "ambiguous" if matches else "unknown"
        raise CliInputError(f"{what} artifact name {ref!r}; known names: {known}")
    path = artifact_path(data_dir, matches[0])
    if not path.is_file():
        raise CliInputError(f"{path}: artifact {matches[0]!r} not found (run its stage first)")
    return ArtifactRef(matches[0], path)


def read_rows(ref: ArtifactRef, columns: Sequence[str] | None = None) -> list[Row]:
    """All rows of a resolved artifact (only ``columns`` when given), checked against its
    schema."""
    try:
        return read_artifact(ref.path, ref.name, columns=columns).to_pylist()
    except ArtifactError as exc:
        raise CliInputError(str(exc)) from None


class Artifacts:
    """Lazily read, cached artifacts of one data folder; a missing artifact reads as ``None``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._cache: dict[tuple[str, tuple[str, ...] | None], list[Row] | None] = {}
        self._only: dict[str, tuple[str, frozenset[str]]] = {}
        self._index: dict[tuple[str, str, tuple[str, ...] | None], dict[str, Row]] = {}

    def path(self, name: str) -> Path:
        return artifact_path(self.data_dir, name)

    def get(self, name: str, columns: Sequence[str] | None = None) -> list[Row] | None:
        """Rows of artifact ``name`` (only ``columns`` when given: much less memory on large
        artifacts), or ``None`` when its file does not exist."""
        key = (name, tuple(columns) if columns is not None else None)
        if key not in self._cache:
            path = self.path(name)
            if not path.is_file():
                rows = None
            elif name in self._only:
                rows = self._matching(name, columns)
            else:
                rows = read_rows(ArtifactRef(name, path), columns)
            self._cache[key] = rows
        return self._cache[key]

    def restrict(self, name: str, values: Iterable[str], column: str | None = None) -> None:
        """From now on read only the rows of ``name`` whose ``column`` (its key column by
        default) is in ``values``, streaming the file: ``show`` needs the context of a few rows,
        not whole artifacts."""
        self._only[name] = (column or KEYS[name], frozenset(values))
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}
        self._index = {k: v for k, v in self._index.items() if k[0] != name}

    def _matching(self, name: str, columns: Sequence[str] | None) -> list[Row]:
        column, values = self._only[name]
        try:
            return select_rows(self.path(name), name, column, values, columns=columns)
        except ArtifactError as exc:
            raise CliInputError(str(exc)) from None

    def count(self, name: str) -> int | None:
        """Number of rows of artifact ``name`` (from the file footer), ``None`` when missing."""
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            return count_rows(path, name)
        except ArtifactError as exc:
            raise CliInputError(str(exc)) from None

    def by_key(
        self, name: str, key: str | None = None, columns: Sequence[str] | None = None
    ) -> dict[str, Row]:
        """Rows of ``name`` indexed by ``key`` (its key column by default); empty when missing."""
        key = key or KEYS[name]
        if columns is not None and key not in columns:
            columns = (key, *columns)
        cache_key = (name, key, tuple(columns) if columns is not None else None)
        if cache_key not in self._index:
            self._index[cache_key] = {r[key]: r for r in self.get(name, columns) or []}
        return self._index[cache_key]

    def any_present(self) -> bool:
        return any(self.path(n).is_file() for n in NAMES)
