"""Artifacts: schema validation on write and read, provenance metadata, atomic replacement."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from intervention_training.artifacts import (
    ArtifactError,
    read_artifact,
    read_metadata,
    write_artifact,
)


def problem(pid="p1", **kw):
    row = {
        "problem_id": pid,
        "problem": "What is 1+1?",
        "answer": "2",
        "reference_solution": "1+1=2",
        "source": "test",
        "split": "train",
    }
    row.update(kw)
    return row


def test_round_trip_keeps_rows_and_provenance(tmp_path):
    path = tmp_path / "problems.parquet"
    write_artifact(
        [problem("a"), problem("b")], path, "problems", provenance={"seed": 3}, summary={"kept": 2}
    )
    table = read_artifact(path, "problems")
    assert table.column("problem_id").to_pylist() == ["a", "b"]
    meta = read_metadata(path)
    assert meta["schema"] == "problems"
    assert meta["provenance"]["seed"] == 3
    assert "package_version" in meta["provenance"]
    assert meta["summary"] == {"kept": 2}


def test_write_rejects_missing_and_extra_columns(tmp_path):
    row = problem()
    del row["answer"]
    with pytest.raises(ArtifactError, match="answer"):
        write_artifact([row], tmp_path / "x.parquet", "problems")
    with pytest.raises(ArtifactError, match="surprise"):
        write_artifact([problem(surprise=1)], tmp_path / "x.parquet", "problems")


def test_write_rejects_null_in_required_column_naming_row(tmp_path):
    with pytest.raises(ArtifactError, match=r"row 1, column 'answer'"):
        write_artifact(
            [problem("a"), problem("b", answer=None)], tmp_path / "x.parquet", "problems"
        )


def test_read_names_file_and_mistyped_column(tmp_path):
    path = tmp_path / "problems.parquet"
    table = pa.Table.from_pylist([problem()]).set_column(
        2, "answer", pa.array([2], type=pa.int64())
    )
    pq.write_table(table, path)
    with pytest.raises(ArtifactError) as err:
        read_artifact(path, "problems")
    assert str(path) in str(err.value) and "'answer'" in str(err.value)


def test_read_refuses_other_artifact_and_missing_file(tmp_path):
    path = tmp_path / "p.parquet"
    write_artifact([problem()], path, "problems")
    with pytest.raises(ArtifactError, match="expected 'rollouts'"):
        read_artifact(path, "rollouts")
    with pytest.raises(ArtifactError, match="not found"):
        read_artifact(tmp_path / "missing.parquet", "problems")


def test_failed_write_leaves_previous_artifact_and_no_temp_files(tmp_path):
    path = tmp_path / "problems.parquet"
    write_artifact([problem("old")], path, "problems")
    with pytest.raises(ArtifactError):
        write_artifact([problem("new", answer=None)], path, "problems")
    assert read_artifact(path, "problems").column("problem_id").to_pylist() == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problems.parquet"]


def test_interrupted_rename_keeps_old_file(tmp_path, monkeypatch):
    import os

    path = tmp_path / "problems.parquet"
    write_artifact([problem("old")], path, "problems")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_artifact([problem("new")], path, "problems")
    monkeypatch.undo()
    assert read_artifact(path, "problems").column("problem_id").to_pylist() == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["problems.parquet"]


def test_every_artifact_is_known_from_a_fresh_interpreter(tmp_path):
    """No schema is registered by importing some other module: a new process that imports only
    the artifact layer reads every artifact, evaluation samples included."""
    import subprocess
    import sys

    from intervention_training.artifacts import write_artifact
    from intervention_training.schemas import KEYS, SCHEMAS

    assert set(KEYS) == set(SCHEMAS)
    for name, key in KEYS.items():
        assert key in SCHEMAS[name].names, (name, key)
    sample = {
        "eval_id": "heldout/p1/0",
        "model": "base",
        "benchmark": "heldout",
        "problem_id": "p1",
        "sample_id": 0,
        "reference": "3",
        "reference_gradable": True,
        "completion": "\\boxed{3}",
        "n_tokens": 4,
        "finish_reason": "stop",
        "seed": 1,
        "status": "correct",
        "extracted": "3",
        "detail": None,
        "judge_verdict": None,
        "correct": True,
        "answer_group": 0,
    }
    path = tmp_path / "eval" / "base.parquet"
    path.parent.mkdir()
    write_artifact([sample], path, "eval_samples")
    code = (
        "import sys; from intervention_training.artifacts import read_artifact; "
        "print(read_artifact(sys.argv[1], 'eval_samples').column('eval_id')[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "heldout/p1/0"
    shown = subprocess.run(
        [sys.executable, "-m", "intervention_training.cli", "show", str(path)],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "heldout/p1/0" in shown.stdout
