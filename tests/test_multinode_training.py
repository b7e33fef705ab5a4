"""The sft stage as 2 nodes x 1 CPU process over loopback (gloo), launched as a cluster would:
two launchers (stages/launch.py) with INT_NNODES=2, node ranks 0 and 1, MASTER_ADDR=127.0.0.1.

Each launcher runs the real stage script through tests/rank_probe.py, which reports per rank
what the launcher set, a checksum of the trained parameters and what the rank wrote. Checked:
both ranks took part in one world of 2, they hold the same parameters after training, only
rank 0 wrote outputs, the result matches one process with the same global batch, a rerun
resumes from the last checkpoint on every node, and nodes that see different checkpoint folders
(node-local storage) refuse to resume; and the accelerate path (a GPU file) forms one group
across two nodes. About 80 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from servers import free_port
from workspace import sft_rows

from intervention_training.artifacts import write_artifact
from intervention_training.training.callbacks import read_curves

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "stages/launch.py"
STAGE = ROOT / "stages/sft.py"
PROBE = Path(__file__).resolve().parent / "rank_probe.py"
TWO_NODES = ROOT / "configs/accelerate/cpu_2node.yaml"
ONE_PROCESS = ROOT / "configs/accelerate/cpu.yaml"
TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    """This environment without any launcher variables of the machine running the tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "INT_", "MASTER_")) and k not in ("RANK", "WORLD_SIZE")
    }
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def _write_params(ws: Path) -> Path:
    """One params file for both layouts: 2 rows per optimiser step (global_batch_size) at 1 row
    per process, so 2 processes accumulate once and 1 process twice."""
    trainer = {
        "use_cpu": True,
        "report_to": "none",
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "seed": 0,
        "learning_rate": 1e-2,
        "max_steps": 2,
        "per_device_train_batch_size": 1,
        "dataloader_num_workers": 0,
        "max_length": 256,
    }
    path = ws / "params.yaml"
    sft = {"keep_checkpoints": True, "global_batch_size": 2, "trainer": trainer}
    path.write_text(yaml.safe_dump({"sft": sft}))
    return path


def _stage_args(ws: Path, name: str, params: Path, config: Path, checkpoints: Path) -> list[str]:
    out = ws / name
    return [
        str(PROBE), str(STAGE),
        "--sft-data", str(ws / "sft.parquet"), "--model", str(ws / "base"),
        "--out", str(out / "model"), "--metrics", str(out / "metrics.json"),
        "--live", str(out / "live"), "--checkpoints", str(checkpoints),
        "--params", str(params), "--accelerate-config", str(config),
    ]  # fmt: skip


