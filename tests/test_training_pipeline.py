"""The whole pipeline, through training, evaluation and the report, with the tiny random model.

Runs a plain `dvc repro` in a temporary copy of the repository (`sft` and `rl` through
`accelerate launch`), then checks the model folders, the training logs, the evaluation metrics
of base, sft and rl side by side in `dvc metrics show`, `dvc plots show`, the report, and that a
second `dvc repro` reruns nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from workspace import make_workspace, run, stages_run

from intervention_training.artifacts import read_artifact
from intervention_training.models import resolve_model
from intervention_training.training.callbacks import read_curves

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    def tweak(params: dict) -> None:
        params["rollouts"]["sampling"]["max_new_tokens"] = 32
        params["proposals"].update(
            per_attempt=1, reference_turn_max_new_tokens=16, verification_max_new_tokens=16
        )
        params["guided"]["enabled"] = False
        params["sft"]["trainer"].update(max_steps=2, save_steps=1)
        params["rl"]["trainer"].update(max_steps=2, max_completion_length=16, num_generations=2)
        params["evaluation"].update(samples_per_problem=2, ks=[1, 2])
        params["evaluation"]["sampling"]["max_new_tokens"] = 16

    ws = make_workspace(tmp_path_factory.mktemp("training") / "ws", tweak)
    out = run([sys.executable, "-m", "dvc", "repro"], ws)
    return ws, out


def test_stages_ran_through_the_launcher(trained):
    ws, out = trained
    assert {"sft", "rl"} <= stages_run(out), out
    assert "python stages/launch.py configs/accelerate/cpu.yaml stages/sft.py" in out
    assert "python stages/launch.py configs/accelerate/cpu.yaml stages/rl.py" in out


def test_models_metrics_and_logs(trained):
    ws, _ = trained
    n_rows = len(read_artifact(ws / "data/sft.parquet", "sft"))
    sft = json.loads((ws / "metrics/sft.json").read_text())
    assert sft["trained"] is (n_rows > 0)
    for name in ("sft", "rl"):
        folder = ws / "data/models" / name
        assert resolve_model(folder) == (str(folder), None)
        assert (folder / "tokenizer_config.json").exists()
    if sft["trained"]:
        assert sft["global_step"] == 2
        assert [r["step"] for r in read_curves(ws / "metrics/sft_live")] == [1, 2]
    rl = json.loads((ws / "metrics/rl.json").read_text())
    assert rl["trained"] and rl["global_step"] == 2
    log = read_curves(ws / "metrics/rl_live")
    assert [r["step"] for r in log] == [1, 2]
    for row in log:
        assert {
            "mean_reward",
            "frac_zero_advantage",
            "completion_length",
            "truncation_rate",
        } <= set(row)
    assert not any((ws / ".cache/checkpoints").glob("*/*/checkpoint-*"))


def test_dvc_sees_metrics_and_plots_and_second_repro_is_a_no_op(trained):
    ws, _ = trained
    text = run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], ws)
    # stderr follows the JSON when other stages' metrics files do not exist yet
    shown, _ = json.JSONDecoder().raw_decode(text)
    data = {f: v for entry in shown.values() for f, v in entry.get("data", {}).items()}
    assert {"metrics/sft.json", "metrics/rl.json"} <= set(data)
    for model in ("base", "sft", "rl"):
        metrics = data[f"metrics/eval_{model}.json"]["data"]
        assert json.dumps(metrics).count("pass@1") >= 1, metrics
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(ws / "plots")], ws)
    # DVCLive's curves are DVC plots: loss, reward and the zero-advantage fraction per step
    plots = run([sys.executable, "-m", "dvc", "plots", "show", "--json"], ws)
    sft_trained = data["metrics/sft.json"]["data"]["trained"]
    assert ("metrics/sft_live/plots/metrics/train/loss.tsv" in plots) is sft_trained
    for curve in ("mean_reward", "frac_zero_advantage"):
        assert f"metrics/rl_live/plots/metrics/train/{curve}.tsv" in plots
    assert (ws / "plots" / "index.html").exists()
    report = (ws / "reports/index.html").read_text()
    assert "<svg" in report and "pass@" in report
    out = run([sys.executable, "-m", "dvc", "repro"], ws)
    assert stages_run(out) == set(), out


def test_every_artifact_of_the_run_reads_and_shows_from_a_new_process(trained):
    ws, _ = trained
    files = sorted((ws / "data").rglob("*.parquet"))
    assert {f.relative_to(ws / "data").as_posix() for f in files} >= {
        "benchmarks.parquet",
        "problems.parquet",
        "sft.parquet",
        "eval/base.parquet",
        "eval/rl.parquet",
    }
    for path in files:
        proc = subprocess.run(
            [sys.executable, "-m", "intervention_training.cli", "show", str(path), "-n", "1"],
            cwd=ws,
            capture_output=True,
            text=True,
        )
        # exit 1 means "no row to show", which is right only for an empty artifact
        empty = pq.ParquetFile(path).metadata.num_rows == 0
        assert proc.returncode == (1 if empty else 0), (path, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
