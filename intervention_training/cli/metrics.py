"""Reading whatever evaluation metrics exist (``metrics/**/*.json``), without knowing their layout.

Every JSON file becomes a table: a mapping of mappings (``{benchmark: {metric: value}}``) a
matrix with one row per key and one column per numeric leaf; a list of records a table of the
records; anything else a ``path → value`` list of its numeric leaves. pass@k curves are found
wherever a file holds one of these shapes (at any depth; the curve is named by its path):

* a mapping with two or more keys like ``pass@1``, ``pass@8``, ``pass_at_16``;
* a mapping with a ``k`` list and a same-length ``pass@k`` / ``pass_at_k`` / ``pass`` list;
* a mapping whose ``pass@k`` / ``pass_at_k`` value maps k (as a string) to a number;
* a list of records each holding ``k`` and ``pass@k`` / ``pass_at_k``.

A column ``x`` that has companions ``x_lo`` and ``x_hi`` (or ``x_low`` and ``x_high``: the
evaluation metrics, the continuation sources and the pass@k curves write intervals so) becomes
one column of :class:`Interval` values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PASS_KEY = re.compile(r"^pass(?:@|_at_|_at)(\d+)$", re.IGNORECASE)
_CURVE_KEYS = ("pass@k", "pass_at_k", "pass")
_BOUNDS = (("_lo", "_hi"), ("_low", "_high"))


@dataclass(frozen=True)
class Interval:
    """A number and the bounds of its interval (any of them may be None)."""

    value: Any
    low: Any
    high: Any


@dataclass
class MetricsFile:
    """One metrics file: a table of its numbers and the pass@k curves found in it."""

    name: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    curves: list[tuple[str, list[float], list[float]]] = field(default_factory=list)
    error: str = ""


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _leaves(obj: Any, path: str, out: list[tuple[str, float]]) -> None:
    if _num(obj):
        out.append((path or "value", float(obj)))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _leaves(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _leaves(v, f"{path}[{i}]", out)


def fold_intervals(columns: list[str], rows: list[list[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns ``x``, ``x_lo``, ``x_hi`` (or ``x_low``, ``x_high``) as one column ``x`` of
    :class:`Interval` values; other columns unchanged, in their order."""
    index = {c: i for i, c in enumerate(columns)}
    folds: dict[int, tuple[int, int]] = {}
    for i, c in enumerate(columns):
        for lo, hi in _BOUNDS:
            if c and c + lo in index and c + hi in index:
                folds[i] = (index[c + lo], index[c + hi])
                break
    if not folds:
        return columns, rows
    gone = {j for pair in folds.values() for j in pair}
    keep = [i for i in range(len(columns)) if i not in gone]

    def cell(row: list[Any], i: int) -> Any:
        if i not in folds:
            return row[i]
        lo, hi = folds[i]
        return Interval(row[i], row[lo], row[hi])

    return [columns[i] for i in keep], [[cell(r, i) for i in keep] for r in rows]


def _table(obj: Any) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of a file's numbers, in the most readable of the three layouts."""
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        leaves = {k: dict(_pairs(v)) for k, v in obj.items()}
        cols = list(dict.fromkeys(c for lv in leaves.values() for c in lv))
        rows = [[k, *(lv.get(c) for c in cols)] for k, lv in leaves.items()]
        return fold_intervals(["", *cols], rows)
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        cols = list(dict.fromkeys(k for r in obj for k, v in r.items() if _scalar(v)))
        return fold_intervals(cols, [[r.get(c) for c in cols] for r in obj])
    return ["metric", "value"], [[k, v] for k, v in _pairs(obj)]


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _pairs(obj: Any) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    _leaves(obj, "", out)
    return out


def _curve_of(obj: Any) -> tuple[list[float], list[float]] | None:
    """(ks, values) when ``obj`` has one of the recognised pass@k shapes."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) and "k" in r for r in obj):
        key = next((k for k in _CURVE_KEYS if all(_num(r.get(k)) for r in obj)), None)
        if key and all(_num(r["k"]) for r in obj):
            return [float(r["k"]) for r in obj], [float(r[key]) for r in obj]
    if not isinstance(obj, dict):
        return None
    pairs = [(int(m.group(1)), v) for k, v in obj.items() if (m := _PASS_KEY.match(str(k)))]
    pairs = [(k, float(v)) for k, v in pairs if _num(v)]
    if len(pairs) >= 2:
        pairs.sort()
        return [float(k) for k, _ in pairs], [v for _, v in pairs]
    ks = obj.get("k")
    for key in _CURVE_KEYS:
        vals = obj.get(key)
        if isinstance(ks, list) and isinstance(vals, list) and len(ks) == len(vals) > 1:
            if all(_num(k) for k in ks) and all(_num(v) for v in vals):
                return [float(k) for k in ks], [float(v) for v in vals]
        if isinstance(vals, dict) and len(vals) > 1:
            items = [(k, v) for k, v in vals.items() if str(k).isdigit() and _num(v)]
            if len(items) == len(vals):
                items.sort(key=lambda kv: int(kv[0]))
                return [float(k) for k, _ in items], [float(v) for _, v in items]
    return None


def _curves(obj: Any, path: str, out: list[tuple[str, list[float], list[float]]]) -> None:
    found = _curve_of(obj)
    if found:
        out.append((path or "pass@k", *found))
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _curves(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _curves(v, f"{path}[{i}]", out)


def read_metrics(metrics_dir: Path | None) -> list[MetricsFile]:
    """Every ``*.json`` under ``metrics_dir`` (sorted; none when the folder does not exist)."""
    if metrics_dir is None or not Path(metrics_dir).is_dir():
        return []
    files = []
    for path in sorted(Path(metrics_dir).rglob("*.json")):
        mf = MetricsFile(str(path.relative_to(metrics_dir)))
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            mf.error = f"unreadable: {exc}"
        else:
            mf.columns, mf.rows = _table(obj)
            _curves(obj, "", mf.curves)
        files.append(mf)
    return files
