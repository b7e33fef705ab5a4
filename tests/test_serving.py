"""The vLLM server command line: the offline backend's engine settings, the expected name."""

from __future__ import annotations

import json

from intervention_training.config import BackendParams
from intervention_training.serving import main, server_root, vllm_server_command


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_cpu_server_gets_the_offline_cpu_engine_settings(tiny_model_dir):
    params = BackendParams(name="openai", dtype="bfloat16", max_model_len=2048, kv_cache_gib=0.5)
    argv = vllm_server_command(tiny_model_dir, params, port=8123, on_cpu=True, extra=["--x"])
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]  # not `vllm serve`
    assert _value(argv, "--served-model-name") == str(tiny_model_dir)  # what the backend expects
    assert _value(argv, "--dtype") == "bfloat16" and _value(argv, "--port") == "8123"
    assert _value(argv, "--max-model-len") == "2048"
    assert "--no-enable-chunked-prefill" in argv and "--enforce-eager" in argv
    assert _value(argv, "--kv-cache-memory-bytes") == str(2**29)
    config = json.loads(_value(argv, "--structured-outputs-config"))
    assert config == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert argv[-1] == "--x"


def test_gpu_server_keeps_vllm_defaults_and_names_a_hub_model_by_its_id():
    params = BackendParams(name="openai", served_model_name="policy", tensor_parallel_size=4)
    argv = vllm_server_command("org/some-model", params, on_cpu=False)
    assert _value(argv, "--model") == "org/some-model"
    assert _value(argv, "--served-model-name") == "policy"
    assert _value(argv, "--tensor-parallel-size") == "4"
    assert "--enforce-eager" not in argv and "--no-enable-chunked-prefill" not in argv
    assert _value(argv, "--gpu-memory-utilization") == "0.85"


def test_print_shows_a_command_a_shell_can_run(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import shlex

    import intervention_training.generation.vllm_backend as vb

    monkeypatch.setattr(vb, "on_cpu_platform", lambda: True)
    params = tmp_path / "params.yaml"
    params.write_text("backend: {name: vllm, dtype: float32}\n")
    assert main(["--model", str(tiny_model_dir), "--params", str(params), "--print"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert json.loads(_value(argv, "--structured-outputs-config"))["backend"] == "xgrammar"
    assert server_root("http://h:8000/v1/") == "http://h:8000"


def test_section_proposals_serves_the_proposer_with_its_own_settings(tmp_path, capsys, monkeypatch):
    import shlex

    import intervention_training.generation.vllm_backend as vb

    monkeypatch.setattr(vb, "on_cpu_platform", lambda: False)
    params = tmp_path / "params.yaml"
    params.write_text(
        "backend: {name: openai, base_urls: ['http://p:1/v1'], served_model_name: policy,"
        " tensor_parallel_size: 1}\n"
        "proposals: {model: org/big-proposer, backend: {tensor_parallel_size: 8}}\n"
    )
    assert main(["--params", str(params), "--section", "proposals", "--print"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert _value(argv, "--model") == "org/big-proposer"
    assert _value(argv, "--served-model-name") == "org/big-proposer"  # not the policy's name
    assert _value(argv, "--tensor-parallel-size") == "8"
