"""A temporary copy of the repository with a tiny model, for end-to-end DVC runs.

Shared by the slow pipeline tests and bench/dvc_overhead.py (a helper module, not a test file).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPY = [
    "dvc.yaml",
    "configs",
    "params.yaml",
    "pyproject.toml",
    "stages",
    "intervention_training",
    ".dvc",
    ".dvcignore",
    ".gitignore",
]


def run_env() -> dict[str, str]:
    """The environment of a workspace command: this interpreter's folder first on PATH, no hub."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` with this interpreter's folder first on PATH (or in ``env``); fail with its
    output."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env or run_env(), capture_output=True, text=True, timeout=timeout
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-4000:]}")
    return out


def stages_run(output: str) -> set[str]:
    """Names of the stages a `dvc repro` output says it ran."""
    return set(re.findall(r"Running stage '([\w@-]+)'", output))


def small_params(model: Path) -> dict[str, Any]:
    """params.yaml shrunk for a tiny random model: every data stage in seconds."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["name"] = str(model)  # a local folder is passed through unchanged
    params["problems"].update(limit=6, eval_fraction=0.34)
    # The default backend is vLLM's CPU build; workspaces run transformers unless a test says
    # otherwise (the vllm tier sets name: vllm with a tiny model vLLM's CPU attention accepts).
    params["backend"].update(name="transformers", dtype="float32", batch_size=8, shard_requests=8)
    params["rollouts"].update(samples_per_problem=2)
    params["rollouts"]["sampling"]["max_new_tokens"] = 48
    params["proposals"].update(
        per_attempt=2,
        reference_turn_max_new_tokens=24,
        verification_max_new_tokens=24,
        block_max_new_tokens=48,
        block_content_max_chars=60,
    )
    params["guided"].update(enabled=True, continuations=2, min_correct=0)
    params["guided"]["sampling"]["max_new_tokens"] = 16
    params["locate_eval"].update(items=4, bootstrap=200)
    params["continuation_sources"].update(continuations=2, bootstrap=200)
    params["continuation_sources"]["sampling"]["max_new_tokens"] = 16
    params["diagnostics"].update(max_rows=8, max_samples=8, device="cpu", bootstrap=200)
    return params


def make_workspace(
    ws: Path, tweak: Callable[[dict[str, Any]], None] | None = None, *, heads: int = 4
) -> Path:
    """Copy the repository into ``ws``, build the tiny model beside it (``heads=1`` for vLLM),
    write small params."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model

    ws.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "cache", "tmp")
            shutil.copytree(src, ws / name, ignore=ignore)
        else:
            shutil.copy2(src, ws / name)
    params = small_params(build_tiny_model(ws.parent / "tiny-model", heads=heads))
    if tweak is not None:
        tweak(params)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], ws)
    return ws


def sft_rows(tokenizer) -> list[dict]:
    """Four SFT rows (one problem) for the training tests: short completions of mixed shapes."""
    from intervention_training.prompts import rollout_prompt

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
