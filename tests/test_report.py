"""The HTML report: self-contained, with the funnel's numbers and the charts; renders in Chromium.

The Chromium test opens the file in headless Chromium (no network, throwaway profile) and checks
the DOM it built; it is skipped where no Chromium is installed
(`apt-get install chromium` provides one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from test_cli import invoke, write_artifacts

from intervention_training.cli.metrics import Interval, read_metrics
from intervention_training.cli.report import build_report, curve_groups, int_bins
from intervention_training.cli.svg import nice_ticks

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
EXPECTED = {  # the hand-built artifacts of test_cli, stage by stage
    "problems": "4",
    "train_problems": "3",
    "attempts": "6",
    "failed": "5",
    "self_verified": "4",
    "proposals": "8",
    "generated": "6",
    "parsed": "5",
    "not_leaked": "3",
    "kept": "2",
    "guided": "1",
    "sft": "1",
}
CHARTS = {
    "funnel",
    "first-error-absolute",
    "first-error-relative",
    "intervention-length",
    "pass-rates",
    "grade-status",
    "guided-pass",
    "passk-aime",
    "passk-math",
}


def write_metrics(folder: Path) -> Path:
    """Metrics in the evaluation stage's two layouts, plus a training log."""
    (folder / "pass_at_k" / "base").mkdir(parents=True)
    bench = {"aime": {"problems": 30, "pass@1": 0.1, "pass@4": 0.3, "maj@1": 0.1}}
    bench["aime"].update({"pass@1_lo": 0.05, "pass@1_hi": 0.2})
    bench["math"] = {"problems": 50, "pass@1": 0.5, "pass@4": 0.7, "maj@1": 0.5}
    (folder / "eval_base.json").write_text(json.dumps(bench))
    curve = [{"k": 1, "pass_at_k": 0.1}, {"k": 4, "pass_at_k": 0.3}]
    (folder / "pass_at_k" / "base" / "aime.json").write_text(json.dumps(curve))
    (folder / "sft_log.json").write_text(json.dumps([{"step": 1, "loss": 2.5}]))
    return folder


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    data = write_artifacts(tmp_path / "data")
    metrics = write_metrics(tmp_path / "metrics")
    out = tmp_path / "reports" / "index.html"
    result = invoke("report", "-d", data, "-m", metrics, "-o", out)
    assert result.exit_code == 0, result.output
    return out


