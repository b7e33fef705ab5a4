"""Start a training stage script on one node or on several, as the accelerate file and the
environment say.

Usage (dvc.yaml): ``python stages/launch.py CONFIG SCRIPT [ARGS ...]``.

One node (the environment declares no node count, see below):

* a one-process CPU file without mixed precision (``configs/accelerate/cpu.yaml``, the
  default): the script runs with this Python directly. ``accelerate launch`` would do the same
  after five seconds of imports of its own.
* a CPU file with several processes (``cpu_2proc.yaml``):
  ``python -m torch.distributed.run --standalone --nproc-per-node G``. ``accelerate launch``
  cannot be used for these: without MPI it starts a single plain process whatever
  ``num_processes`` says, and the run would be silently non-distributed.
* any other file (GPUs): ``accelerate launch --config_file CONFIG`` unchanged.

Several nodes. Every node runs this launcher once, with the same CONFIG and arguments, in the
same shared working directory. The node count, this node's rank and the rendezvous address
come from the environment:

``INT_NNODES``
    number of nodes taking part (wins over Slurm's count; ``1`` forces a one-node run).
``INT_NODE_RANK``
    this node's rank, ``0`` to ``INT_NNODES - 1``. Node 0 hosts the rendezvous and its first
    process (global rank 0) writes the model, the metrics and the step log. Under Slurm it
    defaults to ``SLURM_NODEID``.
``MASTER_ADDR``
    host name or address of node 0, reachable from every node. Required with
    ``INT_NNODES > 1`` outside Slurm; under Slurm it defaults to the first host of
    ``SLURM_STEP_NODELIST`` (expanded by ``scontrol show hostnames``).
``MASTER_PORT``
    a free TCP port on node 0 (default 29500).

Under Slurm, inside a job step that runs one task per node (``srun --ntasks-per-node=1``), the
node count is ``SLURM_STEP_NUM_NODES`` and the rank ``SLURM_NODEID``. In a multi-node allocation
outside any step (a batch script that runs ``dvc repro``, an ``salloc`` shell) the launcher
starts itself once per node through
``srun --nodes K --ntasks K --ntasks-per-node 1 --relative 0 --kill-on-bad-exit=1``, with K =
``INT_NNODES`` or else every node of the allocation (``SLURM_JOB_NUM_NODES``); ``--relative 0``
leaves the allocation's last nodes free for other steps (the vLLM server of
``configs/cluster/rl.sbatch``).

The file gives the processes per node: ``num_processes / num_machines`` (accelerate's
convention: ``num_processes`` counts every machine's processes). The node count of the
environment replaces the file's ``num_machines``, so ``multi_gpu_fsdp.yaml`` (1 x 8) runs on 4
nodes as 4 x 8 = 32 processes. CPU files go to ``torchrun --nnodes N --node-rank R
--master-addr A --master-port P --nproc-per-node G`` (gloo); GPU files to ``accelerate launch
--config_file CONFIG --num_machines N --machine_rank R --main_process_ip A --main_process_port P
--num_processes N*G``. The launched processes get ``INT_EXPECTED_WORLD_SIZE`` (N x G), which the
stage compares with the world it joined
(:func:`intervention_training.training.common.check_world_size`).

A launch that cannot be right stops here with a ``launch:`` message and exit status 2: a node
count without a main address, a rank outside ``0..N-1``, a Slurm step with several tasks on a
node, a multi-machine file with no node count in the environment, a one-process GPU file
(``distributed_type: 'NO'``) on several nodes.

Shared storage: in a multi-node run the working directory (the DVC workspace, with ``data/``,
the DVC cache and ``.cache/checkpoints``) must be the same shared folder on every node. The
model, metrics and step log are written once, by global rank 0; every rank writes its own RNG
state into each checkpoint and reads the checkpoint back when a rerun resumes, and the trainer
refuses to start when the ranks do not see the same last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PORT = 29500
#: distributed types that ``accelerate launch`` runs as several processes on GPUs
GPU_DISTRIBUTED = {"MULTI_GPU", "FSDP", "DEEPSPEED", "MEGATRON_LM"}


class LaunchError(Exception):
    """A launch that would run wrongly (or silently as one process); the message says why."""


@dataclass(frozen=True)
class Nodes:
    """Where this node stands in a multi-node run."""

    count: int
    rank: int
    main_addr: str
    main_port: int
    source: str  # which variables said so


@dataclass
class Launch:
    """What to run on this node, with which additions to the environment."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


def is_plain_cpu(config: dict[str, Any]) -> bool:
    """True for a one-process, one-machine CPU configuration without mixed precision."""
    return (
        str(config.get("distributed_type", "NO")).upper() == "NO"
        and int(config.get("num_processes", 1) or 1) == 1
        and int(config.get("num_machines", 1) or 1) == 1
        and config.get("use_cpu") is True
        and str(config.get("mixed_precision", "no")).lower() == "no"
    )


