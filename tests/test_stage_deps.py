"""dvc.yaml lists, for every stage, exactly the code it runs (its import closure), no more.

The closure is computed statically from each stage's script (scripts/stage_deps.py); a stage
that lists a module it does not import would rerun for nothing (hours of GPU for generation),
and one that misses a module it imports would not rerun when that module changes its output.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("stage_deps", ROOT / "scripts/stage_deps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage_deps"] = module
    spec.loader.exec_module(module)
    return module


deps = _load_tool()
STAGES = deps.dvc_stages()
GENERATING = ("problems", "rollouts", "proposals", "guided")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_yaml_lists_exactly_the_stage_import_closure(stage):
    spec = STAGES[stage]
    listed = deps.listed_code_deps(spec)
    expected = deps.expected_deps(deps.stage_entries(spec["cmd"]))
    assert [d for d, n in Counter(spec["deps"]).items() if n > 1] == [], "a dep listed twice"
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    assert (missing, extra) == ([], []), (
        f"dvc.yaml stage {stage!r}: add {missing}, remove {extra} "
        "(python scripts/stage_deps.py prints every stage's list)"
    )


@pytest.mark.parametrize("stage", GENERATING)
def test_generation_does_not_depend_on_evaluation_code(stage):
    entries = deps.stage_entries(STAGES[stage]["cmd"])
    files = {str(p.relative_to(ROOT)) for e in entries for p in deps.closure(e)}
    for module in ("benchmarks.py", "evaluate.py", "metrics.py", "judge.py"):
        assert f"intervention_training/evaluation/{module}" not in files, (stage, module)
    assert not any(f.startswith("intervention_training/cli/") for f in files)


def test_the_closure_follows_lazy_imports_and_worker_scripts():
    files = {str(p.relative_to(ROOT)) for p in deps.closure(ROOT / "stages/grades.py")}
    # the grader runs math-verify in worker processes started from a script path
    assert "intervention_training/grading/_worker.py" in files
    assert "intervention_training/grading/_equivalence.py" in files
    files = {str(p.relative_to(ROOT)) for p in deps.closure(ROOT / "stages/rollouts.py")}
    # backends are imported inside make_backend, only when chosen
    assert "intervention_training/generation/vllm_backend.py" in files
    assert "intervention_training/generation/transformers_backend.py" in files
    files = {str(p.relative_to(ROOT)) for p in deps.closure(ROOT / "stages/sft.py")}
    assert "intervention_training/generation/vllm_backend.py" not in files
