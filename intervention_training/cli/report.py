"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched).

Sections: the funnel (chart and table with every drop reason), where the first errors fall (step
number, and position relative to the attempt's length), intervention lengths, pass rates of the
attempts and of the guided continuations, and, when ``metrics/`` holds JSON files, their numbers
and pass@k curves. Output is deterministic: the same artifacts give the same bytes.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path

from ..artifacts import atomic_write_bytes, read_metadata
from .data import Artifacts, Row
from .funnel import GRADE_COLUMNS, FunnelStage, compute_funnel
from .metrics import Interval, MetricsFile, read_metrics
from .svg import bar_chart, funnel_chart, line_chart

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1340px;padding:0 20px;color:#222}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.sub{color:#666}.grid{stroke:#e6e6e6}.ct{font-size:14px;font-weight:600}.al{font-size:12px;fill:#555}
.tk{font-size:11px;fill:#333}.missing{fill:#999;font-style:italic}.line{stroke-width:2}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;background:#fff}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f6f6}.wide{overflow-x:auto}.empty{color:#888;font-style:italic}ul.drops{margin:0;padding-left:18px}
"""


def _empty(what: str) -> str:
    return f'<p class="empty">No {escape(what)} yet.</p>'


def int_bins(values: Sequence[int], max_bins: int = 24) -> tuple[list[str], list[int], int]:
    """(labels, lower edges, width) of integer bins covering ``values``."""
    lo, hi = min(values), max(values)
    width = max(1, math.ceil((hi - lo + 1) / max_bins))
    if width > 1:  # round widths and edges for readable labels
        mag = 10 ** math.floor(math.log10(width))
        width = next(m * mag for m in (1, 2, 5, 10) if m * mag >= width)
        lo = lo // width * width
    edges = list(range(lo, hi + 1, width))
    labels = [str(e) if width == 1 else f"{e}–{e + width - 1}" for e in edges]
    return labels, edges, width


def _stacked(
    values: dict[str, list[int]], max_bins: int
) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Bin several integer series on shared bins."""
    allv = [v for vs in values.values() for v in vs]
    labels, edges, width = int_bins(allv, max_bins)
    series = []
    for name, vs in values.items():
        counts = Counter((v - edges[0]) // width for v in vs)
        series.append((name, [counts.get(i, 0) for i in range(len(edges))]))
    return labels, series


def _split(rows: list[Row], value: str) -> dict[str, list[int]]:
    kept = [r[value] for r in rows if r["kept"]]
    other = [r[value] for r in rows if not r["kept"]]
    return {"kept": kept, "parsed, then dropped": other}


def _error_charts(ivs: list[Row] | None) -> str:
    parsed = [r for r in ivs or [] if r["parse_status"] == "ok" and r["location"] is not None]
    if not parsed:
        return _empty("parsed interventions")
    labels, series = _stacked(_split(parsed, "location"), 30)
    absolute = bar_chart(
        "first-error-absolute", "First-error step (absolute)", labels, series, "step number"
    )
    rel = [dict(r, rel=min(9, math.ceil(10 * r["location"] / r["n_steps"]) - 1)) for r in parsed]
    rel_labels = [f"{10 * i}–{10 * i + 10}%" for i in range(10)]
    rel_series = [
        (name, [sum(1 for r in rel if r["rel"] == i and keep(r)) for i in range(10)])
        for name, keep in (
            ("kept", lambda r: r["kept"]),
            ("parsed, then dropped", lambda r: not r["kept"]),
        )
    ]
    relative = bar_chart(
        "first-error-relative",
        "First-error position relative to the attempt's length",
        rel_labels,
        rel_series,
        "location / number of steps",
    )
    lengths = [dict(r, chars=len(r["content"] or "")) for r in parsed]
    labels, series = _stacked(_split(lengths, "chars"), 12)
    length = bar_chart("intervention-length", "Intervention length", labels, series, "characters")
    return f'<div class="charts">{absolute}{relative}{length}</div>'


INTERVENTION_CHART_COLUMNS = ("parse_status", "location", "n_steps", "kept", "content")


def _pass_charts(art: Artifacts) -> str:
    rates = art.get("pass_rates", ("n_samples", "n_correct"))
    grades = art.get("grades", GRADE_COLUMNS)
    selected = art.get("selected", ("selected", "n_continuations", "n_correct"))
    charts = []
    if rates:
        k = max(r["n_samples"] for r in rates)
        counts = Counter(r["n_correct"] for r in rates)
        charts.append(
            bar_chart(
                "pass-rates",
                f"Problems by correct attempts (of {k})",
                [str(i) for i in range(k + 1)],
                [("problems", [counts.get(i, 0) for i in range(k + 1)])],
                "correct attempts",
                "problems",
            )
        )
    if grades:
        status = Counter(g["status"] for g in grades)
        names = sorted(status, key=lambda s: (-status[s], s))
        charts.append(
            bar_chart(
                "grade-status",
                "Attempts by grade",
                names,
                [("attempts", [status[s] for s in names])],
                "status",
                "attempts",
            )
        )
    checked = [s for s in selected or [] if s["n_continuations"]]
    if checked:
        n = max(s["n_continuations"] for s in checked)
        counts = Counter(s["n_correct"] for s in checked)
        charts.append(
            bar_chart(
                "guided-pass",
                f"Interventions by correct guided continuations (of {n})",
                [str(i) for i in range(n + 1)],
                [("interventions", [counts.get(i, 0) for i in range(n + 1)])],
                "correct continuations",
                "interventions",
            )
        )
    if not charts:
        return _empty("grades")
    return f'<div class="charts">{"".join(charts)}</div>'


def _funnel_html(stages: list[FunnelStage]) -> str:
    chart = funnel_chart([(s.label, s.count) for s in stages])
    rows = []
    for s in stages:
        drops = "".join(f"<li>{escape(r)}: <b>{n}</b></li>" for r, n in s.drops.items())
        count = "—" if s.count is None else str(s.count)
        rows.append(
            f'<tr data-stage="{s.key}"><td>{escape(s.label)}</td><td class="num count">{count}'
            f"</td><td>{escape(s.unit)}</td><td>{f'<ul class=drops>{drops}</ul>' if drops else ''}"
            f"</td><td>{escape(s.note)}</td></tr>"
        )
    table = (
        '<table class="funnel"><tr><th>stage</th><th>count</th><th>unit</th>'
        f"<th>dropped (reason: count)</th><th>note</th></tr>{''.join(rows)}</table>"
    )
    return f'<div class="charts">{chart}</div>{table}'


def _number(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def _cell(v: object) -> str:
    if isinstance(v, Interval):  # a metric and its interval: 0.25 [0.1, 0.4]
        bounds = (
            "" if v.low is None or v.high is None else f" [{_number(v.low)}, {_number(v.high)}]"
        )
        return f'<td class="num">{_number(v.value)}{bounds}</td>'
    if v is None or isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
        return f'<td class="num">{_number(v)}</td>'
    return f"<td>{escape(str(v))}</td>"


def curve_groups(files: list[MetricsFile]) -> dict[str, list[tuple[str, list, list]]]:
    """pass@k curves of all files, one group per benchmark (the curve's last path part, or the
    file's name for a file that is one curve); series named by file; identical curves are drawn
    once, named ``a = b``."""
    groups: dict[str, list[tuple[str, list, list]]] = {}
    for mf in files:
        stem = mf.name.removesuffix(".json")
        for path, xs, ys in mf.curves:
            root = path == "pass@k"
            group = stem.rsplit("/", 1)[-1] if root else path.rsplit(".", 1)[-1]
            label = stem.rsplit("/", 1)[0] if root and "/" in stem else stem
            series = groups.setdefault(group, [])
            same = next((i for i, (_, sx, sy) in enumerate(series) if (sx, sy) == (xs, ys)), None)
            if same is None:
                series.append((label, xs, ys))
            else:  # one line, every name it stands for
                series[same] = (f"{series[same][0]} = {label}", xs, ys)
    return groups


def _metrics_html(files: list[MetricsFile]) -> str:
    if not files:
        return _empty("evaluation metrics (no JSON files in the metrics folder)")
    charts = []
    for group, series in sorted(curve_groups(files).items()):
        for i in range(0, len(series), 8):
            cid = f"passk-{group}" + (f"-{i // 8}" if i else "")
            charts.append(line_chart(cid, f"pass@k: {group}", series[i : i + 8], "k", "pass@k"))
    out = [f'<div class="charts">{"".join(charts)}</div>'] if charts else []
    for mf in files:
        out.append(f"<h3>{escape(mf.name)}</h3>")
        if mf.error:
            out.append(f'<p class="empty">{escape(mf.error)}</p>')
            continue
        head = "".join(f"<th>{escape(c)}</th>" for c in mf.columns)
        body = "".join(f"<tr>{''.join(_cell(v) for v in row)}</tr>" for row in mf.rows[:60])
        out.append(f'<div class="wide"><table class="metrics"><tr>{head}</tr>{body}</table></div>')
        if len(mf.rows) > 60:
            out.append(f'<p class="empty">… {len(mf.rows) - 60} more rows in the file.</p>')
    return "\n".join(out)


def _provenance_html(art: Artifacts) -> str:
    rows = []
    for name in ("rollouts", "proposals", "guided"):
        path = art.path("continuations" if name == "guided" else name)
        if not path.is_file():
            continue
        prov = read_metadata(path)["provenance"]
        backend = prov.get("backend") or {}
        model = backend.get("model") or backend.get("model_id") or ""
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(str(model))}</td>"
            f"<td>{escape(str(backend.get('backend', '')))}</td>"
            f"<td>{escape(str(prov.get('package_version', '')))}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Provenance</h2><table><tr><th>stage</th><th>model</th><th>backend</th>"
        f"<th>package version</th></tr>{''.join(rows)}</table>"
    )


def build_report(data_dir: Path, metrics_dir: Path | None = None) -> str:
    """The report's HTML for the artifacts in ``data_dir`` and the metrics in ``metrics_dir``."""
    art = Artifacts(data_dir)
    stages = compute_funnel(art)
    sections = [
        "<h2>Funnel</h2>",
        _funnel_html(stages),
        "<h2>First errors and interventions</h2>",
        _error_charts(art.get("interventions", INTERVENTION_CHART_COLUMNS)),
        "<h2>Pass rates</h2>",
        _pass_charts(art),
        "<h2>Evaluation metrics</h2>",
        _metrics_html(read_metrics(metrics_dir)),
        _provenance_html(art),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>InT pipeline report</title><style>{CSS}</style></head><body>"
        "<h1>Intervention Training: pipeline report</h1>"
        f'<p class="sub">Artifacts in <code>{escape(str(data_dir))}</code>'
        + (f", metrics in <code>{escape(str(metrics_dir))}</code>" if metrics_dir else "")
        + ". Counts are computed from the artifacts' rows.</p>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_report(data_dir: Path, out: Path, metrics_dir: Path | None = None) -> str:
    """Build the report and write it atomically to ``out``; return the HTML."""
    html = build_report(data_dir, metrics_dir)
    atomic_write_bytes(out, html.encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # readable like any file (the temporary file was 0600)
    return html