def is_cpu(config: dict[str, Any]) -> bool:
    """A CPU configuration (``use_cpu: true`` or ``distributed_type: MULTI_CPU``)."""
    return (
        config.get("use_cpu") is True
        or str(config.get("distributed_type", "NO")).upper() == "MULTI_CPU"
    )


def processes_per_node(config: dict[str, Any], name: str) -> int:
    """``num_processes / num_machines`` of an accelerate file (a whole number, at least 1)."""
    machines = int(config.get("num_machines", 1) or 1)
    processes = int(config.get("num_processes", 1) or 1)
    if machines < 1 or processes < 1 or processes % machines:
        raise LaunchError(
            f"{name}: num_processes ({processes}) must be a positive multiple of num_machines "
            f"({machines}); it counts the processes of every machine together"
        )
    return processes // machines


def _whole(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise LaunchError(f"{name}={value!r} is not a whole number") from None


def first_host(nodelist: str) -> str | None:
    """The first host of a Slurm node list (``gpu[03-04]`` -> ``gpu03``), by
    ``scontrol show hostnames``; None when scontrol is missing or fails."""
    scontrol = shutil.which("scontrol")
    if scontrol is None or not nodelist:
        return None
    try:
        done = subprocess.run(
            [scontrol, "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    hosts = done.stdout.split() if done.returncode == 0 else []
    return hosts[0] if hosts else None


def nodes_from_env(env: Mapping[str, str]) -> Nodes | None:
    """This node's place in a multi-node run, or None for a one-node run (see the module
    docstring for the variables). Raises :class:`LaunchError` for an inconsistent set."""
    declared = _whole(env, "INT_NNODES")
    step_nodes = _whole(env, "SLURM_STEP_NUM_NODES")
    slurm = step_nodes is not None and step_nodes > 1  # a multi-node Slurm step
    tasks = _whole(env, "SLURM_STEP_NUM_TASKS")
    if step_nodes is not None and tasks is not None and tasks != step_nodes:
        raise LaunchError(
            f"this Slurm step runs {tasks} tasks on {step_nodes} node(s); the launcher starts "
            "every process of its node itself: run one launcher per node "
            "(srun --ntasks-per-node 1)"
        )
    if declared is None and not slurm:
        if env.get("INT_NODE_RANK", "").strip():
            raise LaunchError("INT_NODE_RANK is set but INT_NNODES (the node count) is not")
        return None
    if slurm and declared is not None and declared != step_nodes:
        raise LaunchError(
            f"INT_NNODES={declared} but this Slurm step runs on {step_nodes} nodes; start the "
            f"launcher with srun --nodes {declared} --ntasks-per-node 1"
        )
    count = declared if declared is not None else step_nodes
    assert count is not None
    source = "INT_NNODES" if declared is not None else "Slurm step"
    if count < 1:
        raise LaunchError(f"INT_NNODES={count}: the node count must be at least 1")
    rank = _whole(env, "INT_NODE_RANK")
    if rank is None and slurm:
        rank = _whole(env, "SLURM_NODEID")
    if count == 1:
        if rank not in (None, 0):
            raise LaunchError(f"node rank {rank} is out of range for 1 node (0)")
        return None
    if rank is None:
        raise LaunchError(
            f"{count} nodes declared but this node's rank is unknown: set INT_NODE_RANK "
            f"(0..{count - 1}) on every node, or start the launcher under srun"
        )
    if not 0 <= rank < count:
        raise LaunchError(f"node rank {rank} is out of range for {count} nodes (0..{count - 1})")
    addr = env.get("MASTER_ADDR", "").strip()
    if not addr and slurm:
        nodelist = env.get("SLURM_STEP_NODELIST", "")
        addr = first_host(nodelist) or ""
        if not addr:
            raise LaunchError(
                f"{count} nodes declared but no main address: set MASTER_ADDR to the host name "
                f"of the step's first node (scontrol could not expand {nodelist!r})"
            )
    if not addr:
        raise LaunchError(
            f"{count} nodes declared (INT_NNODES) but no main address: set MASTER_ADDR to the "
            "address of node 0, the same on every node"
        )
    port = _whole(env, "MASTER_PORT")
    port = DEFAULT_PORT if port is None else port
    if not 0 < port < 65536:
        raise LaunchError(f"MASTER_PORT={port} is not a TCP port")
    return Nodes(count, rank, addr, port, source)


def slurm_fan_out(env: Mapping[str, str]) -> int | None:
    """The node count to start the launcher on with srun, when this process runs in a
    multi-node Slurm allocation outside any job step; None otherwise."""
    if not env.get("SLURM_JOB_ID") or env.get("SLURM_STEP_NUM_NODES"):
        return None
    if env.get("INT_NODE_RANK", "").strip():
        return None  # the user starts one launcher per node by hand
    job_nodes = _whole(env, "SLURM_JOB_NUM_NODES") or _whole(env, "SLURM_NNODES") or 1
    wanted = _whole(env, "INT_NNODES")
    count = job_nodes if wanted is None else wanted
    if count > job_nodes:
        raise LaunchError(f"INT_NNODES={count} but this Slurm job has {job_nodes} node(s)")
    return count if count > 1 else None


def srun_command(count: int, config_path: Path, script_and_args: list[str]) -> list[str]:
    """One launcher on each of the allocation's first ``count`` nodes."""
    srun = shutil.which("srun")
    if srun is None:
        raise LaunchError("a multi-node Slurm allocation but no srun on PATH")
    n = str(count)
    return [
        srun, "--nodes", n, "--ntasks", n, "--ntasks-per-node", "1", "--relative", "0",
        "--kill-on-bad-exit=1", sys.executable, str(Path(__file__).resolve()),
        str(config_path), *script_and_args,
    ]  # fmt: skip


def plan_launch(
    config_path: Path, script_and_args: list[str], env: Mapping[str, str] | None = None
) -> Launch:
    """What this node runs for ``script_and_args`` under the accelerate file ``config_path``."""
    env = os.environ if env is None else env
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    name = str(config_path)
    per_node = processes_per_node(config, name)
    machines = int(config.get("num_machines", 1) or 1)
    nodes = nodes_from_env(env)
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    accelerate = ["accelerate", "launch", "--config_file", name]
    if nodes is None:
        if machines > 1:
            raise LaunchError(
                f"{name}: num_machines is {machines} but the environment declares no nodes; "
                "set INT_NNODES, INT_NODE_RANK and MASTER_ADDR on every node, or start one "
                "launcher per node with srun"
            )
        expected = {"INT_EXPECTED_WORLD_SIZE": str(per_node)}
        if is_plain_cpu(config):
            return Launch([sys.executable, *script_and_args], expected, "one process")
        if is_cpu(config) and per_node > 1:
            command = [*torchrun, "--standalone", "--nproc-per-node", str(per_node)]
            return Launch([*command, *script_and_args], expected, f"{per_node} CPU processes")
        return Launch([*accelerate, *script_and_args], expected, "accelerate launch")
    total = nodes.count * per_node
    expected = {"INT_EXPECTED_WORLD_SIZE": str(total)}
    note = (
        f"node {nodes.rank} of {nodes.count} ({nodes.source}), {per_node} process(es) per node, "
        f"rendezvous at {nodes.main_addr}:{nodes.main_port}"
    )
    if is_cpu(config):
        command = [
            *torchrun, "--nnodes", str(nodes.count), "--node-rank", str(nodes.rank),
            "--nproc-per-node", str(per_node), "--master-addr", nodes.main_addr,
            "--master-port", str(nodes.main_port),
        ]  # fmt: skip
        return Launch([*command, *script_and_args], expected, note)
    kind = str(config.get("distributed_type", "NO")).upper()
    if kind not in GPU_DISTRIBUTED:
        raise LaunchError(
            f"{name}: distributed_type {kind!r} runs one process and cannot span "
            f"{nodes.count} nodes; use a multi-GPU file (multi_node_fsdp, multi_node_zero2)"
        )
    if kind == "DEEPSPEED":
        ds = config.get("deepspeed_config") or {}
        if ds.get("deepspeed_multinode_launcher", "standard") != "standard":
            raise LaunchError(
                f"{name}: deepspeed_multinode_launcher must be 'standard' (one launcher per "
                "node, started by this script or srun), not "
                f"{ds.get('deepspeed_multinode_launcher')!r}"
            )
    command = [
        *accelerate, "--num_machines", str(nodes.count), "--machine_rank", str(nodes.rank),
        "--main_process_ip", nodes.main_addr, "--main_process_port", str(nodes.main_port),
        "--num_processes", str(total),
    ]  # fmt: skip
    return Launch([*command, *script_and_args], expected, note)


def launch_command(
    config_path: Path, script_and_args: list[str], env: Mapping[str, str] | None = None
) -> list[str]:
    """The command that runs ``script_and_args`` under the accelerate file ``config_path``."""
    return plan_launch(config_path, script_and_args, env).command


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python stages/launch.py CONFIG SCRIPT [ARGS ...]", file=sys.stderr)
        return 2
    config = Path(argv[0])
    if not config.is_file():
        print(f"launch: {config}: no such accelerate configuration file", file=sys.stderr)
        return 2
    try:
        fan_out = slurm_fan_out(os.environ)
        if fan_out is not None:
            launch = Launch(srun_command(fan_out, config, argv[1:]), {}, f"srun on {fan_out} nodes")
        else:
            launch = plan_launch(config, argv[1:])
    except LaunchError as exc:
        print(f"launch: error: {exc}", file=sys.stderr)
        return 2
    print(f"launch: {launch.note}: {' '.join(launch.command)}", file=sys.stderr, flush=True)
    env = {**os.environ, **launch.env}
    os.execvpe(launch.command[0], launch.command, env)  # noqa: S606 - an argument list, no shell
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
