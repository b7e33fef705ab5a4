"""``int compare``: the paper's Tables 1, 2 and 4 across DVC experiments.

Input is the output of ``dvc exp show --json`` (DVC 3.x): a list with one entry for the
workspace and one per baseline commit, each ``{"rev", "name", "data", "error",
"experiments"}``; ``data`` holds ``params`` and ``metrics`` as ``{file: {"data": {...}}}`` (or
``{file: {"error": {...}}}`` when DVC could not read the file), and ``experiments`` is a list
of ``{"name", "executor": {"state", ...} | null, "revs": [entry]}`` for the experiments derived
from that commit. A failed experiment carries ``error`` (and the metrics of the commit it
started from, which are not its own); a queued or running one has no metrics yet. Neither
enters a table: both are listed as not compared.

Tables, one row per (experiment, ...), each number with its bootstrap interval:

* **1**, continuation sources on hard problems (``continuation_sources.json``): a row per
  source; coverage (problems with a correct continuation), its share of the problems, accuracy
  over continuations, and both as a ratio to the ``problem_only`` row of the same experiment;
* **2**, SFT data variants (``eval_sft.json``): a row per experiment with its
  ``sft_data.variant`` and ``guided.enabled``; coverage and accuracy on the ``train``
  benchmark, or on every benchmark the file has when it has no ``train``;
* **4**, pass@1 on the benchmarks (``eval_base.json``, ``eval_sft.json``, ``eval_rl.json``):
  a row per (experiment, model), a column per benchmark.

Rows carry the params that differ between the compared experiments (``rl.init``,
``sft_data.source``, ...). An experiment without a table's metrics is left out of that table,
and the table says so. Rates print as percentages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .data import CliInputError
from .render import interval_text

#: Table 1's sources in the paper's order (as ``continuation_sources.SOURCES``, which this
#: module does not import: the report stage's code deps would grow by the generation stack).
SOURCES = (
    "problem_only",
    "prefix_resample",
    "prefix_with_error",
    "prefix_intervention",
    "stronger_proposer",
)
#: The models of Table 4, in the pipeline's order.
MODELS = ("base", "sft", "rl")
#: Table 2's own parameter columns.
VARIANT_PARAMS = ("sft_data.variant", "guided.enabled")
#: Columns of names rather than numbers.
TEXT_COLUMNS = (
    "experiment",
    "params",
    "other params",
    "source",
    "model",
    "benchmark",
    "variant",
    "guided",
)
#: The benchmark Table 2 reads (an evaluation benchmark with ``source: train``).
TRAIN_BENCHMARK = "train"
TABLES = ("1", "2", "4", "diagnostics")
#: The diagnostics' SFT data sources, in the nll stage's order (``diagnostics.nll.SOURCES``).
NLL_SOURCES = (
    "prefix_intervention",
    "intervention_only",
    "prefix_intervention_suffix",
    "reference",
)
INTERVALS = "value [low, high]: the bootstrap interval over problems; rates in %"
TITLES = {
    "1": "Table 1: continuation sources on hard problems (continuation_sources.json)",
    "2": "Table 2: SFT data variants, after SFT, on the training problems (eval_sft.json)",
    "4": "Table 4: pass@1 of base, SFT and RL models (eval_{base,sft,rl}.json)",
    "diagnostics": "On-policy diagnostics: NLL of each SFT data source under the base model "
    "(nll.json) and next-token entropy on the model's own samples (entropy_{base,sft,rl}.json)",
}


@dataclass
class Experiment:
    """One row source of ``dvc exp show``: the workspace, a baseline commit or an experiment."""

    name: str
    rev: str
    state: str = "success"  # or the queue's: queued, running, failed
    error: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # file name -> its data
    metric_errors: dict[str, str] = field(default_factory=dict)  # file name -> why unreadable

    @property
    def compared(self) -> bool:
        """Finished without error: its metrics are its own."""
        return not self.error and self.state == "success"

    def why_not(self) -> str:
        return f"failed: {self.error}" if self.error else self.state

    def metric(self, file: str) -> tuple[dict[str, Any] | None, str]:
        """(the file's data, "") or (None, why it is missing)."""
        if file in self.metrics:
            return self.metrics[file], ""
        if file in self.metric_errors:
            return None, f"{file} unreadable: {self.metric_errors[file]}"
        return None, f"no {file}"


@dataclass
class TableOut:
    """One rendered table: machine rows (``--json``), display cells, and what was left out."""

    number: str
    title: str
    columns: list[str]
    cells: list[list[str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": int(self.number) if self.number.isdigit() else self.number,
            "title": self.title,
            "rows": self.rows,
            "left_out": self.left_out,
            "notes": self.notes,
        }


# --- reading dvc exp show ---------------------------------------------------------------------


def dvc_command() -> list[str] | None:
    """How to run DVC here: ``dvc`` on PATH, else this interpreter's ``-m dvc``; None without."""
    exe = shutil.which("dvc")
    if exe:
        return [exe]
    if find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    return None


def run_exp_show(repo: Path, *, all_commits: bool = False) -> Any:
    """The parsed output of ``dvc exp show --json`` in ``repo``. Raises CliInputError when DVC
    is not installed, ``repo`` is not a DVC repository, or the output is not JSON."""
    dvc = dvc_command()
    if dvc is None:
        raise CliInputError(
            "dvc is not installed here (pip install dvc); or pass --input FILE with the saved "
            "output of `dvc exp show --json`"
        )
    cmd = [*dvc, "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    try:
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CliInputError(f"could not run {' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise CliInputError(f"`dvc exp show --json` failed in {repo}: {why}")
    return _parse_json(proc.stdout, "the output of `dvc exp show --json`")


def read_input(path: Path) -> Any:
    """The saved output of ``dvc exp show --json`` in ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _parse_json(text, str(path))


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliInputError(f"{what}: not JSON ({exc})") from None


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, Mapping) and obj:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = obj


def _params(data: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened params: ``a.b`` for params.yaml, ``file:a.b`` for any other params file."""
    out: dict[str, Any] = {}
    files = data.get("params") or {}
    for file in sorted(files, key=lambda f: (Path(f).name != "params.yaml", f)):
        content = files[file]
        if not isinstance(content, Mapping) or not isinstance(content.get("data"), Mapping):
            continue
        flat: dict[str, Any] = {}
        _flatten(content["data"], "", flat)
        prefix = "" if Path(file).name == "params.yaml" else f"{file}:"
        out.update({f"{prefix}{k}": v for k, v in flat.items()})
    return out


def _error_text(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, Mapping):
        return str(error.get("msg") or error.get("type") or "error")
    return str(error)


def _experiment(entry: Mapping[str, Any], state: str = "", name: str = "") -> Experiment:
    rev = str(entry.get("rev") or "")
    name = entry.get("name") or name or (rev if rev == "workspace" else rev[:7]) or "?"
    exp = Experiment(
        name=str(name),
        rev=rev,
        state=state or "success",
        error=_error_text(entry.get("error")),
    )
    data = entry.get("data")
    if not isinstance(data, Mapping):
        if exp.compared:
            exp.state = "no data"  # e.g. a queued experiment: nothing collected yet
        return exp
    exp.params = _params(data)
    for path, content in (data.get("metrics") or {}).items():
        file = Path(str(path)).name
        if isinstance(content, Mapping) and isinstance(content.get("data"), Mapping):
            exp.metrics[file] = content["data"]
        elif isinstance(content, Mapping) and isinstance(content.get("error"), Mapping):
            if content["error"].get("type") != "FileNotFoundError":  # absent: simply no file
                exp.metric_errors[file] = _error_text(content["error"])
    return exp


def parse_exp_show(doc: Any) -> list[Experiment]:
    """The workspace, every baseline commit and every experiment of ``dvc exp show --json``,
    in its order. Raises CliInputError when ``doc`` is not a list of entries."""
    if not isinstance(doc, list) or not all(isinstance(e, Mapping) for e in doc):
        raise CliInputError("not the output of `dvc exp show --json` (a list of revisions)")
    out: list[Experiment] = []
    for entry in doc:
        out.append(_experiment(entry))
        for group in entry.get("experiments") or []:
            if not isinstance(group, Mapping):
                continue
            executor = group.get("executor")
            state = executor.get("state", "") if isinstance(executor, Mapping) else ""
            for rev in group.get("revs") or []:
                if isinstance(rev, Mapping):
                    name = str(group.get("name") or "")
                    out.append(_experiment(rev, str(state or ""), name))
    return out


# --- arithmetic -------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def ratio(value: Any, base: Any) -> float | None:
    """``value / base``; None when either is missing or ``base`` is 0."""
    v, b = _num(value), _num(base)
    return None if v is None or not b else v / b


def share_interval(m: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(share, low, high) of covered problems: ``coverage_share`` (or coverage / problems) and
    the coverage interval's bounds over ``problems``; None where a number is missing."""
    n = _num(m.get("problems"))
    share = _num(m.get("coverage_share"))
    if share is None:
        share = ratio(m.get("coverage"), n)
    low, high = ratio(m.get("coverage_lo"), n), ratio(m.get("coverage_hi"), n)
    if n == 0:
        low = high = None
    return share, low, high


def rate_interval(m: Mapping[str, Any], key: str) -> tuple[float | None, ...]:
    """(value, low, high) of a rate: ``key``, ``key_lo``, ``key_hi``. ``accuracy`` falls back to
    pass@1, and intervals to the older nested ``ci: {key: {low, high}}`` layout."""
    value = _num(m.get(key))
    if value is None and key == "accuracy":
        return rate_interval(m, "pass@1")
    low, high = _num(m.get(f"{key}_lo")), _num(m.get(f"{key}_hi"))
    old = (m.get("ci") or {}).get(key) if isinstance(m.get("ci"), Mapping) else None
    if (low is None or high is None) and isinstance(old, Mapping):
        low, high = _num(old.get("low")), _num(old.get("high"))
    return value, low, high


def count_text(value: Any, low: Any = None, high: Any = None) -> str:
    """A count with its interval: ``12 [7.5, 16]``."""
    v = _num(value)
    if v is None:
        return "—"

    def g(x: float) -> str:
        return f"{x:.0f}" if x == int(x) else f"{x:.1f}"

    lo, hi = _num(low), _num(high)
    return g(v) if lo is None or hi is None else f"{g(v)} [{g(lo)}, {g(hi)}]"


def pct_text(values: Sequence[float | None]) -> str:
    """(value, low, high) as percentages with two decimals: ``7.71 [6.90, 8.55]``."""
    value, low, high = (list(values) + [None, None])[:3]
    return interval_text(value, low, high, scale=100.0)


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def value_text(v: Any) -> str:
    """A param value as params.yaml would write it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def changed_params(exps: Sequence[Experiment]) -> list[str]:
    """The params whose values differ between ``exps`` (or that some of them lack), sorted."""
    keys = sorted({k for e in exps for k in e.params})
    missing = object()
    out = []
    for k in keys:
        seen = {json.dumps(e.params.get(k, missing), sort_keys=True, default=str) for e in exps}
        if len(seen) > 1:
            out.append(k)
    return out


def params_text(exp: Experiment, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={value_text(exp.params.get(k))}" for k in keys if k in exp.params)


# --- the tables -------------------------------------------------------------------------------


def _ordered_sources(data: Mapping[str, Any]) -> list[str]:
    return [s for s in SOURCES if s in data] + sorted(set(data) - set(SOURCES))


def table_1(exps: Sequence[Experiment], changed: Sequence[str]) -> TableOut:
    """Continuation sources: a row per (experiment, measured source)."""
    out = TableOut(
        "1",
        TITLES["1"],
        [
            "experiment",
            "params",
            "source",
            "problems",
            "coverage",
            "coverage %",
            "accuracy %",
            "coverage ratio",
            "accuracy ratio",
        ],
        notes=[f"{INTERVALS}; ratio: to the same experiment's problem_only row"],
    )
    for exp in exps:
        data, why = exp.metric("continuation_sources.json")
        if data is None:
            out.left_out.append({"experiment": exp.name, "reason": why})
            continue
        base = data.get("problem_only") if isinstance(data.get("problem_only"), Mapping) else {}
        rows = 0
        for source in _ordered_sources(data):
            m = data[source]
            if not isinstance(m, Mapping):
                continue
            if "skipped" in m:
                out.notes.append(f"{exp.name}: {source} not measured ({m['skipped']})")
                continue
            share, share_lo, share_hi = share_interval(m)
            accuracy = rate_interval(m, "accuracy")
            row = {
                "experiment": exp.name,
                "rev": exp.rev,
                "params": {k: exp.params.get(k) for k in changed if k in exp.params},
                "source": source,
                "problems": m.get("problems"),
                "coverage": m.get("coverage"),
                "coverage_lo": m.get("coverage_lo"),
                "coverage_hi": m.get("coverage_hi"),
                "coverage_share": share,
                "coverage_share_lo": share_lo,
                "coverage_share_hi": share_hi,
                "accuracy": accuracy[0],
                "accuracy_lo": accuracy[1],
                "accuracy_hi": accuracy[2],
                "continuations": m.get("continuations"),
                "correct": m.get("correct"),
                "coverage_ratio": ratio(m.get("coverage"), base.get("coverage")),
                "accuracy_ratio": ratio(accuracy[0], rate_interval(base, "accuracy")[0]),
            }
            out.rows.append(row)
            out.cells.append(
                [
                    exp.name,
                    params_text(exp, changed),
                    source,
                    count_text(m.get("problems")),
                    count_text(m.get("coverage"), m.get("coverage_lo"), m.get("coverage_hi")),
                    pct_text((share, share_lo, share_hi)),
                    pct_text(accuracy),
                    ratio_text(row["coverage_ratio"]),
                    ratio_text(row["accuracy_ratio"]),
                ]
            )
            rows += 1
        if not rows:
            out.left_out.append({"experiment": exp.name, "reason": "no source measured"})
    return out


def table_2(exps: Sequence[Experiment], changed: Sequence[str]) -> TableOut:
    """SFT data variants: a row per experiment on the ``train`` benchmark of eval_sft.json (a
    row per benchmark when the file has no ``train``)."""
    others = [k for k in changed if k not in VARIANT_PARAMS]
    out = TableOut(
        "2",
        TITLES["2"],
        [
            "experiment",
            "variant",
            "guided",
            "other params",
            "benchmark",
            "problems",
            "coverage",
            "coverage %",
            "accuracy %",
        ],
        notes=[f"{INTERVALS}; variant: sft_data.variant; guided: guided.enabled"],
    )
    for exp in exps:
        data, why = exp.metric("eval_sft.json")
        benches = {k: v for k, v in (data or {}).items() if isinstance(v, Mapping)}
        if not benches:
            out.left_out.append({"experiment": exp.name, "reason": why or "no benchmark"})
            continue
        if TRAIN_BENCHMARK in benches:
            names = [TRAIN_BENCHMARK]
        else:
            names = sorted(benches)
            out.notes.append(
                f"{exp.name}: eval_sft.json has no '{TRAIN_BENCHMARK}' benchmark; "
                f"showing {', '.join(names)}"
            )
        for bench in names:
            m = benches[bench]
            share = share_interval(m)
            accuracy = rate_interval(m, "accuracy")
            out.rows.append(
                {
                    "experiment": exp.name,
                    "rev": exp.rev,
                    **{k: exp.params.get(k) for k in VARIANT_PARAMS},
                    "params": {k: exp.params.get(k) for k in others if k in exp.params},
                    "benchmark": bench,
                    "problems": m.get("problems"),
                    "coverage": m.get("coverage"),
                    "coverage_lo": m.get("coverage_lo"),
                    "coverage_hi": m.get("coverage_hi"),
                    "coverage_share": share[0],
                    "coverage_share_lo": share[1],
                    "coverage_share_hi": share[2],
                    "accuracy": accuracy[0],
                    "accuracy_lo": accuracy[1],
                    "accuracy_hi": accuracy[2],
                }
            )
            out.cells.append(
                [
                    exp.name,
                    *(
                        value_text(exp.params[k]) if k in exp.params else "—"
                        for k in VARIANT_PARAMS
                    ),
                    params_text(exp, others),
                    bench,
                    count_text(m.get("problems")),
                    count_text(m.get("coverage"), m.get("coverage_lo"), m.get("coverage_hi")),
                    pct_text(share),
                    pct_text(accuracy),
                ]
            )
    return out


def table_4(exps: Sequence[Experiment], changed: Sequence[str]) -> TableOut:
    """pass@1 per benchmark: a row per (experiment, model with metrics)."""
    found: list[tuple[Experiment, str, Mapping[str, Any]]] = []
    out = TableOut("4", TITLES["4"], [], notes=[INTERVALS])
    for exp in exps:
        missing = []
        models = 0
        for model in MODELS:
            data, why = exp.metric(f"eval_{model}.json")
            benches = {k: v for k, v in (data or {}).items() if isinstance(v, Mapping)}
            if benches:
                found.append((exp, model, benches))
                models += 1
            else:
                missing.append(why or f"no benchmark in eval_{model}.json")
        if not models:
            out.left_out.append({"experiment": exp.name, "reason": "; ".join(missing)})
        elif missing:
            out.notes.append(f"{exp.name}: {'; '.join(missing)}")
    benchmarks = sorted({b for _, _, benches in found for b in benches})
    out.columns = ["experiment", "params", "model", *(f"{b} pass@1 %" for b in benchmarks)]
    for exp, model, benches in found:
        row: dict[str, Any] = {
            "experiment": exp.name,
            "rev": exp.rev,
            "params": {k: exp.params.get(k) for k in changed if k in exp.params},
            "model": model,
            "benchmarks": {},
        }
        cells = [exp.name, params_text(exp, changed), model]
        for b in benchmarks:
            if b not in benches:
                cells.append("—")
                continue
            value, low, high = rate_interval(benches[b], "pass@1")
            row["benchmarks"][b] = {
                "problems": benches[b].get("problems"),
                "pass@1": value,
                "pass@1_lo": low,
                "pass@1_hi": high,
            }
            cells.append(pct_text((value, low, high)))
        out.rows.append(row)
        out.cells.append(cells)
    return out


def nats_text(value: Any, low: Any = None, high: Any = None) -> str:
    """Nats with three decimals and the interval: ``1.503 [1.371, 1.612]``."""
    return interval_text(_num(value), _num(low), _num(high), scale=1.0, digits=3)


def table_diagnostics(exps: Sequence[Experiment], changed: Sequence[str]) -> TableOut:
    """A row per (experiment, measured quantity): the NLL per token of each source's SFT rows
    under the base model, and each model's mean next-token entropy per benchmark."""
    out = TableOut(
        "diagnostics",
        TITLES["diagnostics"],
        ["experiment", "params", "measure", "of", "nats per token", "tokens"],
        notes=[
            "value [low, high]: bootstrap interval (NLL: over SFT rows; entropy: over problems)"
        ],
    )
    for exp in exps:
        found = 0
        nll, why_nll = exp.metric("nll.json")
        for source in [*NLL_SOURCES, *sorted(set(nll or {}) - set(NLL_SOURCES))]:
            m = (nll or {}).get(source)
            if not isinstance(m, Mapping):
                continue
            if "skipped" in m:
                out.notes.append(f"{exp.name}: nll {source} skipped ({m['skipped']})")
                continue
            found += 1
            value = (m.get("nll_per_token"), m.get("nll_per_token_lo"), m.get("nll_per_token_hi"))
            out.rows.append(
                {"experiment": exp.name, "rev": exp.rev, "measure": "nll", "source": source,
                 "params": {k: exp.params.get(k) for k in changed if k in exp.params},
                 "nll_per_token": value[0], "nll_per_token_lo": value[1],
                 "nll_per_token_hi": value[2], "tokens": m.get("tokens"), "rows": m.get("rows")}
            )  # fmt: skip
            out.cells.append(
                [exp.name, params_text(exp, changed), "NLL under base", source,
                 nats_text(*value), count_text(m.get("tokens"))]
            )  # fmt: skip
        for model in MODELS:
            data, _ = exp.metric(f"entropy_{model}.json")
            for bench, m in sorted((data or {}).items()):
                if not isinstance(m, Mapping):
                    continue
                found += 1
                value = (
                    m.get("entropy_per_token"),
                    m.get("entropy_per_token_lo"),
                    m.get("entropy_per_token_hi"),
                )
                out.rows.append(
                    {"experiment": exp.name, "rev": exp.rev, "measure": "entropy",
                     "model": model, "benchmark": bench,
                     "params": {k: exp.params.get(k) for k in changed if k in exp.params},
                     "entropy_per_token": value[0], "entropy_per_token_lo": value[1],
                     "entropy_per_token_hi": value[2], "tokens": m.get("tokens")}
                )  # fmt: skip
                out.cells.append(
                    [exp.name, params_text(exp, changed), f"entropy of {model}", bench,
                     nats_text(*value), count_text(m.get("tokens"))]
                )  # fmt: skip
        if not found:
            out.left_out.append(
                {"experiment": exp.name, "reason": f"{why_nll or 'no source'}; no entropy_*.json"}
            )
    return out


BUILDERS = {"1": table_1, "2": table_2, "4": table_4, "diagnostics": table_diagnostics}


def build_tables(
    doc: Any, tables: Sequence[str] = TABLES, only: Sequence[str] | None = None
) -> tuple[list[TableOut], list[dict]]:
    """The requested tables of a ``dvc exp show --json`` document, and the experiments not
    compared (failed, queued, running; with ``only``, a name not found) as
    ``{"experiment", "reason"}``.

    ``only``: the experiments to compare, by name (the workspace is ``workspace``, a baseline
    commit its branch name); the others are ignored, and the params that differ are worked out
    among these alone. A table's experiments are the ones run for it: an experiment limited to
    one stage carries the baseline's copies of the other metrics files.
    """
    exps = parse_exp_show(doc)
    if only:
        wanted = set(only)
        exps = [e for e in exps if e.name in wanted]
        found = {e.name for e in exps}
        missing = [n for n in dict.fromkeys(only) if n not in found]
    else:
        missing = []
    compared = [e for e in exps if e.compared]
    skipped = [{"experiment": e.name, "reason": e.why_not()} for e in exps if not e.compared]
    skipped += [{"experiment": n, "reason": "not found in dvc exp show"} for n in missing]
    changed = changed_params(compared)
    return [BUILDERS[t](compared, changed) for t in tables], skipped


# --- output -----------------------------------------------------------------------------------


def _drop_empty_columns(table: TableOut) -> tuple[list[str], list[list[str]]]:
    """Columns with at least one non-empty cell (the params column is often empty)."""
    keep = [i for i, _ in enumerate(table.columns) if any(r[i] for r in table.cells)]
    if not table.cells:
        keep = list(range(len(table.columns)))
    return [table.columns[i] for i in keep], [[r[i] for i in keep] for r in table.cells]


def _left_out_lines(table: TableOut) -> list[str]:
    lines = list(table.notes)
    if table.left_out:
        lines.append(
            "left out: " + "; ".join(f"{x['experiment']} ({x['reason']})" for x in table.left_out)
        )
    if not table.rows:
        lines.append("no experiment has this table's metrics")
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(tables: Sequence[TableOut], skipped: Sequence[Mapping[str, str]]) -> str:
    """GitHub-flavoured Markdown: a heading, a table and its notes per table."""
    parts = []
    if skipped:
        parts.append(
            "_not compared: "
            + "; ".join(f"{_md_cell(s['experiment'])} ({_md_cell(s['reason'])})" for s in skipped)
            + "_\n"
        )
    for t in tables:
        columns, cells = _drop_empty_columns(t)
        lines = [f"### {t.title}", ""]
        if cells:
            lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
            lines.append("|" + "|".join("---" for _ in columns) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells]
            lines.append("")
        lines += [f"_{_md_cell(line)}_\n" for line in _left_out_lines(t)]
        parts.append("\n".join(lines).rstrip() + "\n")
    return "\n".join(parts)


def print_tables(
    console: Console, tables: Sequence[TableOut], skipped: Sequence[Mapping[str, str]]
) -> None:
    """Rich tables, each followed by its notes (dim)."""
    if skipped:
        line = "not compared: " + "; ".join(f"{s['experiment']} ({s['reason']})" for s in skipped)
        console.print(Text(line, style="dim"), soft_wrap=True)
    for i, t in enumerate(tables):
        if i or skipped:
            console.print()
        columns, cells = _drop_empty_columns(t)
        if cells:
            table = Table(title=Text(t.title, style="bold"), title_justify="left")
            for c in columns:  # numbers stay on one line; names and params wrap
                numeric = c not in TEXT_COLUMNS
                table.add_column(
                    Text(c),
                    justify="right" if numeric else "left",
                    no_wrap=numeric,
                    overflow="ellipsis" if numeric else "fold",
                )
            for row in cells:  # as text: names and headers may hold brackets, not markup
                table.add_row(*(Text(cell) for cell in row))
            # In a pipe or a file, as wide as the table needs: no cell cut or folded.
            width = console.width
            if not console.is_terminal:
                wide = console.options.update_width(1000)
                console.width = max(width, console.measure(table, options=wide).maximum)
            console.print(table)
            console.width = width
        else:
            console.print(Text(t.title, style="bold"))
        for line in _left_out_lines(t):
            console.print(Text(line, style="dim"), soft_wrap=True)


def to_json(tables: Sequence[TableOut], skipped: Sequence[Mapping[str, str]]) -> str:
    return json.dumps(
        {"tables": [t.to_dict() for t in tables], "not_compared": list(skipped)},
        indent=2,
        default=str,
    )
