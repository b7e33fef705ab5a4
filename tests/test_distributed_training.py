"""Several training processes for real: the sft stage as 2 CPU processes on one machine
(stages/launch.py with configs/accelerate/cpu_2proc.yaml: torchrun, gloo) against the same global
batch in one process; and a run whose process count is not the one asked for, refused. Across
nodes: tests/test_multinode_training.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from workspace import sft_rows

from intervention_training.artifacts import write_artifact
from intervention_training.config import ConfigError
from intervention_training.training.common import check_world_size

ROOT = Path(__file__).resolve().parents[1]


def test_a_multi_process_config_run_as_one_process_is_an_error(tmp_path):
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump({"distributed_type": "MULTI_CPU", "num_processes": 2}))
    with pytest.raises(ConfigError, match="num_processes is 2 but this run has 1 process"):
        check_world_size(two)
    assert check_world_size(ROOT / "configs/accelerate/cpu.yaml") == 1
    assert check_world_size(None) == 1


def test_the_launchers_expected_world_size_is_checked_against_the_run(tmp_path, monkeypatch):
    # stages/launch.py exports nodes x processes per node; it wins over the file's count.
    config = ROOT / "configs/accelerate/cpu_2node.yaml"
    monkeypatch.setenv("INT_EXPECTED_WORLD_SIZE", "4")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert check_world_size(config) == 4
    monkeypatch.setenv("WORLD_SIZE", "3")  # a node short
    with pytest.raises(ConfigError, match="asked for 4 processes .* but this run has 3"):
        check_world_size(config)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match="asked for 4 processes .* but this run has 1 process"):
        check_world_size(None)
    monkeypatch.delenv("INT_EXPECTED_WORLD_SIZE")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="num_processes is 2 but this run has 3 processes"):
        check_world_size(config)


def test_global_batch_size_sets_the_accumulation_from_the_process_count(monkeypatch):
    from trl import GRPOConfig, SFTConfig

    from intervention_training.config import RlParams, SftParams
    from intervention_training.training import common

    for world, steps in ((1, 64), (8, 8), (32, 2), (64, 1)):
        assert common.accumulation_steps(64, 1, world, "sft") == steps
    with pytest.raises(ConfigError, match="sft.global_batch_size 64 is not a multiple of .* 48"):
        common.accumulation_steps(64, 1, 48, "sft")  # 6 nodes x 8 GPUs
    # The stage's config: the launcher's process count (WORLD_SIZE) decides; with it set for
    # real, TrainingArguments would join a process group, so the count is patched in.
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    sft = SftParams(global_batch_size=64, trainer={"per_device_train_batch_size": 1})
    args = common.build_trainer_config(SFTConfig, sft, "sft", output_dir="out", use_cpu=True)
    assert (args.gradient_accumulation_steps, common.global_batch(args, 1)) == (64, 64)
    monkeypatch.setattr(common, "launched_world_size", lambda: 16)
    rl = RlParams(
        global_batch_size=256,
        trainer={"per_device_train_batch_size": 8, "num_generations": 8, "use_cpu": True},
    )
    args = common.build_trainer_config(GRPOConfig, rl, "rl", output_dir="out")
    assert (args.gradient_accumulation_steps, common.global_batch(args, 16)) == (2, 256)
    with pytest.raises(ValueError, match="give one of them, not both"):
        SftParams(global_batch_size=64, trainer={"gradient_accumulation_steps": 8})
    plain = SftParams(trainer={"gradient_accumulation_steps": 3, "use_cpu": True})
    args = common.build_trainer_config(SFTConfig, plain, "sft", output_dir="out")
    assert args.gradient_accumulation_steps == 3  # without global_batch_size: as written


def test_the_stage_run_without_its_launcher_stops_before_training(tmp_path):
    # The real stage script, as if a 2-process launch had started one process: exit 2, a clear
    # line, no output written.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INT_"))}
    env.pop("WORLD_SIZE", None)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"sft": {}}))
    cmd = [
        sys.executable, str(ROOT / "stages/sft.py"), "--sft-data", "none.parquet",
        "--model", "none", "--out", "out", "--metrics", "m.json", "--live", "live",
        "--checkpoints", "ckpt", "--params", "params.yaml",
        "--accelerate-config", str(ROOT / "configs/accelerate/cpu_2proc.yaml"),
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        cwd=tmp_path,
        env={**env, "INT_EXPECTED_WORLD_SIZE": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "[sft] error: stages/launch.py asked for 2 processes" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def _run_sft(ws: Path, model: Path, name: str, per_device: int, processes: int) -> dict:
    params = {
        "sft": {
            "trainer": {
                "use_cpu": True,
                "report_to": "none",
                "gradient_checkpointing": False,
                "logging_steps": 1,
                "save_strategy": "no",
                "seed": 0,
                "learning_rate": 1e-2,
                "max_steps": 2,
                "per_device_train_batch_size": per_device,
                "dataloader_num_workers": 0,
                "max_length": 256,
            }
        }
    }
    (ws / f"{name}.yaml").write_text(yaml.safe_dump(params))
    stage = [
        str(ROOT / "stages/sft.py"),
        "--sft-data", str(ws / "sft.parquet"), "--model", str(model),
        "--out", str(ws / name / "model"), "--metrics", str(ws / name / "metrics.json"),
        "--live", str(ws / name / "live"), "--checkpoints", str(ws / name / "ckpt"),
        "--params", str(ws / f"{name}.yaml"),
    ]  # fmt: skip
    config = ROOT / "configs/accelerate" / ("cpu.yaml" if processes == 1 else "cpu_2proc.yaml")
    assert processes in (1, 2)
    cmd = [sys.executable, str(ROOT / "stages/launch.py"), str(config), *stage]
    cmd += ["--accelerate-config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INT_"))}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((ws / name / "metrics.json").read_text())


@pytest.mark.slow
def test_two_cpu_processes_train_as_one_with_the_same_global_batch(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    write_artifact(sft_rows(tokenizer), tmp_path / "sft.parquet", "sft")
    two = _run_sft(tmp_path, tiny_model_dir, "two", per_device=1, processes=2)
    one = _run_sft(tmp_path, tiny_model_dir, "one", per_device=2, processes=1)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["global_step"] == one["global_step"] == 2
    # Same global batch of 2 rows per step (measured: first loss equal to 1e-7, parameters after
    # two steps 0.3% of their movement apart). DDP averages the two ranks' gradients where one
    # process averages over both rows' tokens, and float sums run in another order, so the
    # runs agree closely but not to the last bit.
    for key in ("first", "last"):
        losses = [two["steps"]["loss"][key], one["steps"]["loss"][key]]
        assert losses[0] == pytest.approx(losses[1], rel=1e-3), losses
    a = load_file(tmp_path / "two/model/model.safetensors")
    b = load_file(tmp_path / "one/model/model.safetensors")
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    moved = sum((a[k] - base[k]).abs().sum() for k in base)
    apart = sum((a[k] - b[k]).abs().sum() for k in base)
    assert moved > 0  # both ranks trained
    assert apart < 0.02 * moved, (float(apart), float(moved))
    assert all(torch.isfinite(t).all() for t in a.values())
