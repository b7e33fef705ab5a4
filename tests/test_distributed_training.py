"""Several training processes for real: the sft stage as 2 CPU processes (torchrun, gloo) against
the same global batch in one process; and a launch that would silently run as one, refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from intervention_training.artifacts import write_artifact
from intervention_training.config import ConfigError
from intervention_training.prompts import rollout_prompt
from intervention_training.training.common import check_world_size

ROOT = Path(__file__).resolve().parents[1]


def test_a_multi_process_config_run_as_one_process_is_an_error(tmp_path):
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump({"distributed_type": "MULTI_CPU", "num_processes": 2}))
    with pytest.raises(ConfigError, match="num_processes is 2 but this run has 1 process"):
        check_world_size(two)
    assert check_world_size(ROOT / "configs/accelerate/cpu.yaml") == 1
    assert check_world_size(None) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sft_rows(tokenizer) -> list[dict]:
    prompt = rollout_prompt(tokenizer, "Find x if 2x + 5 = 11.")
    completions = [
        "Step 1: Let x = 3.\n\nStep 2: Check the sign before dividing.",
        "Step 1: Use the quadratic formula instead.",
        "Reasoning: a_{n+1} = a_n + d, so",
        "Final: \\frac{5}{4}. Check the sign.",
    ]
    return [
        {
            "prompt": prompt,
            "completion": c,
            "problem_id": "p",
            "rollout_id": f"p/{i}",
            "proposal_id": f"p/{i}/0",
            "location": 1,
            "prefix": "",
            "intervention": c,
            "end_of_turn": False,
        }
        for i, c in enumerate(completions)
    ]


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
        "--step-log", str(ws / name / "log.json"), "--checkpoints", str(ws / name / "ckpt"),
        "--params", str(ws / f"{name}.yaml"),
    ]  # fmt: skip
    if processes == 1:
        cmd = [sys.executable, *stage]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc-per-node", str(processes), "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), *stage,
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((ws / name / "metrics.json").read_text())


@pytest.mark.slow
def test_two_cpu_processes_train_as_one_with_the_same_global_batch(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    write_artifact(_sft_rows(tokenizer), tmp_path / "sft.parquet", "sft")
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
