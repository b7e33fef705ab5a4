"""Small inline-SVG charts for the HTML report: stacked bars, lines, and the funnel.

No JavaScript and no external files: each function returns an ``<svg>`` element as a string,
with ``data-chart`` naming the chart (tests look charts up by it) and ``<title>`` tooltips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f")
W, H = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 46, 52


def nice_ticks(top: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values from 0 to at least ``top``; whole numbers only when ``integer``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / n, 1.0) if integer else top / n
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


def _frame(chart_id: str, title: str, xlabel: str, ylabel: str, ticks: list[float]) -> list[str]:
    ph, top = H - TOP - BOTTOM, ticks[-1]
    parts = [
        f'<svg class="chart" data-chart="{escape(chart_id)}" viewBox="0 0 {W} {H}" '
        f'width="{W}" height="{H}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{W / 2}" y="18" text-anchor="middle" class="ct">{escape(title)}</text>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" class="al">{escape(xlabel)}</text>',
        f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" class="al" '
        f'transform="rotate(-90 14 {TOP + ph / 2})">{escape(ylabel)}</text>',
    ]
    for t in ticks:
        y = TOP + ph - ph * t / top
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tk">{_fmt(t)}</text>'
        )
    return parts


def _legend(names: Sequence[str], always: bool = False) -> list[str]:
    if len(names) < 2 and not always:
        return []
    out, x = [], LEFT + 8
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{TOP - 20}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="{TOP - 11}" class="tk">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    xlabel: str = "",
    ylabel: str = "count",
) -> str:
    """Stacked bars: one bar per label, one colour per series."""
    totals = [sum(vals[i] for _, vals in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0), integer=True)
    parts = _frame(chart_id, title, xlabel, ylabel, ticks)
    pw, ph, top = W - LEFT - RIGHT, H - TOP - BOTTOM, ticks[-1]
    slot = pw / max(1, len(labels))
    every = max(1, math.ceil(len(labels) / 16))
    for i, label in enumerate(labels):
        x, base = LEFT + i * slot + slot * 0.1, 0.0
        for s, (name, vals) in enumerate(series):
            v = vals[i]
            if v:
                h = ph * v / top
                y = TOP + ph - ph * base / top - h
                parts.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
                    f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                    f"<title>{escape(label)}: {_fmt(v)} {escape(name)}</title></rect>"
                )
            base += v
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{TOP + ph + 16}" text-anchor="middle" '
                f'class="tk">{escape(label)}</text>'
            )
    parts += _legend([name for name, _ in series])
    return "\n".join([*parts, "</svg>"])


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    xlabel: str = "k",
    ylabel: str = "",
) -> str:
    """Lines with points; the x axis is log2 when every x is positive and they span 8x or more."""
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy]
    log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 8
    fx = (lambda v: math.log2(v)) if log else (lambda v: float(v))
    lo, hi = (fx(min(xs)), fx(max(xs))) if xs else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    ticks = nice_ticks(max(max(ys, default=0), 1.0 if max(ys, default=0) <= 1 else 0))
    parts = _frame(chart_id, title, xlabel + (" (log scale)" if log else ""), ylabel, ticks)
    pw, ph, top = W - LEFT - RIGHT, H - TOP - BOTTOM, ticks[-1]

    def pos(x: float, y: float) -> tuple[float, float]:
        return LEFT + pw * (fx(x) - lo) / (hi - lo), TOP + ph - ph * y / top

    for x in sorted(set(xs)):
        px, _ = pos(x, 0)
        parts.append(
            f'<text x="{px:.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tk">'
            f"{_fmt(x)}</text>"
        )
    for s, (name, sx, sy) in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        pts = sorted(zip(sx, sy, strict=True))
        path = " ".join("{:.1f},{:.1f}".format(*pos(x, y)) for x, y in pts)
        parts.append(f'<polyline class="line" points="{path}" fill="none" stroke="{color}"/>')
        for x, y in pts:
            px, py = pos(x, y)
            parts.append(
                f'<circle class="pt" cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)}: k={_fmt(x)} → {y:.4g}</title></circle>"
            )
    parts += _legend([name for name, _, _ in series], always=True)
    return "\n".join([*parts, "</svg>"])


def funnel_chart(rows: Sequence[tuple[str, int | None]]) -> str:
    """Horizontal bars, one per funnel stage, scaled to the largest count."""
    height = 26 * len(rows) + 12
    top = max((c or 0 for _, c in rows), default=0) or 1
    parts = [
        f'<svg class="chart" data-chart="funnel" viewBox="0 0 {W} {height}" width="{W}" '
        f'height="{height}" role="img" aria-label="funnel" xmlns="http://www.w3.org/2000/svg">'
    ]
    x0, pw = 190, W - 190 - 70
    for i, (label, count) in enumerate(rows):
        y = 6 + 26 * i
        parts.append(
            f'<text x="{x0 - 8}" y="{y + 15}" text-anchor="end" class="tk">{escape(label)}</text>'
        )
        if count is None:
            parts.append(f'<text x="{x0}" y="{y + 15}" class="tk missing">not produced</text>')
            continue
        w = max(1.0, pw * count / top) if count else 0
        parts.append(
            f'<rect class="bar" x="{x0}" y="{y}" width="{w:.1f}" height="20" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {count}</title></rect>"
        )
        parts.append(f'<text x="{x0 + w + 6:.1f}" y="{y + 15}" class="tk">{count}</text>')
    return "\n".join([*parts, "</svg>"])
