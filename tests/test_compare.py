"""`int compare`: the paper's Tables 1, 2 and 4 across real DVC experiments.

A module fixture builds a real git + DVC repository in a temporary folder: one stage whose
command writes the four metrics files in the pipeline's layout from params.yaml (numbers looked
up in a spec file the test writes), a baseline commit, three experiments run with `dvc exp run
-S ...` and one that fails in the experiment queue. `dvc exp show --json` is DVC's own output.
Every expected cell is computed here from the spec, never taken from the command's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from intervention_training.cli import compare as cmp
from intervention_training.cli.app import app
from intervention_training.cli.render import interval_text

PARAMS = {
    "proposals": {"model": None},
    "guided": {"enabled": False},
    "sft_data": {"source": "interventions", "variant": "prefix_intervention"},
    "rl": {"init": "sft"},
    "evaluation": {
        "benchmarks": [
            {"name": "heldout", "source": "heldout"},
            {"name": "train", "source": "train"},
        ]
    },
}
TRAIN_PROBLEMS = 40
HELDOUT_PROBLEMS = 20
#: Table 2's numbers by (variant, guided): coverage, its bounds, accuracy, its bounds.
SFT_TRAIN = {
    "prefix_intervention/False": (12, 8.0, 16.5, 0.0725, 0.05, 0.0975),
    "prefix_intervention/True": (15, 11.0, 19.0, 0.0912, 0.066, 0.118),
    "intervention_only/True": (9, 5.0, 13.0, 0.041, 0.025, 0.06),
}
#: Table 4's heldout pass@1 (value, low, high) of each model; sft by sft_data.source, rl by
#: rl.init.
BASE = (0.1, 0.05, 0.15)
SFT_HELDOUT = {"interventions": (0.2, 0.125, 0.275), "reference": (0.15, 0.1, 0.2)}
RL_HELDOUT = {"sft": (0.35, 0.25, 0.45), "base": (0.225, 0.15, 0.3)}
#: Table 1: per source, (coverage, low, high, continuations, correct, accuracy low, high).
SOURCES = {
    "problem_only": (2, 0.0, 4.0, 64, 2, 0.0, 0.0625),
    "prefix_resample": (3, 1.0, 5.0, 64, 4, 0.0156, 0.1094),
    "prefix_with_error": (1, 0.0, 3.0, 64, 1, 0.0, 0.0469),
    "prefix_intervention": (6, 3.0, 8.0, 64, 10, 0.0781, 0.25),
}
SOURCE_PROBLEMS = 8

SCRIPT = r"""
import json, sys
from pathlib import Path

import yaml

params = yaml.safe_load(Path("params.yaml").read_text())
spec = json.loads(Path("spec.json").read_text())
if params["rl"]["init"] == "boom":
    sys.exit("boom: no such model folder")


def bench(problems, p1, coverage=None):
    # one benchmark in the eval_metrics layout (4 samples per problem, ks 1, 2, 4)
    value, low, high = p1
    cov, cov_lo, cov_hi = coverage or (round(value * problems), 0.0, float(problems))
    return {
        "problems": problems, "samples": 4 * problems, "samples_per_problem": 4,
        "pass@1": value, "pass@1_lo": low, "pass@1_hi": high,
        "pass@2": min(1.0, 1.5 * value), "pass@4": min(1.0, 2 * value),
        "maj@1": value, "maj@2": value, "maj@4": value,
        "coverage": cov, "coverage_lo": cov_lo, "coverage_hi": cov_hi,
        "coverage_share": cov / problems,
        "accuracy": value, "accuracy_lo": low, "accuracy_hi": high,
        "no_answer_rate": 0.5, "truncation_rate": 0.25, "mean_tokens": 60.0,
        "excluded_ungradable": 0, "ungradable_reference": 0,
    }


