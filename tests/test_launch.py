"""stages/launch.py: the one-process CPU file runs the stage script directly, others go to
`accelerate launch`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("launch", ROOT / "stages" / "launch.py")
launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launch)


def test_the_cpu_file_runs_the_script_with_this_python():
    cmd = launch.launch_command(ROOT / "configs/accelerate/cpu.yaml", ["stages/sft.py", "--x", "1"])
    assert cmd == [sys.executable, "stages/sft.py", "--x", "1"]


@pytest.mark.parametrize("name", ["single_gpu", "multi_gpu_fsdp", "multi_gpu_zero2"])
def test_every_other_shipped_file_goes_to_accelerate_launch(name):
    config = ROOT / f"configs/accelerate/{name}.yaml"
    cmd = launch.launch_command(config, ["stages/rl.py"])
    assert cmd == ["accelerate", "launch", "--config_file", str(config), "stages/rl.py"]


@pytest.mark.parametrize(
    "change",
    [{"num_processes": 2}, {"mixed_precision": "bf16"}, {"use_cpu": False}, {"num_machines": 2}],
)
def test_a_cpu_file_with_anything_more_goes_to_accelerate_launch(tmp_path, change):
    cfg = yaml.safe_load((ROOT / "configs/accelerate/cpu.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**cfg, **change}))
    assert launch.launch_command(path, ["s.py"])[:2] == ["accelerate", "launch"]


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