def _run_nodes(ws: Path, name: str, node_args: list[list[str]]) -> list[tuple[int, str]]:
    """One launcher per node rank, all on this machine; (exit status, output) per node."""
    port = str(free_port())
    procs, logs = [], []
    for rank, args in enumerate(node_args):
        log = (ws / f"{name}.node{rank}.log").open("w")
        env = _env(
            INT_NNODES=str(len(node_args)),
            INT_NODE_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            RANK_PROBE_DIR=str(ws / name / "ranks"),
        )
        command = [sys.executable, str(LAUNCH), str(TWO_NODES), *args]
        procs.append(
            subprocess.Popen(
                command,
                cwd=ws,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        logs.append(log)
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in logs:
            log.close()
    return [(code, (ws / f"{name}.node{rank}.log").read_text()) for rank, code in enumerate(codes)]


def _ranks(ws: Path, name: str) -> list[dict]:
    folder = ws / name / "ranks"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """The 2-node run and the 1-process run, same data and params (global batch 2)."""
    from transformers import AutoTokenizer

    ws = tmp_path_factory.mktemp("multinode")
    shutil.copytree(tiny_model_dir, ws / "base")
    write_artifact(sft_rows(AutoTokenizer.from_pretrained(ws / "base")), ws / "sft.parquet", "sft")
    params = _write_params(ws)
    args = _stage_args(ws, "two", params, TWO_NODES, ws / "ckpt_two")
    nodes = _run_nodes(ws, "two", [args, args])
    one = subprocess.run(
        [sys.executable, str(LAUNCH), str(ONE_PROCESS),
         *_stage_args(ws, "one", params, ONE_PROCESS, ws / "ckpt_one")],
        cwd=ws, env=_env(RANK_PROBE_DIR=str(ws / "one" / "ranks")), capture_output=True,
        text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    return ws, nodes, one


def test_two_nodes_train_as_one_process_with_the_same_global_batch(runs):
    from safetensors.torch import load_file

    ws, nodes, one = runs
    for rank, (code, log) in enumerate(nodes):
        assert code == 0, f"node {rank}:\n{log[-4000:]}"
    assert one.returncode == 0, one.stderr[-4000:]
    assert "node 1 of 2 (INT_NNODES)" in nodes[1][1]
    two_m = json.loads((ws / "two/metrics.json").read_text())
    one_m = json.loads((ws / "one/metrics.json").read_text())
    assert two_m["world_size"] == 2 and one_m["world_size"] == 1
    assert two_m["global_step"] == one_m["global_step"] == 2
    # The same params file gave both layouts 2 rows a step: 2 x 1 x 1 and 1 x 1 x 2 accumulated.
    assert two_m["global_batch_size"] == one_m["global_batch_size"] == 2

    # Both ranks took part, one per node, in one world of 2, and ended with the same weights.
    r0, r1 = _ranks(ws, "two")
    assert (r0["rank"], r0["node_rank"], r1["rank"], r1["node_rank"]) == (0, 0, 1, 1)
    assert r0["world_size"] == r1["world_size"] == r0["world_size_env"] == 2
    assert r0["global_step"] == r1["global_step"] == 2
    assert r0["checksum"] == r1["checksum"]
    # Only rank 0 wrote the model, the metrics and the DVCLive curves (one row per step).
    assert r1["writes"] == []
    written = {Path(p).name for p in r0["writes"]}
    assert {"model", "metrics.json", "live"} <= written
    assert [r["step"] for r in read_curves(ws / "two" / "live")] == [1, 2]

    # Same global batch of 2 rows per step: one process accumulating 2 batches of 1 against 2
    # processes of 1, same data order. The gradients differ only in how per-row losses are
    # averaged (per-rank means averaged over gloo vs accumulated means) and in the order of
    # float sums. Bounds: 1e-3 relative on the losses, 1% of the parameters' movement.
    for key in ("first", "last"):
        a, b = two_m["steps"]["loss"][key], one_m["steps"]["loss"][key]
        assert a == pytest.approx(b, rel=1e-3), (key, a, b)
    a = load_file(ws / "two/model/model.safetensors")
    b = load_file(ws / "one/model/model.safetensors")
    base = load_file(ws / "base/model.safetensors")
    moved = sum(float((a[k] - base[k]).abs().sum()) for k in base)
    apart = sum(float((a[k] - b[k]).abs().sum()) for k in base)
    assert moved > 0
    assert apart < 0.01 * moved, (apart, moved)


def test_a_rerun_resumes_on_every_node_and_node_local_checkpoints_are_refused(runs):
    from safetensors.torch import load_file

    ws, nodes, _ = runs
    assert all(code == 0 for code, _ in nodes), "the 2-node run failed"
    # As if the job had been preempted after step 1: keep checkpoint-1 only.
    shared = ws / "ckpt_resume"
    shutil.copytree(ws / "ckpt_two", shared)
    (fingerprint,) = list(shared.iterdir())
    shutil.rmtree(fingerprint / "checkpoint-2")
    assert (fingerprint / "checkpoint-1" / "trainer_state.json").exists()
    params = ws / "params.yaml"

    # Node 1 looks in a folder of its own (node-local storage): both nodes refuse, loudly.
    local = ws / "ckpt_node1_local"
    local.mkdir()
    node_args = [
        _stage_args(ws, "split", params, TWO_NODES, shared),
        _stage_args(ws, "split", params, TWO_NODES, local),
    ]
    for code, log in _run_nodes(ws, "split", node_args):
        assert code != 0
        assert "different last checkpoints" in log and "shared by every node" in log, log[-3000:]
    assert not (ws / "split" / "model").exists()

    # Both nodes on the shared folder: the rerun continues from step 1 to step 2.
    args = _stage_args(ws, "resumed", params, TWO_NODES, shared)
    for rank, (code, log) in enumerate(_run_nodes(ws, "resumed", [args, args])):
        assert code == 0, f"node {rank}:\n{log[-4000:]}"
    m = json.loads((ws / "resumed/metrics.json").read_text())
    assert m["resumed_from_step"] == 1 and m["global_step"] == 2 and m["world_size"] == 2
    r0, r1 = _ranks(ws, "resumed")
    assert r0["checksum"] == r1["checksum"]
    # The same weights as the uninterrupted run (measured: bit for bit).
    a = load_file(ws / "resumed/model/model.safetensors")
    b = load_file(ws / "two/model/model.safetensors")
    assert all(float((a[k] - b[k]).abs().max()) < 1e-6 for k in b)


GLOO_PROBE = """
import json, os, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
total = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(total)
keys = ("RANK", "GROUP_RANK", "ACCELERATE_USE_FSDP", "INT_EXPECTED_WORLD_SIZE")
seen = {k: os.environ.get(k) for k in keys}
seen.update(world=dist.get_world_size(), total=total.item())
open(os.path.join(sys.argv[1], f"rank{dist.get_rank()}.json"), "w").write(json.dumps(seen))
"""


def test_a_gpu_file_across_nodes_goes_through_accelerate_into_one_group(tmp_path):
    # The accelerate path of the launcher (FSDP file, --num_machines/--machine_rank/
    # --main_process_ip overriding the file), with 1 process a node so that it runs on CPUs:
    # the two nodes form one gloo group of 2. What FSDP then does on GPUs is not run here.
    cfg = yaml.safe_load((ROOT / "configs/accelerate/multi_node_fsdp.yaml").read_text())
    config = tmp_path / "fsdp_1_per_node.yaml"
    config.write_text(yaml.safe_dump({**cfg, "num_machines": 2, "num_processes": 2}))
    probe = tmp_path / "probe.py"
    probe.write_text(GLOO_PROBE)
    port, procs = str(free_port()), []
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for rank in (0, 1):
        env = _env(
            INT_NNODES="2", INT_NODE_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
            PATH=path,
        )  # fmt: skip
        command = [sys.executable, str(LAUNCH), str(config), str(probe), str(tmp_path)]
        procs.append(subprocess.Popen(command, env=env, start_new_session=True))
    try:
        assert [p.wait(timeout=TIMEOUT_S) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(s["RANK"], s["GROUP_RANK"]) for s in seen] == [("0", "0"), ("1", "1")]
    assert all(s["world"] == 2 and s["total"] == 3.0 for s in seen)
    assert all(
        s["ACCELERATE_USE_FSDP"] == "true" and s["INT_EXPECTED_WORLD_SIZE"] == "2" for s in seen
    )