out = Path("metrics")
out.mkdir(exist_ok=True)
heldout = spec["heldout_problems"]
names = [b["name"] for b in params["evaluation"]["benchmarks"]]
models = {
    "base": spec["base"],
    "sft": spec["sft_heldout"][params["sft_data"]["source"]],
    "rl": spec["rl_heldout"][params["rl"]["init"]],
}
for model, p1 in models.items():
    doc = {"heldout": bench(heldout, p1)}
    if model == "sft" and "train" in names:
        key = f"{params['sft_data']['variant']}/{params['guided']['enabled']}"
        cov, cov_lo, cov_hi, acc, acc_lo, acc_hi = spec["sft_train"][key]
        doc["train"] = bench(spec["train_problems"], (acc, acc_lo, acc_hi), (cov, cov_lo, cov_hi))
    (out / f"eval_{model}.json").write_text(json.dumps(doc, indent=2, sort_keys=True))

n = spec["source_problems"]
table = {}
for source, (cov, lo, hi, conts, correct, acc_lo, acc_hi) in spec["sources"].items():
    table[source] = {
        "problems": n, "coverage": cov, "coverage_lo": lo, "coverage_hi": hi,
        "coverage_share": cov / n, "continuations": conts, "correct": correct,
        "accuracy": correct / conts, "accuracy_lo": acc_lo, "accuracy_hi": acc_hi,
    }