class Dom(HTMLParser):
    """Funnel counts by stage and the chart names of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self.charts: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self._stage: str | None = None
        self._in_count = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "tr" and a.get("data-stage"):
            self._stage = a["data-stage"]
        if tag == "td" and "count" in (a.get("class") or "").split():
            self._in_count = True
        if tag == "svg" and a.get("data-chart"):
            self.charts.append(a["data-chart"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_count = False

    def handle_data(self, data: str) -> None:
        if self._in_count and self._stage:
            self.counts[self._stage] = data.strip()


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def test_report_is_self_contained_with_funnel_and_charts(report_file):
    html = report_file.read_text(encoding="utf-8")
    dom = parse(html)
    assert dom.counts == EXPECTED
    assert set(dom.charts) == CHARTS
    assert "script" not in dom.tags and "link" not in dom.tags and "img" not in dom.tags
    assert not [v for k, v in dom.attrs if k in ("src", "href")]
    assert not re.search(r"url\(|@import", html)  # nothing fetched from CSS either
    assert "leaked: <b>1</b>" in html and "duplicate: <b>1</b>" in html
    assert "eval_base = pass_at_k/base" in html  # the same curve, drawn once
    # pass@1 and its interval in one cell; a benchmark without bounds shows the value alone
    assert '<td class="num">0.1 [0.05, 0.2]</td>' in html and "pass@1_lo" not in html
    assert '<td class="num">0.5</td>' in html
    assert build_report(report_file.parents[1] / "data", report_file.parents[1] / "metrics") == html


def test_report_without_later_stages_or_metrics(tmp_path):
    data = write_artifacts(tmp_path / "data")
    for name in ("proposals", "interventions", "continuations", "selected", "sft"):
        (data / f"{name}.parquet").unlink()
    dom = parse(build_report(data, tmp_path / "no-metrics"))
    assert dom.counts["failed"] == "5" and dom.counts["kept"] == "—"
    assert set(dom.charts) == {"funnel", "pass-rates", "grade-status"}
    assert invoke("report", "-d", tmp_path / "empty", "-o", tmp_path / "r.html").exit_code == 2


def test_metrics_shapes_are_recognised(tmp_path):
    files = {
        "keys.json": {"b": {"pass@1": 0.2, "pass@8": 0.5, "pass@1_math_verify": 0.2}},
        "intervals.json": {
            "heldout": {"coverage": 3, "coverage_hi": 4.0, "coverage_lo": 1.5, "pass@1": 0.2},
            "train": {"coverage": 1, "coverage_lo": 0.0, "coverage_hi": 2.0},
        },
        "curve_bounds.json": [
            {"k": 1, "pass_at_k": 0.3, "pass_at_k_low": 0.1, "pass_at_k_high": 0.5}
        ],
        "lists.json": {"k": [1, 2, 4], "pass@k": [0.1, 0.2, 0.3]},
        "nested.json": {"x": {"pass_at_k": {"1": 0.1, "16": 0.4}}},
        "records.json": [{"k": 1, "pass_at_k": 0.3}, {"k": 2, "pass_at_k": 0.4}],
        "plain.json": {"loss": 1.5, "note": "text"},
    }
    for name, obj in files.items():
        (tmp_path / name).write_text(json.dumps(obj))
    (tmp_path / "broken.json").write_text("{")
    got = {m.name: m for m in read_metrics(tmp_path)}
    assert got["keys.json"].curves == [("b", [1.0, 8.0], [0.2, 0.5])]
    assert got["keys.json"].columns == ["", "pass@1", "pass@8", "pass@1_math_verify"]
    assert got["lists.json"].curves == [("pass@k", [1.0, 2.0, 4.0], [0.1, 0.2, 0.3])]
    assert got["nested.json"].curves == [("x", [1.0, 16.0], [0.1, 0.4])]
    assert got["records.json"].curves == [("pass@k", [1.0, 2.0], [0.3, 0.4])]
    assert got["plain.json"].curves == [] and got["plain.json"].rows == [["loss", 1.5]]
    assert got["broken.json"].error.startswith("unreadable")
    assert got["intervals.json"].columns == ["", "coverage", "pass@1"]
    assert got["intervals.json"].rows == [
        ["heldout", Interval(3.0, 1.5, 4.0), 0.2],
        ["train", Interval(1.0, 0.0, 2.0), None],
    ]
    assert got["curve_bounds.json"].columns == ["k", "pass_at_k"]
    assert got["curve_bounds.json"].rows == [[1, Interval(0.3, 0.1, 0.5)]]
    groups = curve_groups(list(got.values()))
    assert set(groups) == {"b", "lists", "x", "records", "curve_bounds"}


def test_bins_and_ticks():
    assert int_bins([1, 2, 3]) == (["1", "2", "3"], [1, 2, 3], 1)
    labels, edges, width = int_bins([3, 250], max_bins=12)
    assert width == 50 and edges[0] == 0 and labels[-1] == "250–299"
    assert nice_ticks(7, integer=True) == [0, 2, 4, 6, 8]
    assert nice_ticks(0.7) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])


def test_dvc_report_stage_depends_on_artifacts_metrics_and_its_code():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    data_deps = [d for d in stage["deps"] if d.startswith("data/")]
    assert data_deps and all(re.fullmatch(r"data/\w+\.parquet", d) for d in data_deps)
    metric_deps = [d for d in stage["deps"] if d.startswith("metrics/")]
    evals = [f"metrics/eval_{m}.json" for m in ("base", "sft", "rl")]
    # and the tables of the locator and of the continuation sources (Table 1)
    entropy = [f"metrics/entropy_{m}.json" for m in ("base", "sft", "rl")]
    assert metric_deps == [
        *evals,
        "metrics/locate_eval.json",
        "metrics/continuation_sources.json",
        "metrics/nll.json",
        *entropy,
    ]
    code = [d for d in stage["deps"] if not d.startswith(("data/", "metrics/"))]
    assert code and all((ROOT / d).exists() for d in code)
    assert "python -m intervention_training.cli report" in stage["cmd"]


def _browser() -> str | None:
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_report_renders_in_headless_chromium(report_file, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    url = report_file.resolve().as_uri()
    proc = _chromium(browser, tmp_path / "profile", "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = parse(proc.stdout)  # the DOM Chromium built, not the file's text
    assert dom.counts == EXPECTED
    assert set(dom.charts) == CHARTS
    assert proc.stdout.count('class="bar"') >= 12 + 3  # funnel bars + histogram bars
    assert proc.stdout.count("<polyline") == 2
    shot = tmp_path / "report.png"
    proc = _chromium(
        browser, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}", url
    )
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
