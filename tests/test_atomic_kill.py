"""A process killed (SIGKILL) while writing an artifact leaves the old artifact or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intervention_training.artifacts import ArtifactError, read_artifact

WRITER = r"""
import sys
from intervention_training.artifacts import write_artifact
path, tag = sys.argv[1], sys.argv[2]
rows = [{"problem_id": f"{tag}-{i}", "problem": "p" * 2000, "answer": "1",
         "reference_solution": "s" * 2000, "source": tag, "split": "train"} for i in range(4000)]
print("ready", flush=True)
while True:
    write_artifact(rows, path, "problems")
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45, 0.8])
def test_sigkill_during_write_never_leaves_a_partial_artifact(tmp_path, delay):
    path = tmp_path / "problems.parquet"
    first = subprocess.run(
        [sys.executable, "-c", WRITER.replace("while True:", "if True:"), str(path), "old"],
        check=True,
        capture_output=True,
    )
    assert first.returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "new"], stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        table = read_artifact(path, "problems")
    except ArtifactError as exc:  # pragma: no cover - this is the failure being tested for
        pytest.fail(f"partial artifact after SIGKILL: {exc}")
    assert table.num_rows == 4000
    assert set(table.column("source").to_pylist()) <= {"old", "new"}
    leftovers = [p.name for p in Path(tmp_path).iterdir() if p.name != "problems.parquet"]
    # a temporary file may remain after a kill; it never has the artifact's name
    assert all(name.startswith(".problems.parquet.") for name in leftovers)