table["stronger_proposer"] = {"skipped": "no separate proposer (proposals.model is null)"}
Path(out / "continuation_sources.json").write_text(json.dumps(table, indent=2, sort_keys=True))
"""

DVC_YAML = {
    "stages": {
        "tables": {
            "cmd": "python write_metrics.py",
            "deps": ["write_metrics.py", "spec.json"],
            "params": ["proposals", "guided", "sft_data", "rl", "evaluation"],
            "metrics": [
                {f"metrics/{name}.json": {"cache": False}}
                for name in ("eval_base", "eval_sft", "eval_rl", "continuation_sources")
            ],
        }
    }
}

#: The experiments: name -> -S overrides.
EXPERIMENTS = {
    "t2-guided": ["guided.enabled=true"],
    "refsft-rl": ["sft_data.source=reference", "rl.init=base"],
    # run last: the workspace keeps its params and metrics
    "t2-int-only": [
        "guided.enabled=true",
        "sft_data.variant=intervention_only",
        "evaluation.benchmarks=[{name:heldout,source:heldout}]",
    ],
}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return e


def sh(*cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    if cmd[0] == "dvc":
        cmd = (sys.executable, "-m", "dvc", *cmd[1:])
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def spec() -> dict:
    return {
        "train_problems": TRAIN_PROBLEMS,
        "heldout_problems": HELDOUT_PROBLEMS,
        "sft_train": SFT_TRAIN,
        "base": BASE,
        "sft_heldout": SFT_HELDOUT,
        "rl_heldout": RL_HELDOUT,
        "sources": SOURCES,
        "source_problems": SOURCE_PROBLEMS,
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository: a baseline commit and three experiments (about 12 s)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("compare") / "repo"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (root / "write_metrics.py").write_text(SCRIPT)
    (root / "spec.json").write_text(json.dumps(spec(), indent=1))
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("dvc", "repro", "-q", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "baseline", cwd=root)
    for name, overrides in EXPERIMENTS.items():
        # `dvc exp run -S` leaves its params in the workspace: start each from the baseline's
        sh("git", "checkout", "-q", "--", "params.yaml", cwd=root)
        sets = [arg for o in overrides for arg in ("-S", o)]
        sh("dvc", "exp", "run", "-q", "-n", name, *sets, cwd=root)
    shown = sh("dvc", "exp", "show", "--json", cwd=root).stdout
    (root.parent / "exp_show.json").write_text(shown)
    return root


@pytest.fixture(scope="module")
def shown(repo) -> Path:
    return repo.parent / "exp_show.json"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


# --- what the tables should hold, computed from the spec ----------------------------------------


def pct(value, low=None, high=None) -> str:
    """A rate and its bounds in percent, two decimals (the tables' format, written out)."""
    text = f"{100 * value:.2f}"
    return text if low is None else f"{text} [{100 * low:.2f}, {100 * high:.2f}]"


def count(value, low=None, high=None) -> str:
    def g(x):
        return f"{x:.0f}" if x == int(x) else f"{x:.1f}"

    return g(value) if low is None else f"{g(value)} [{g(low)}, {g(high)}]"


#: Each compared revision's params (the workspace holds the last experiment run).
ROWS = {
    "workspace": EXPERIMENTS["t2-int-only"],
    "main": [],
    # DVC lists a baseline's experiments newest first
    "t2-int-only": EXPERIMENTS["t2-int-only"],
    "refsft-rl": EXPERIMENTS["refsft-rl"],
    "t2-guided": EXPERIMENTS["t2-guided"],
}


def params_of(name: str) -> dict:
    p = {
        "guided.enabled": False,
        "sft_data.variant": "prefix_intervention",
        "sft_data.source": "interventions",
        "rl.init": "sft",
        "train": True,
    }
    for o in ROWS[name]:
        key, value = o.split("=", 1)
        if key == "evaluation.benchmarks":
            p["train"] = False
        else:
            p[key] = {"true": True}.get(value, value)
    return p


def changed(name: str, without: tuple[str, ...] = ()) -> str:
    """The params column: params.yaml keys that differ between the compared revisions."""
    p = params_of(name)
    benches = [{"name": "heldout", "source": "heldout"}]
    if p["train"]:
        benches.append({"name": "train", "source": "train"})
    values = {
        "evaluation.benchmarks": json.dumps(benches, sort_keys=True),
        "guided.enabled": "true" if p["guided.enabled"] else "false",
        "rl.init": p["rl.init"],
        "sft_data.source": p["sft_data.source"],
        "sft_data.variant": p["sft_data.variant"],
    }
    return ", ".join(f"{k}={v}" for k, v in values.items() if k not in without)


def expected_table_1() -> list[list[str]]:
    base_cov, base_acc = SOURCES["problem_only"][0], 2 / 64
    rows = []
    for name in ROWS:
        for source, (cov, lo, hi, conts, correct, acc_lo, acc_hi) in SOURCES.items():
            n = SOURCE_PROBLEMS
            rows.append(
                [
                    name,
                    changed(name),
                    source,
                    str(n),
                    count(cov, lo, hi),
                    pct(cov / n, lo / n, hi / n),
                    pct(correct / conts, acc_lo, acc_hi),
                    f"{cov / base_cov:.2f}x",
                    f"{(correct / conts) / base_acc:.2f}x",
                ]
            )
    return rows


def expected_table_2() -> list[list[str]]:
    rows = []
    for name in ROWS:
        p = params_of(name)
        others = changed(name, without=("sft_data.variant", "guided.enabled"))
        if p["train"]:
            key = f"{p['sft_data.variant']}/{p['guided.enabled']}"
            cov, lo, hi, acc, acc_lo, acc_hi = SFT_TRAIN[key]
            n = TRAIN_PROBLEMS
            cells = ["train", str(n), count(cov, lo, hi), pct(cov / n, lo / n, hi / n)]
            cells.append(pct(acc, acc_lo, acc_hi))
        else:  # no train benchmark: the heldout one instead
            value, low, high = SFT_HELDOUT[p["sft_data.source"]]
            n = HELDOUT_PROBLEMS
            cov = round(value * n)
            cells = ["heldout", str(n), count(cov, 0.0, n), pct(cov / n, 0.0, 1.0)]
            cells.append(pct(value, low, high))
        variant = p["sft_data.variant"]
        guided = "true" if p["guided.enabled"] else "false"
        rows.append([name, variant, guided, others, *cells])
    return rows


def expected_table_4() -> list[list[str]]:
    """A column per benchmark: heldout, and train (eval_sft.json only, where configured)."""
    rows = []
    for name in ROWS:
        p = params_of(name)
        key = f"{p['sft_data.variant']}/{p['guided.enabled']}"
        train = pct(*SFT_TRAIN[key][3:]) if p["train"] else "—"
        for model, p1 in (
            ("base", BASE),
            ("sft", SFT_HELDOUT[p["sft_data.source"]]),
            ("rl", RL_HELDOUT[p["rl.init"]]),
        ):
            rows.append([name, changed(name), model, pct(*p1), train if model == "sft" else "—"])
    return rows


def markdown_rows(text: str) -> list[list[str]]:
    """The body rows of every Markdown table in ``text``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return [r for r in rows if r[0] != "experiment"]


# --- the real repository ----------------------------------------------------------------------


def test_dvc_exp_show_shape_is_what_compare_reads(shown):
    """DVC 3's own output: the workspace and the baseline at the top level, experiments in
    groups under the baseline (newest first), each group one revision."""
    doc = json.loads(shown.read_text())
    assert [e["rev"] for e in doc][0] == "workspace" and doc[1]["name"] == "main"
    groups = {g["name"]: g for g in doc[1]["experiments"]}
    assert list(groups) == list(reversed(EXPERIMENTS))
    sft = groups["t2-guided"]["revs"][0]["data"]["metrics"]["metrics/eval_sft.json"]["data"]
    assert sft["train"]["coverage"] == SFT_TRAIN["prefix_intervention/True"][0]
    exps = cmp.parse_exp_show(doc)
    assert [e.name for e in exps] == list(ROWS) and all(e.compared for e in exps)


@pytest.mark.slow
def test_a_failed_experiment_is_not_compared(repo, tmp_path):
    """A failed queued experiment carries an error and the metrics of the commit it started
    from (not its own): it is listed as not compared and enters no table. (Slow: DVC's queue
    starts a worker, about 15 s.)"""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    sh("dvc", "exp", "run", "--queue", "-q", "-n", "broken", "-S", "rl.init=boom", cwd=copy)
    sh("dvc", "exp", "run", "--run-all", "-q", cwd=copy)  # runs the queue and waits for it
    doc = json.loads(sh("dvc", "exp", "show", "--json", cwd=copy).stdout)
    broken = next(g for g in doc[1]["experiments"] if g["name"] == "broken")
    assert broken["executor"]["state"] == "failed" and broken["revs"][0]["error"]["msg"]
    assert broken["revs"][0]["data"]["metrics"]  # stale: the baseline's
    result = invoke("compare", "--repo", copy, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["not_compared"] == [
        {"experiment": "broken", "reason": f"failed: {broken['revs'][0]['error']['msg']}"}
    ]
    assert all(r["experiment"] != "broken" for t in out["tables"] for r in t["rows"])


def test_every_row_of_the_three_tables_from_the_repository(repo):
    """`int compare --markdown` runs `dvc exp show --json` in the repository itself."""
    result = invoke("compare", "--repo", repo, "--markdown")
    assert result.exit_code == 0, result.output
    rows = markdown_rows(result.output)
    expected = expected_table_1() + expected_table_2() + expected_table_4()
    assert rows == expected
    # t2-int-only's eval_sft.json has no train benchmark: it falls back, and says so
    assert "t2-int-only: eval_sft.json has no 'train' benchmark; showing heldout" in result.output
    assert "not measured (no separate proposer" in result.output


@pytest.mark.parametrize("number", ["1", "2", "4"])
def test_one_table_as_a_rich_table(shown, number):
    result = invoke("compare", "--input", shown, "--table", number)
    assert result.exit_code == 0, result.output
    expected = {"1": expected_table_1, "2": expected_table_2, "4": expected_table_4}[number]()
    body = [
        [c.strip() for c in ln.strip("│").split("│")]
        for ln in result.output.splitlines()
        if ln.startswith("│")
    ]
    assert body == expected
    assert cmp.TITLES[number] in result.output
    assert all(t not in result.output for n, t in cmp.TITLES.items() if n != number)


def test_json_rows_carry_the_numbers(shown):
    result = invoke("compare", "--input", shown, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [t["table"] for t in doc["tables"]] == [1, 2, 4, "diagnostics"]
    assert doc["not_compared"] == []
    t1, t2, t4, diag = (t["rows"] for t in doc["tables"])
    assert diag == []  # the fixture writes no nll.json / entropy_*.json
    assert len(t1) == len(ROWS) * len(SOURCES) and len(t4) == len(ROWS) * 3
    intervention = next(
        r for r in t1 if r["experiment"] == "main" and r["source"] == "prefix_intervention"
    )
    cov, lo, hi, conts, correct, *_ = SOURCES["prefix_intervention"]
    assert intervention["coverage"] == cov and intervention["coverage_ratio"] == pytest.approx(3.0)
    assert intervention["coverage_share_lo"] == pytest.approx(lo / SOURCE_PROBLEMS)
    assert intervention["accuracy_ratio"] == pytest.approx((correct / conts) / (2 / 64))
    guided = next(r for r in t2 if r["experiment"] == "t2-guided")
    assert guided["sft_data.variant"] == "prefix_intervention" and guided["guided.enabled"] is True
    assert guided["benchmark"] == "train"
    assert guided["accuracy"] == SFT_TRAIN["prefix_intervention/True"][3]
    refsft = [r for r in t4 if r["experiment"] == "refsft-rl"]
    assert [r["model"] for r in refsft] == ["base", "sft", "rl"]
    assert refsft[2]["params"]["rl.init"] == "base"
    assert refsft[2]["benchmarks"]["heldout"]["pass@1_lo"] == RL_HELDOUT["base"][1]


def test_the_fixture_writes_the_eval_metrics_layout(repo):
    """The fixture's benchmark keys are exactly those the eval_metrics stage writes."""
    from intervention_training.evaluation.metrics import evaluation_metrics

    rows = [
        {
            "benchmark": "b",
            "problem_id": f"p{i}",
            "sample_id": j,
            "correct": j == 0,
            "answer_group": 0,
            "status": "correct" if j == 0 else "incorrect",
            "n_tokens": 5,
            "judge_verdict": None,
        }
        for i in range(3)
        for j in range(4)
    ]
    metrics, _ = evaluation_metrics(rows, {}, [1, 2, 4], resamples=20)
    written = json.loads((repo / "metrics" / "eval_sft.json").read_text())
    assert set(written["heldout"]) == set(metrics["b"])


def test_not_a_dvc_repository_or_no_dvc(tmp_path, monkeypatch):
    result = invoke("compare", "--repo", tmp_path)
    assert result.exit_code == 2
    assert "not inside of a DVC repository" in result.output
    monkeypatch.setattr(cmp, "dvc_command", lambda: None)
    result = invoke("compare", "--repo", tmp_path)
    assert result.exit_code == 2 and "dvc is not installed" in result.output
    (tmp_path / "x.json").write_text("{")
    assert invoke("compare", "--input", tmp_path / "x.json").exit_code == 2
    (tmp_path / "x.json").write_text('{"rev": "workspace"}')
    result = invoke("compare", "--input", tmp_path / "x.json")
    assert result.exit_code == 2 and "dvc exp show --json" in result.output
    assert invoke("compare", "--input", tmp_path / "absent.json").exit_code == 2


# --- the arithmetic, without DVC --------------------------------------------------------------


def entry(name: str, metrics: dict, params: dict | None = None, **extra) -> dict:
    """One revision as `dvc exp show --json` writes it."""
    return {
        "rev": extra.pop("rev", name),
        "name": name,
        "data": {
            "rev": name,
            "params": {"params.yaml": {"data": params or {}}},
            "metrics": {f"metrics/{k}": v for k, v in metrics.items()},
        },
        "error": None,
        "experiments": extra.pop("experiments", None),
    }


def test_ratio_share_and_interval_arithmetic():
    assert cmp.ratio(6, 2) == 3.0 and cmp.ratio(0.3, 0.1) == pytest.approx(3.0)
    assert cmp.ratio(3, 0) is None and cmp.ratio(None, 2) is None and cmp.ratio(2, None) is None
    m = {"problems": 8, "coverage": 2, "coverage_lo": 1.0, "coverage_hi": 4.0}
    assert cmp.share_interval(m) == (0.25, 0.125, 0.5)  # no coverage_share: coverage / problems
    assert cmp.share_interval({"problems": 0, "coverage": 0}) == (None, None, None)
    new = {"pass@1": 0.2, "pass@1_lo": 0.1, "pass@1_hi": 0.3}
    old = {"pass@1": 0.2, "ci": {"pass@1": {"low": 0.1, "high": 0.3}}}  # before issue 15
    assert cmp.rate_interval(new, "pass@1") == cmp.rate_interval(old, "pass@1") == (0.2, 0.1, 0.3)
    assert cmp.rate_interval(new, "accuracy") == (0.2, 0.1, 0.3)  # accuracy is pass@1
    assert cmp.rate_interval({}, "accuracy") == (None, None, None)
    assert cmp.pct_text((0.0771, 0.069, 0.0855)) == "7.71 [6.90, 8.55]"
    assert cmp.pct_text((0.5,)) == "50.00" and cmp.pct_text((None, 0.1, 0.2)) == "—"
    assert cmp.count_text(202, 190.5, 214) == "202 [190.5, 214]" and cmp.count_text(None) == "—"
    assert cmp.ratio_text(None) == "—" and cmp.ratio_text(2) == "2.00x"
    assert (
        interval_text(0.25, 0.1, None) == "0.25" and interval_text(1, 0, 2, digits=0) == "1 [0, 2]"
    )


def test_missing_metrics_leave_an_experiment_out_of_that_table_only():
    sources = {"problem_only": {"problems": 4, "coverage": 0, "accuracy": 0.0}}
    sources["prefix_intervention"] = {"problems": 4, "coverage": 2, "accuracy": 0.25}
    sft = {"data": {"heldout": {"problems": 5, "pass@1": 0.4}}}
    doc = [
        entry(
            "workspace",
            {
                "eval_sft.json": sft,
                "continuation_sources.json": {"data": sources},
                "eval_rl.json": {"error": {"type": "JSONFileCorruptedError", "msg": "corrupted"}},
            },
            rev="workspace",
        ),
        entry(
            "main",
            {"eval_base.json": {"error": {"type": "FileNotFoundError", "msg": "missing"}}},
            experiments=[
                {
                    "name": "queued-one",
                    "executor": {"state": "queued"},
                    "revs": [{"rev": "abc1234", "name": "queued-one", "data": {}, "error": None}],
                },
                {"name": "odd", "executor": None, "revs": ["not a revision"]},
            ],
        ),
    ]
    tables, skipped = cmp.build_tables(doc)
    assert skipped == [{"experiment": "queued-one", "reason": "queued"}]
    t1, t2, t4, diag = tables
    assert diag.rows == [] and {r["experiment"] for r in diag.left_out} == {"workspace", "main"}
    # problem_only covers nothing: no ratio to it
    assert [(r["source"], r["coverage_ratio"]) for r in t1.rows] == [
        ("problem_only", None),
        ("prefix_intervention", None),
    ]
    assert t1.left_out == [{"experiment": "main", "reason": "no continuation_sources.json"}]
    assert [r["benchmark"] for r in t2.rows] == ["heldout"] and t2.left_out[0][
        "experiment"
    ] == "main"
    assert [(r["experiment"], r["model"]) for r in t4.rows] == [("workspace", "sft")]
    assert "workspace: no eval_base.json; eval_rl.json unreadable: corrupted" in t4.notes
    # DVC reports an absent file as a FileNotFoundError: simply no file
    assert t4.left_out[0]["reason"] == "no eval_base.json; no eval_sft.json; no eval_rl.json"
    md = cmp.markdown(tables, skipped)
    assert "left out: main (no continuation_sources.json)" in md


def test_nothing_to_compare_exits_1(tmp_path):
    (tmp_path / "empty.json").write_text("[]")
    result = invoke("compare", "--input", tmp_path / "empty.json", "--table", "2")
    assert result.exit_code == 1 and "no experiment has this table's metrics" in result.output


def test_changed_params_and_source_order():
    from intervention_training.continuation_sources import SOURCES as STAGE_SOURCES

    assert cmp.SOURCES == STAGE_SOURCES
    a = cmp.Experiment("a", "a", params={"x": 1, "y": [1, 2], "z": True})
    b = cmp.Experiment("b", "b", params={"x": 1, "y": [1, 3]})
    assert cmp.changed_params([a, b]) == ["y", "z"]
    assert cmp.params_text(a, ["y", "z"]) == "y=[1, 2], z=true"
    ordered = cmp._ordered_sources({"zeta": {}, "prefix_intervention": {}, "problem_only": {}})
    assert ordered == ["problem_only", "prefix_intervention", "zeta"]


def test_diagnostics_rows_from_nll_and_entropy_files(tmp_path):
    from intervention_training.diagnostics.nll import SOURCES as NLL_SOURCES

    assert cmp.NLL_SOURCES == NLL_SOURCES
    nll = {
        "reference": {"rows": 6, "tokens": 1724, "nll_per_token": 1.5,
                      "nll_per_token_lo": 1.37, "nll_per_token_hi": 1.61},
        "prefix_intervention": {"rows": 24, "tokens": 276, "nll_per_token": 4.24,
                                "nll_per_token_lo": 3.34, "nll_per_token_hi": 5.49},
        "prefix_intervention_suffix": {"skipped": "guided.enabled is false"},
    }  # fmt: skip
    entropy = {"heldout": {"samples": 8, "tokens": 512, "entropy_per_token": 0.643,
                           "entropy_per_token_lo": 0.26, "entropy_per_token_hi": 1.02}}  # fmt: skip
    doc = [
        entry(
            "workspace",
            {"nll.json": {"data": nll}, "entropy_sft.json": {"data": entropy}},
            rev="workspace",
        )
    ]
    (table,), _ = cmp.build_tables(doc, ["diagnostics"])
    # the paper's order (InT first), skipped sources noted, entropy after the NLL rows
    assert [(r["measure"], r.get("source") or r.get("model")) for r in table.rows] == [
        ("nll", "prefix_intervention"),
        ("nll", "reference"),
        ("entropy", "sft"),
    ]
    assert table.cells[1][3:] == ["reference", "1.500 [1.370, 1.610]", "1724"]
    assert table.cells[2][2:5] == ["entropy of sft", "heldout", "0.643 [0.260, 1.020]"]
    assert any("prefix_intervention_suffix skipped" in n for n in table.notes)
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(doc))
    result = invoke("compare", "--input", saved, "--table", "diagnostics", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["tables"][0]["rows"]
    assert rows[0]["nll_per_token"] == 4.24 and rows[2]["entropy_per_token_hi"] == 1.02


def test_only_the_named_experiments_and_their_changed_params(tmp_path):
    sft = {"data": {"heldout": {"problems": 5, "pass@1": 0.4}}}
    doc = [
        entry("workspace", {"eval_sft.json": sft}, {"rl": {"init": "sft"}}, rev="workspace"),
        entry(
            "main",
            {"eval_sft.json": sft},
            {"rl": {"init": "sft"}, "seed": 1},
            experiments=[
                {
                    "name": "a",
                    "executor": None,
                    "revs": [entry("a", {"eval_sft.json": sft}, {"rl": {"init": "base"}})],
                }
            ],
        ),
    ]
    (t4,), skipped = cmp.build_tables(doc, ["4"], only=["a", "workspace", "gone"])
    assert [r["experiment"] for r in t4.rows] == ["workspace", "a"]
    # rl.init differs between the two kept; `seed` (only in main, left out) is not a column
    assert [r["params"] for r in t4.rows] == [{"rl.init": "sft"}, {"rl.init": "base"}]
    assert skipped == [{"experiment": "gone", "reason": "not found in dvc exp show"}]
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(doc))
    result = invoke("compare", "--input", saved, "--table", "4", "--json", "--exp", "a")
    assert result.exit_code == 0, result.output
    assert [r["experiment"] for r in json.loads(result.output)["tables"][0]["rows"]] == ["a"]
