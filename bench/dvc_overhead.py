"""Pipeline overhead under DVC: a no-op ``dvc repro sft_data`` and a rerun after a late change.

Usage (from the repository root):

    .venv/bin/python bench/dvc_overhead.py [--quick] [--keep]

Builds a temporary workspace as ``tests/test_pipeline_dvc.py`` does (copies the pipeline files,
the tiny random model from ``tests/tiny_model.py``, small parameters, ``git init``), runs
``dvc repro sft_data`` once to fill it (timed, not the point), then times:

* a no-op ``dvc repro sft_data`` (nothing changed: every stage should be skipped);
* ``interventions.max_per_attempt`` 1 -> 2 (should rerun interventions, guided, sft_data);
* ``sft_data.end_of_turn`` false -> true (should rerun sft_data only);
* another no-op.

Reports seconds and the stages that ran (parsed from ``Running stage '...'``).
``--quick`` skips the second no-op.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, machine, table

sys.path.insert(0, str(REPO / "tests"))
from workspace import make_workspace  # noqa: E402
from workspace import stages_run as _stages_run  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DVC_NO_ANALYTICS="1")
    return env


def run(cmd: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return dt, out


def stages_run(output: str) -> list[str]:
    return sorted(_stages_run(output))


def build_workspace(ws: Path) -> None:
    """The same small workspace the slow pipeline tests use (tests/workspace.py)."""
    make_workspace(ws)


def set_param(ws: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params[section][key] = value
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def measure(ws: Path, quick: bool) -> list[list[object]]:
    repro = [sys.executable, "-m", "dvc", "repro", "sft_data"]
    rows: list[list[object]] = []
    dt, out = run(repro, ws)
    rows.append(["first run (fills the workspace)", dt, ", ".join(stages_run(out)) or "-"])
    dt, out = run(repro, ws)
    rows.append(["no-op repro", dt, ", ".join(stages_run(out)) or "none"])
    set_param(ws, "interventions", "max_per_attempt", 2)
    dt, out = run(repro, ws)
    rows.append(["interventions.max_per_attempt 1 -> 2", dt, ", ".join(stages_run(out)) or "none"])
    set_param(ws, "sft_data", "end_of_turn", True)
    dt, out = run(repro, ws)
    rows.append(["sft_data.end_of_turn false -> true", dt, ", ".join(stages_run(out)) or "none"])
    if not quick:
        dt, out = run(repro, ws)
        rows.append(["no-op repro (again)", dt, ", ".join(stages_run(out)) or "none"])
    # the bare cost of starting dvc, for scale
    dt, _ = run([sys.executable, "-m", "dvc", "--version"], ws)
    rows.append(["`dvc --version` (start-up only)", dt, "-"])
    dt, out = run([sys.executable, "-m", "dvc", "status"], ws)
    rows.append(["`dvc status`", dt, "-"])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    tmp = Path(tempfile.mkdtemp(prefix="int_bench_dvc_"))
    ws = tmp / "ws"
    ws.mkdir()
    try:
        build_workspace(ws)
        rows = measure(ws, args.quick)
    finally:
        if args.keep:
            print(f"workspace kept: {ws}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(table(["run", "seconds", "stages that ran"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
