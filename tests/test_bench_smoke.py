"""Smoke tests for the benchmark scripts in bench/: each core function at a tiny size."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_cpu_stages_run_every_stage_at_200_rows(tmp_path):
    cs = _load("cpu_stages")
    n = 200
    results = {}
    for stage, leak in [(s, False) for s in cs.STAGES] + [("interventions", True)]:
        results[(stage, leak)] = cs.run_stage(stage, tmp_path, n, leak=leak, completion_chars=300)
    assert all(r["seconds"] > 0 for r in results.values())
    grades = results[("grades", False)]
    assert sum(grades["status"].values()) == n
    assert 0 < grades["verified"] <= 4 * len(cs.ANSWERS)  # the grader's dedup kept it small
    off, on = results[("interventions", False)], results[("interventions", True)]
    assert on["kept"] < off["kept"]  # some synthetic proposals state the answer
    assert "leaked" in on["dropped"]
    assert results[("guided", False)]["selected"] == off["kept"]
    assert results[("sft_data", False)]["sft_rows"] == off["kept"]
    assert results[("steps", False)]["attempts_with_steps"] == n


def test_cpu_stages_child_reports_peak_memory(tmp_path):
    cs = _load("cpu_stages")
    cs.generate(tmp_path, 50, 200)
    r = cs.run_in_subprocess("steps", tmp_path, 50, False, 200, timeout=120)
    assert "error" not in r, r
    assert r["peak_mb"] >= r["import_mb"] > 0


@pytest.mark.shared_data
def test_grading_bench_at_50_pairs(shared_data):
    g = _load("grading")
    d = g.bench_distinct(50, timeout_s=5.0, workers=2, data=shared_data)
    assert d.info["pairs"] == 50
    assert d.info["agreement"] > 0.8
    assert all(row[3] > 0 for row in d.rows)
    r = g.bench_repetition(2, 16, 5.0, 2, fork_problems=1, data=shared_data)
    assert r.info["identical_verdicts"] is True
    assert r.info["distinct"] <= 8
    g.shutdown_pool()


def test_grading_variants_and_fork_baseline():
    g = _load("grading")
    forms = dict(g.variants("$\\frac{3}{4}$"))
    assert forms["a/b"] == "3/4" and forms["decimal"] == "0.75"
    assert forms["wrong: reciprocal"] == "\\frac{4}{3}"
    g.warm_fork_parent()
    assert g.fork_verify("so \\boxed{0.75}.", "\\frac{3}{4}", 10.0) is True
    assert g.fork_verify("so \\boxed{2}.", "\\frac{3}{4}", 10.0) is False


def test_generation_bench_with_the_tiny_model(tmp_path):
    gen = _load("generation")
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    r = gen.run(str(model), n_prompts=2, new_tokens=4)
    tokens = [row[1] for row in r["rows"]]
    assert 0 < tokens[0] <= 8 and len(set(tokens)) == 1  # same greedy tokens each way
    assert all(v == 2 for v in r["identical"].values())


def test_dvc_overhead_parses_stage_lines():
    dv = _load("dvc_overhead")
    out = (
        "Running stage 'grades':\n> python ...\nRunning stage 'sft_data':\nRunning stage 'grades':"
    )
    assert dv.stages_run(out) == ["grades", "sft_data"]


def test_gpu_bench_compiles_and_skips_without_a_gpu():
    for args in (["--help"], ["--quick"]):
        proc = subprocess.run(
            [sys.executable, str(BENCH / "gpu_vllm.py"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout or "GPU" in proc.stdout


def test_training_curves_bench_runs_both_sides(tmp_path, tiny_model_dir, tiny_tokenizer):
    from workspace import sft_rows

    tc = _load("training_curves")
    rows = sft_rows(tiny_tokenizer)
    for curves in (True, False):
        assert tc.one_run(tiny_model_dir, rows, 2, tmp_path / str(curves), curves) > 0
    assert (tmp_path / "True" / "live" / "plots" / "metrics" / "train" / "loss.tsv").exists()
    assert not (tmp_path / "False" / "live").exists()
