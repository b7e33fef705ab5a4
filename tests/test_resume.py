"""Resumable generation: complete shards are reused, torn ones redone, settings never mixed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fakes import ScriptedBackend

from intervention_training.artifacts import write_artifact
from intervention_training.generation import GenerationRequest, SamplingParams
from intervention_training.resume import ResumableBackend

ROOT = Path(__file__).resolve().parents[1]
SAMPLING = SamplingParams(temperature=0.7, max_new_tokens=8)


def requests(n: int, tag: str = "p") -> list[GenerationRequest]:
    return [GenerationRequest(prompt=f"{tag}{i}", n=2, seed=i) for i in range(n)]


def counting_backend(tokenizer):
    seen: list[str] = []

    def script(req, j):
        seen.append(req.prompt)
        return f"{req.prompt}-{j}"

    return ScriptedBackend(tokenizer, script), seen


def test_second_call_reuses_every_shard(tmp_path, tiny_tokenizer):
    inner, seen = counting_backend(tiny_tokenizer)
    first = ResumableBackend(inner, tmp_path, shard_size=3).generate(requests(7), SAMPLING)
    assert len(seen) == 14
    again = ResumableBackend(inner, tmp_path, shard_size=3)
    second = again.generate(requests(7), SAMPLING)
    assert len(seen) == 14  # nothing regenerated
    assert second == first and again.reused_shards == 3


def test_torn_shard_is_detected_and_redone(tmp_path, tiny_tokenizer):
    inner, seen = counting_backend(tiny_tokenizer)
    first = ResumableBackend(inner, tmp_path, shard_size=3).generate(requests(7), SAMPLING)
    (shard,) = [p for p in tmp_path.rglob("shard-00001.parquet")]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    seen.clear()
    again = ResumableBackend(inner, tmp_path, shard_size=3)
    assert again.generate(requests(7), SAMPLING) == first
    assert seen == ["p3", "p3", "p4", "p4", "p5", "p5"]
    assert (again.reused_shards, again.generated_shards) == (2, 1)


def test_changed_inputs_never_reuse_old_work(tmp_path, tiny_tokenizer):
    inner, seen = counting_backend(tiny_tokenizer)
    ResumableBackend(inner, tmp_path, shard_size=4).generate(requests(4), SAMPLING)
    seen.clear()
    other = ResumableBackend(inner, tmp_path, shard_size=4)
    out = other.generate(requests(4), SamplingParams(temperature=0.5, max_new_tokens=8))
    assert len(seen) == 8 and other.reused_shards == 0
    assert out[0][0].text == "p0-0"
    other.finish()
    assert not tmp_path.exists()


def write_problems(path: Path, n: int) -> None:
    rows = [
        {
            "problem_id": f"t/{i:03d}",
            "problem": f"Compute {i} + {i}.",
            "answer": str(2 * i),
            "reference_solution": f"{i} + {i} = {2 * i}",
            "source": "t",
            "split": "train",
        }
        for i in range(n)
    ]
    write_artifact(rows, path, "problems")


def stage_cmd(ws: Path, model: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "stages/rollouts.py"),
        "--problems",
        str(ws / "problems.parquet"),
        "--model",
        str(model),
        "--out",
        str(ws / "rollouts.parquet"),
        "--params",
        str(ws / "params.yaml"),
        "--work-dir",
        str(ws / "work"),
    ]


def setup_workspace(ws: Path, model: Path) -> None:
    ws.mkdir()
    write_problems(ws / "problems.parquet", 24)
    params = {
        "backend": {"batch_size": 4, "shard_requests": 2},
        "rollouts": {
            "samples_per_problem": 2,
            "sampling": {"temperature": 0.9, "max_new_tokens": 96},
        },
    }
    (ws / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_sigkill_midway_then_resume_gives_identical_bytes(tmp_path, tiny_model_dir):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    setup_workspace(clean, tiny_model_dir)
    setup_workspace(killed, tiny_model_dir)
    subprocess.run(stage_cmd(clean, tiny_model_dir), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(
        stage_cmd(killed, tiny_model_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "work").rglob("shard-*"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((killed / "work").rglob("shard-*.parquet")))
    assert 3 <= n_done < 12, "the kill should land midway through the 12 shards"
    assert not (killed / "rollouts.parquet").exists()

    rerun = subprocess.run(
        stage_cmd(killed, tiny_model_dir), check=True, env=env, capture_output=True, text=True
    )
    assert f"reused {n_done} shard(s), generated {12 - n_done}" in rerun.stderr
    assert (killed / "rollouts.parquet").read_bytes() == (clean / "rollouts.parquet").read_bytes()
    assert not (killed / "work").exists()
