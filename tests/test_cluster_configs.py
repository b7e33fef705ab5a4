"""The cluster files that cannot run here (no Slurm, no GPU), checked for what can be checked:
GRPO's server-mode section validates and builds a GRPOConfig, the vLLM server's address comes
from INT_VLLM_SERVER_URL and reaches TRL's client, and the Slurm batch scripts parse (bash) with
their directives where sbatch reads them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from intervention_training.config import ConfigError, RlParams, validate_all
from intervention_training.training.common import accumulation_steps
from intervention_training.training.rl import VLLM_SERVER_ENV, vllm_server_overrides

ROOT = Path(__file__).resolve().parents[1]
SERVER_MODE = ROOT / "configs/rl_server_mode.yaml"
SBATCH = {
    name: ROOT / f"configs/cluster/{name}.sbatch"
    for name in ("sft", "rl", "generate_ray", "generate_servers")
}


def _paper_with_server_mode(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    params["rl"] = yaml.safe_load(SERVER_MODE.read_text())["rl"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_server_mode_rl_section_validates_and_builds(tmp_path):
    from trl import GRPOConfig

    rl = validate_all(_paper_with_server_mode(tmp_path))["rl"]
    t = rl.trainer
    assert t["use_vllm"] and t["vllm_mode"] == "server"
    # The server address is per job (INT_VLLM_SERVER_URL), never a parameter.
    assert not {"vllm_server_host", "vllm_server_port", "vllm_server_base_url"} & set(t)
    accelerate = yaml.safe_load(
        (ROOT / "configs/accelerate" / f"{rl.accelerate_config}.yaml").read_text()
    )
    per_node = accelerate["num_processes"] // accelerate["num_machines"]
    # The paper's step (256 completions = 32 problems x 8) on 1, 2 or 4 trainer nodes.
    assert rl.global_batch_size == 256 and 256 // t["num_generations"] == 32
    for nodes, steps in ((1, 4), (2, 2), (4, 1)):
        got = accumulation_steps(256, t["per_device_train_batch_size"], nodes * per_node, "rl")
        assert got == steps
    # Every value is one GRPOConfig takes (bf16 needs a GPU: built here for the CPU).
    config = GRPOConfig(output_dir=str(tmp_path / "o"), **{**t, "bf16": False, "use_cpu": True})
    assert config.vllm_mode == "server" and config.vllm_server_timeout == 1800


def test_the_server_url_comes_from_the_environment():
    server = RlParams(trainer={"use_vllm": True, "vllm_mode": "server"})
    url = "http://gpu09:8000"
    assert vllm_server_overrides(server, {}) == {}
    assert vllm_server_overrides(server, {VLLM_SERVER_ENV: url}) == {"vllm_server_base_url": url}
    with pytest.raises(ConfigError, match="does not generate through a vLLM server"):
        vllm_server_overrides(RlParams(trainer={"use_vllm": False}), {VLLM_SERVER_ENV: url})
    with pytest.raises(ConfigError, match="is not an http://host:port URL"):
        vllm_server_overrides(server, {VLLM_SERVER_ENV: "gpu09:8000"})


@pytest.mark.vllm
def test_the_trainer_asks_the_server_named_by_the_environment(
    tmp_path, tiny_model_dir, monkeypatch
):
    # No server listens there: TRL's client fails naming the URL it was given. (A server and
    # the NCCL weight sync need GPUs; that part is not tested here.)
    from intervention_training.training.rl import build_rl_trainer

    url = "http://127.0.0.1:9"
    monkeypatch.setenv(VLLM_SERVER_ENV, url)
    params = RlParams(
        trainer={
            "use_cpu": True,
            "report_to": "none",
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "num_generations": 2,
            "max_completion_length": 8,
            "use_vllm": True,
            "vllm_mode": "server",
            "vllm_server_timeout": 1,
        }
    )
    problems = [{"problem_id": "a", "problem": "1 + 1?", "answer": "2", "split": "train"}]
    with pytest.raises(OSError, match=re.escape(f"can't be reached at {url}")):  # requests' error
        build_rl_trainer(problems, tiny_model_dir, params, tmp_path / "out")


def _directives(path: Path) -> list[str]:
    """The options sbatch reads: #SBATCH lines up to the first command, without comments."""
    options = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            break
        if text.startswith("#SBATCH"):
            options += shlex.split(text[len("#SBATCH") :], comments=True)
    return options


@pytest.mark.parametrize("name", sorted(SBATCH))
def test_the_batch_scripts_parse_and_ask_for_what_they_rely_on(name):
    path = SBATCH[name]
    subprocess.run(["bash", "-n", str(path)], check=True)
    options = _directives(path)
    for option in ("--requeue", "--ntasks-per-node=1", "--gpus-per-node=8", "--exclusive"):
        assert option in options, (name, option)
    nodes = next(int(o.split("=")[1]) for o in options if o.startswith("--nodes="))
    assert nodes >= 2
    text = path.read_text()
    assert {
        "sft": 'STAGE="${STAGE:-sft}"\ndvc repro "$STAGE"',
        "rl": "dvc repro rl",
        "generate_ray": 'export RAY_ADDRESS="${HEAD}:${RAY_PORT}"',
        "generate_servers": 'export INT_SERVER_URLS="${URLS[*]}"',
    }[name] in text
    if name.startswith("generate"):
        assert 'TARGETS="${TARGETS:-sft_data}"' in text and "dvc repro $TARGETS" in text
    if name == "rl":
        assert "trl vllm-serve" in text and "INT_VLLM_SERVER_URL" in text
        assert '--relative="$TRAINER_NODES"' in text  # the server on the last node
