"""stages/launch.py: the one-process CPU file runs the stage script directly, several CPU
processes go to torchrun, GPU files to `accelerate launch`; across nodes the node count, rank and
main address come from the environment (explicit variables or Slurm), and a launch that cannot
be right stops with a message. The real 2-node run is in tests/test_multinode_training.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("launch", ROOT / "stages" / "launch.py")
launch = importlib.util.module_from_spec(spec)
sys.modules["launch"] = launch  # dataclasses look their module up
spec.loader.exec_module(launch)


def test_the_cpu_file_runs_the_script_with_this_python():
    cmd = launch.launch_command(
        ROOT / "configs/accelerate/cpu.yaml", ["stages/sft.py", "--x", "1"], env={}
    )
    assert cmd == [sys.executable, "stages/sft.py", "--x", "1"]


@pytest.mark.parametrize("name", ["single_gpu", "multi_gpu_fsdp", "multi_gpu_zero2"])
def test_every_other_shipped_file_goes_to_accelerate_launch(name):
    config = ROOT / f"configs/accelerate/{name}.yaml"
    cmd = launch.launch_command(config, ["stages/rl.py"], env={})
    assert cmd == ["accelerate", "launch", "--config_file", str(config), "stages/rl.py"]


@pytest.mark.parametrize("change", [{"mixed_precision": "bf16"}, {"use_cpu": False}])
def test_a_one_process_file_with_anything_more_goes_to_accelerate_launch(tmp_path, change):
    cfg = yaml.safe_load((ROOT / "configs/accelerate/cpu.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**cfg, **change}))
    assert launch.launch_command(path, ["s.py"], env={})[:2] == ["accelerate", "launch"]


def test_the_launched_script_gets_its_arguments_and_exit_code(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys; print(sys.argv[1:]); sys.exit(3)")
    done = subprocess.run(
        [sys.executable, "stages/launch.py", "configs/accelerate/cpu.yaml", str(script), "a", "b"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    assert done.stdout.strip() == "['a', 'b']"


def test_a_missing_config_fails_by_name(tmp_path):
    done = subprocess.run(
        [sys.executable, "stages/launch.py", str(tmp_path / "none.yaml"), "stages/sft.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (
        done.returncode == 2 and "none.yaml: no such accelerate configuration file" in done.stderr
    )


# -- several processes and several nodes ----------------------------------------------------------

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
NODE1 = {"INT_NNODES": "2", "INT_NODE_RANK": "1", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "4242"}


def _config(tmp_path, **values):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_several_cpu_processes_on_one_machine_go_to_torchrun_not_accelerate():
    # `accelerate launch` starts one plain process for a multi-process CPU file (no MPI).
    plan = launch.plan_launch(ROOT / "configs/accelerate/cpu_2proc.yaml", ["s.py", "-a"], env={})
    assert plan.command == [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "s.py", "-a"]
    assert plan.env == {"INT_EXPECTED_WORLD_SIZE": "2"}


def test_two_cpu_nodes_from_explicit_variables():
    plan = launch.plan_launch(ROOT / "configs/accelerate/cpu_2node.yaml", ["s.py"], env=NODE1)
    assert plan.command == [
        *TORCHRUN, "--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "1",
        "--master-addr", "10.0.0.5", "--master-port", "4242", "s.py",
    ]  # fmt: skip
    assert plan.env == {"INT_EXPECTED_WORLD_SIZE": "2"}
    assert "node 1 of 2 (INT_NNODES)" in plan.note


def test_the_environment_node_count_replaces_the_files():
    env = {"INT_NNODES": "3", "INT_NODE_RANK": "0", "MASTER_ADDR": "h"}
    plan = launch.plan_launch(ROOT / "configs/accelerate/cpu.yaml", ["s.py"], env=env)
    assert plan.command[plan.command.index("--nnodes") + 1] == "3"
    assert plan.command[plan.command.index("--master-port") + 1] == "29500"  # the default
    assert plan.env == {"INT_EXPECTED_WORLD_SIZE": "3"}


@pytest.mark.parametrize("name", ["multi_node_fsdp", "multi_node_zero2", "multi_gpu_fsdp"])
def test_gpu_files_across_nodes_go_to_accelerate_with_the_rendezvous(name):
    config = ROOT / f"configs/accelerate/{name}.yaml"
    env = {"INT_NNODES": "4", "INT_NODE_RANK": "2", "MASTER_ADDR": "gpu01", "MASTER_PORT": "6000"}
    plan = launch.plan_launch(config, ["stages/sft.py", "--x"], env=env)
    assert plan.command == [
        "accelerate", "launch", "--config_file", str(config), "--num_machines", "4",
        "--machine_rank", "2", "--main_process_ip", "gpu01", "--main_process_port", "6000",
        "--num_processes", "32", "stages/sft.py", "--x",
    ]  # fmt: skip
    assert plan.env == {"INT_EXPECTED_WORLD_SIZE": "32"}  # 4 nodes x 8 GPUs


@pytest.mark.parametrize(
    ("env", "config", "words"),
    [
        ({"INT_NNODES": "2", "INT_NODE_RANK": "0"}, "cpu_2node", "no main address"),
        ({**NODE1, "INT_NODE_RANK": "2"}, "cpu_2node", "rank 2 is out of range for 2 nodes"),
        ({"INT_NNODES": "2", "MASTER_ADDR": "h"}, "cpu_2node", "set INT_NODE_RANK"),
        ({"INT_NODE_RANK": "1"}, "cpu", "INT_NNODES (the node count) is not"),
        ({**NODE1, "INT_NNODES": "two"}, "cpu", "INT_NNODES='two' is not a whole number"),
        ({**NODE1, "MASTER_PORT": "70000"}, "cpu", "MASTER_PORT=70000 is not a TCP port"),
        ({}, "cpu_2node", "num_machines is 2 but the environment declares no nodes"),
        ({}, "multi_node_fsdp", "num_machines is 2 but the environment declares no nodes"),
        (NODE1, "single_gpu", "'NO' runs one process and cannot span 2 nodes"),
    ],
)
def test_a_launch_that_cannot_be_right_is_refused(env, config, words):
    with pytest.raises(launch.LaunchError, match=words.replace("(", r"\(").replace(")", r"\)")):
        launch.plan_launch(ROOT / f"configs/accelerate/{config}.yaml", ["s.py"], env=env)


def test_deepspeed_across_nodes_needs_the_standard_launcher(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/accelerate/multi_node_zero2.yaml").read_text())
    cfg["deepspeed_config"]["deepspeed_multinode_launcher"] = "pdsh"
    path = _config(tmp_path, **cfg)
    with pytest.raises(launch.LaunchError, match="must be 'standard'"):
        launch.plan_launch(path, ["s.py"], env=NODE1)


def test_processes_must_divide_into_machines(tmp_path):
    path = _config(tmp_path, distributed_type="FSDP", num_machines=2, num_processes=3)
    with pytest.raises(launch.LaunchError, match="multiple of num_machines"):
        launch.plan_launch(path, ["s.py"], env=NODE1)


def _fake_tool(folder, name, script):
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)


STEP = {
    "SLURM_JOB_ID": "77",
    "SLURM_JOB_NUM_NODES": "3",
    "SLURM_STEP_NUM_NODES": "2",
    "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_NODEID": "1",
    "SLURM_STEP_NODELIST": "gpu[07-08]",
}


def test_a_slurm_step_gives_count_rank_and_the_first_host(tmp_path, monkeypatch):
    # scontrol expands the compressed node list; a stand-in prints what it would.
    _fake_tool(tmp_path / "bin", "scontrol", '[ "$3" = "gpu[07-08]" ] && printf "gpu07\\ngpu08\\n"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    nodes = launch.nodes_from_env(STEP)
    assert nodes == launch.Nodes(2, 1, "gpu07", 29500, "Slurm step")
    # MASTER_ADDR wins over the node list; INT_NODE_RANK over SLURM_NODEID.
    assert launch.nodes_from_env({**STEP, "MASTER_ADDR": "ib-gpu07"}).main_addr == "ib-gpu07"
    assert launch.nodes_from_env({**STEP, "INT_NODE_RANK": "0"}).rank == 0
    assert launch.slurm_fan_out(STEP) is None  # already one launcher per node


def test_a_slurm_step_without_scontrol_or_with_several_tasks_a_node_is_refused(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(launch.LaunchError, match="set MASTER_ADDR"):
        launch.nodes_from_env(STEP)
    with pytest.raises(launch.LaunchError, match="16 tasks on 2 node"):
        launch.nodes_from_env({**STEP, "MASTER_ADDR": "h", "SLURM_STEP_NUM_TASKS": "16"})
    one_node = {"SLURM_STEP_NUM_NODES": "1", "SLURM_STEP_NUM_TASKS": "8"}  # srun -n 8 on a node
    with pytest.raises(launch.LaunchError, match="8 tasks on 1 node"):
        launch.nodes_from_env(one_node)
    assert launch.nodes_from_env({**one_node, "SLURM_STEP_NUM_TASKS": "1"}) is None
    with pytest.raises(launch.LaunchError, match="INT_NNODES=3 but this Slurm step runs on 2"):
        launch.nodes_from_env({**STEP, "MASTER_ADDR": "h", "INT_NNODES": "3"})


def test_a_multi_node_allocation_outside_a_step_starts_one_launcher_per_node(tmp_path, monkeypatch):
    batch = {"SLURM_JOB_ID": "77", "SLURM_JOB_NUM_NODES": "3", "SLURM_NODEID": "0"}
    assert launch.slurm_fan_out(batch) == 3
    assert launch.slurm_fan_out({**batch, "INT_NNODES": "2"}) == 2  # rl: 2 trainers + vLLM
    assert launch.slurm_fan_out({**batch, "INT_NNODES": "1"}) is None
    assert launch.slurm_fan_out({"SLURM_JOB_ID": "77", "SLURM_JOB_NUM_NODES": "1"}) is None
    assert launch.slurm_fan_out({}) is None
    with pytest.raises(launch.LaunchError, match="INT_NNODES=4 but this Slurm job has 3"):
        launch.slurm_fan_out({**batch, "INT_NNODES": "4"})
    _fake_tool(tmp_path / "bin", "srun", "exit 0")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    config = ROOT / "configs/accelerate/multi_node_fsdp.yaml"
    cmd = launch.srun_command(2, config, ["stages/sft.py", "--x"])
    assert cmd == [
        str(tmp_path / "bin" / "srun"), "--nodes", "2", "--ntasks", "2", "--ntasks-per-node",
        "1", "--relative", "0", "--kill-on-bad-exit=1", sys.executable,
        str(ROOT / "stages/launch.py"), str(config), "stages/sft.py", "--x",
    ]  # fmt: skip


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INT_", "MASTER_"))}
    return {**env, **extra}


@pytest.mark.parametrize(
    ("config", "extra", "words"),
    [
        ("cpu_2node", {"INT_NNODES": "2", "INT_NODE_RANK": "1"}, "no main address"),
        ("cpu_2node", {}, "the environment declares no nodes"),
        ("cpu", {**NODE1, "INT_NODE_RANK": "5"}, "rank 5 is out of range"),
    ],
)
def test_the_launcher_stops_loudly_before_starting_anything(tmp_path, config, extra, words):
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()")
    done = subprocess.run(
        [sys.executable, "stages/launch.py", f"configs/accelerate/{config}.yaml", str(script)],
        cwd=ROOT,
        env=_clean_env(**extra),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "launch: error:" in done.stderr and words in done.stderr
    assert not marker.exists()
