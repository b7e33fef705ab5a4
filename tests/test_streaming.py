"""Streaming stages: batch-by-batch artifact I/O gives the same artifacts as the in-memory path.

Every test here runs the file-level stage functions with tiny batches (2-3 rows), so each
cross-batch case (an attempt's proposals split over batches, a repeated answer graded in an
earlier batch, an SFT row whose rollout comes in a later batch) is exercised.
"""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracles import build_interventions, build_sft_rows, grade_rollouts, unchecked_selection

from intervention_training import grading
from intervention_training.artifacts import (
    ArtifactError,
    ArtifactWriter,
    count_rows,
    iter_artifact,
    read_artifact,
    read_metadata,
    write_artifact,
)
from intervention_training.config import GradingParams, InterventionsParams, SftDataParams
from intervention_training.grades import write_grades
from intervention_training.interventions import write_interventions
from intervention_training.readers import read_answers
from intervention_training.schemas import SCHEMAS
from intervention_training.sft_data import write_sft_data


def problem(pid, answer):
    return {
        "problem_id": pid,
        "problem": f"Problem {pid}",
        "answer": answer,
        "reference_solution": f"Worked solution of {pid}.",
        "source": "t",
        "split": "train",
    }


def rollout(pid, k, boxed, finish="stop"):
    return {
        "rollout_id": f"{pid}/{k}",
        "problem_id": pid,
        "sample_id": k,
        "prompt": f"PROMPT {pid}:",
        "completion": f"Step one for {pid}.\n\nStep two, sample {k}.\n\nSo \\boxed{{{boxed}}}.",
        "n_tokens": 12,
        "finish_reason": finish,
        "seed": k,
    }


def proposal(rid, pid, j, text, n_steps=3):
    return {
        "proposal_id": f"{rid}/{j}",
        "rollout_id": rid,
        "problem_id": pid,
        "sample_id": int(rid.rsplit("/", 1)[1]),
        "proposal_index": j,
        "n_steps": n_steps,
        "status": "generated" if text is not None else "skipped",
        "skip_reason": None if text is not None else "prompt_too_long",
        "reference_turn": "ref",
        "verification": "audit",
        "text": text,
        "n_tokens": 5,
        "finish_reason": "stop",
        "seed": j,
        "constrained": True,
    }


def block(content, location):
    body = json.dumps({"content": content, "location": location})
    return f"audit ...<intervention>{body}</intervention>"


PROBLEMS = [problem("a", "42"), problem("b", "\\frac{1}{2}"), problem("c", "7")]
ROLLOUTS = [
    rollout("a", 0, "41"),
    rollout("a", 1, "42"),
    rollout("b", 0, "0.5"),
    rollout("b", 1, "1/3"),
    rollout("a", 2, "41"),  # same wrong answer as a/0, two batches later
    rollout("c", 0, "8", finish="length"),
    rollout("c", 1, "8"),
    rollout("b", 2, "\\dfrac{1}{2}"),
]


@pytest.fixture
def workspace(tmp_path):
    write_artifact(PROBLEMS, tmp_path / "problems.parquet", "problems")
    write_artifact(ROLLOUTS, tmp_path / "rollouts.parquet", "rollouts")
    return tmp_path


# -- artifact layer -------------------------------------------------------------------------------


def test_writer_appends_batches_and_keeps_summary_and_provenance(tmp_path):
    path = tmp_path / "rollouts.parquet"
    with ArtifactWriter(path, "rollouts", provenance={"seed": 9}, row_group_rows=3) as w:
        for i in range(0, len(ROLLOUTS), 3):
            w.write(ROLLOUTS[i : i + 3])
        w.summary = {"rows": w.rows_written}
    assert read_artifact(path, "rollouts").to_pylist() == ROLLOUTS
    meta = read_metadata(path)
    assert meta["summary"] == {"rows": 8} and meta["provenance"]["seed"] == 9
    assert read_artifact(path, "rollouts").schema.metadata[b"int.summary"] == b'{"rows": 8}'
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert count_rows(path, "rollouts") == 8


def test_writer_failure_in_a_later_batch_keeps_the_old_artifact(tmp_path):
    path = tmp_path / "rollouts.parquet"
    write_artifact(ROLLOUTS[:1], path, "rollouts")
    bad = {**ROLLOUTS[3], "completion": None}
    with pytest.raises(ArtifactError, match=r"rollouts: row 3, column 'completion'"):
        with ArtifactWriter(path, "rollouts") as w:
            w.write(ROLLOUTS[:2])
            w.write([ROLLOUTS[2], bad])
    assert read_artifact(path, "rollouts").to_pylist() == ROLLOUTS[:1]
    assert [p.name for p in tmp_path.iterdir()] == ["rollouts.parquet"]


def test_iter_artifact_yields_batches_and_numbers_bad_rows_in_the_file(tmp_path):
    path = tmp_path / "rollouts.parquet"
    write_artifact(ROLLOUTS, path, "rollouts")
    batches = list(iter_artifact(path, "rollouts", batch_rows=3, columns=("rollout_id",)))
    assert [len(b) for b in batches] == [3, 3, 2]
    assert [r for b in batches for r in b] == [{"rollout_id": r["rollout_id"]} for r in ROLLOUTS]
    # a file written by another tool with a null in row 6 of 8
    loose = pa.schema([f.with_nullable(True) for f in SCHEMAS["rollouts"]])
    table = pa.Table.from_pylist(
        [{**r, "prompt": None} if i == 6 else r for i, r in enumerate(ROLLOUTS)], schema=loose
    )
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(ArtifactError, match=rf"{bad}: row 6, column 'prompt'"):
        for _ in iter_artifact(bad, "rollouts", batch_rows=3):
            pass


def test_read_artifact_columns_and_unknown_column(tmp_path):
    path = tmp_path / "problems.parquet"
    write_artifact(PROBLEMS, path, "problems")
    assert read_artifact(path, "problems", columns=("answer",)).column_names == ["answer"]
    assert read_answers(path) == {"a": "42", "b": "\\frac{1}{2}", "c": "7"}
    with pytest.raises(ValueError, match="no column"):
        read_artifact(path, "problems", columns=("nope",))


# -- grades ---------------------------------------------------------------------------------------


def test_streamed_grades_equal_in_memory_grades_and_reuse_verdicts(workspace, monkeypatch):
    answers = read_answers(workspace / "problems.parquet")
    params = GradingParams(workers=1)
    rows, rates, summary = grade_rollouts(ROLLOUTS, answers, params)

    sent = []
    inner = grading._call_many

    def counting(requests, timeout_s, workers):
        sent.extend((r["candidate"], r["reference"]) for r in requests)
        return inner(requests, timeout_s, workers)

    monkeypatch.setattr(grading, "_call_many", counting)
    streamed = write_grades(
        workspace / "problems.parquet",
        workspace / "rollouts.parquet",
        workspace / "grades.parquet",
        workspace / "pass_rates.parquet",
        params,
        batch_rows=2,
    )
    assert read_artifact(workspace / "grades.parquet", "grades").to_pylist() == rows
    assert read_artifact(workspace / "pass_rates.parquet", "pass_rates").to_pylist() == rates
    assert streamed == summary and read_metadata(workspace / "grades.parquet")["summary"] == summary
    # a/0 and a/2 share ("41", "42") in different batches: verified once
    assert sent.count(("41", "42")) == 1
    assert len(sent) == len(set(sent)) == 6  # 41, 42, 0.5, 1/3, 8 (c/1), \dfrac{1}{2}
    assert [r["n_correct"] for r in rates] == [1, 2, 0] and summary["status"]["truncated"] == 1


# -- interventions --------------------------------------------------------------------------------


def proposals_fixture():
    """Proposals of three attempts, shuffled so an attempt's rows are spread over the file."""
    same = "Multiply instead of adding: 6 times 7."
    rows = [
        proposal("a/0", "a", 0, block(same, 2)),
        proposal("a/0", "a", 1, block("  multiply INSTEAD of adding:  6 times 7. ", 2)),  # dup
        proposal("a/0", "a", 2, block("Check the first step again.", 1)),
        proposal("a/0", "a", 3, "no block"),
        proposal("b/1", "b", 0, block("Halve it, do not double it.", 3)),
        proposal("b/1", "b", 1, None),  # skipped
        proposal("b/1", "b", 2, block("Halve it, do not double it.", 2)),
        proposal("c/1", "c", 0, block("Subtract one at the end.", 9)),  # out of range
    ]
    random.Random(3).shuffle(rows)
    return rows


@pytest.mark.parametrize(
    "params",
    [
        InterventionsParams(),
        InterventionsParams(dedup="first_proposal", max_per_attempt=2),
        InterventionsParams(dedup="none"),
    ],
    ids=["earliest_location", "first_proposal_2", "none"],
)
def test_streamed_interventions_equal_in_memory(workspace, params):
    props = proposals_fixture()
    write_artifact(props, workspace / "proposals.parquet", "proposals")
    answers = read_answers(workspace / "problems.parquet")
    expected, summary = build_interventions(props, answers, params)
    out = workspace / "interventions.parquet"
    streamed = write_interventions(
        workspace / "problems.parquet", workspace / "proposals.parquet", out, params, batch_rows=3
    )
    assert read_artifact(out, "interventions").to_pylist() == expected
    assert streamed == summary == read_metadata(out)["summary"]
    assert sorted(p.name for p in workspace.iterdir()) == [
        "interventions.parquet",
        "problems.parquet",
        "proposals.parquet",
        "rollouts.parquet",
    ]  # no temporary file left


def test_interventions_dedup_is_across_batches():
    """The earliest location wins per attempt even when it arrives in a later batch."""
    from intervention_training.interventions import InterventionFilter

    props = [
        proposal("a/0", "a", 0, block("Fix step three.", 3)),
        proposal("b/1", "b", 0, block("Fix step two.", 2)),
        proposal("a/0", "a", 1, block("Fix step one.", 1)),
    ]
    chain = InterventionFilter({"a": "42", "b": "1"}, InterventionsParams(max_per_attempt=1))
    rows = chain.filter(props[:2]) + chain.filter(props[2:])
    assert all(r["kept"] for r in rows)  # before deduplication
    assert chain.duplicates() == {0}  # a/0/0 (location 3) loses to a/0/1 (location 1)
    assert chain.summary()["kept"] == 2 and chain.summary()["dropped"] == {"duplicate": 1}


# -- sft_data -------------------------------------------------------------------------------------


def _kept_and_selected(workspace):
    props = proposals_fixture()
    answers = read_answers(workspace / "problems.parquet")
    ivs, _ = build_interventions(props, answers, InterventionsParams(max_per_attempt=2))
    write_artifact(ivs, workspace / "interventions.parquet", "interventions")
    kept = [iv for iv in ivs if iv["kept"]]
    sel = [
        {
            "proposal_id": iv["proposal_id"],
            "rollout_id": iv["rollout_id"],
            "problem_id": iv["problem_id"],
            "n_continuations": 0,
            "n_correct": 0,
            "selected": i != 1,  # one kept intervention not selected
        }
        for i, iv in enumerate(kept)
    ]
    write_artifact(sel, workspace / "selected.parquet", "selected")
    return ivs, sel


def _write_sft(workspace, *, source="interventions", eot=None, batch_rows=None):
    """The sft_data entry point on the workspace; ``eot`` stands in for the model tokenizer's
    end-of-turn text (the model folder is read only for it)."""
    import intervention_training.sft_data as sft_data

    original = sft_data.end_of_turn_text
    sft_data.end_of_turn_text = lambda model_dir: eot
    try:
        return write_sft_data(
            workspace / "problems.parquet",
            workspace / "rollouts.parquet",
            workspace / "interventions.parquet",
            workspace / "selected.parquet",
            workspace / "no-model",
            workspace / "sft.parquet",
            SftDataParams(source=source, end_of_turn=eot is not None),
            batch_rows=batch_rows,
        )
    finally:
        sft_data.end_of_turn_text = original


def test_streamed_sft_rows_equal_in_memory_rows(workspace):
    ivs, sel = _kept_and_selected(workspace)
    expected = build_sft_rows(
        sel,
        {iv["proposal_id"]: iv for iv in ivs},
        {r["rollout_id"]: r for r in ROLLOUTS},
        end_of_turn_text="<eot>",
    )
    assert len(expected) == sum(s["selected"] for s in sel) >= 3
    summary = _write_sft(workspace, eot="<eot>", batch_rows=2)
    got = read_artifact(workspace / "sft.parquet", "sft").to_pylist()
    assert sorted(got, key=lambda r: r["proposal_id"]) == expected
    # rollouts' order (a/0 comes before b/1 in the rollouts file), proposal id within an attempt
    order = [r["rollout_id"] for r in ROLLOUTS]
    keys = [(order.index(r["rollout_id"]), r["proposal_id"]) for r in got]
    assert keys == sorted(keys)
    assert summary == {
        "rows": len(expected),
        "problems": len({r["problem_id"] for r in expected}),
        "end_of_turn": True,
        "source": "interventions",
    }


def test_sft_reference_rows_streamed(workspace):
    _kept_and_selected(workspace)
    summary = _write_sft(workspace, source="reference")
    got = read_artifact(workspace / "sft.parquet", "sft").to_pylist()
    assert [r["proposal_id"] for r in got] == ["reference/a", "reference/b", "reference/c"]
    assert got[1]["prompt"] == "PROMPT b:" and got[1]["completion"] == "Worked solution of b."
    assert summary["rows"] == 3


def test_sft_missing_rollout_is_a_clear_error_and_keeps_the_old_file(workspace):
    _kept_and_selected(workspace)
    _write_sft(workspace)
    before = (workspace / "sft.parquet").read_bytes()
    write_artifact(
        [r for r in ROLLOUTS if r["rollout_id"] != "b/1"],
        workspace / "rollouts.parquet",
        "rollouts",
    )
    with pytest.raises(ArtifactError, match=r"rollouts.parquet: 1 attempt\(s\) with a selected"):
        _write_sft(workspace, batch_rows=2)
    assert (workspace / "sft.parquet").read_bytes() == before


def test_sft_selected_but_not_kept_is_an_error(workspace):
    ivs, sel = _kept_and_selected(workspace)
    dropped = next(iv for iv in ivs if not iv["kept"])
    sel.append({**sel[0], "proposal_id": dropped["proposal_id"], "selected": True})
    write_artifact(sel, workspace / "selected.parquet", "selected")
    with pytest.raises(ArtifactError, match="selected but .* not kept"):
        _write_sft(workspace)


# -- guided (switched off) ------------------------------------------------------------------------


def test_unchecked_selection_streamed_equals_the_oracle(workspace):
    from intervention_training.config import GuidedParams
    from intervention_training.guided import write_unchecked_selection

    props = proposals_fixture()
    ivs, _ = build_interventions(props, {"a": "42", "b": "1", "c": "7"}, InterventionsParams())
    write_artifact(ivs, workspace / "interventions.parquet", "interventions")
    params = GuidedParams(enabled=False)
    expected = unchecked_selection(ivs)
    summary = write_unchecked_selection(
        workspace / "interventions.parquet",
        workspace / "selected.parquet",
        workspace / "continuations.parquet",
        params,
    )
    assert read_artifact(workspace / "selected.parquet", "selected").to_pylist() == expected
    assert read_artifact(workspace / "continuations.parquet", "continuations").num_rows == 0
    assert summary["selected"] == len(expected) == sum(iv["kept"] for iv in ivs) > 0
    with pytest.raises(ValueError, match="enabled"):
        write_unchecked_selection(
            workspace / "interventions.parquet",
            workspace / "selected.parquet",
            workspace / "continuations.parquet",
            GuidedParams(enabled=True),
        )


def test_batches_and_row_groups_are_sized_by_bytes(tmp_path, monkeypatch):
    from intervention_training import artifacts

    monkeypatch.setattr(artifacts, "BATCH_BYTES", 4_000)  # about 1 kB per row below
    rows = [{**ROLLOUTS[0], "rollout_id": f"a/{i}", "completion": "x" * 1000} for i in range(20)]
    path = tmp_path / "rollouts.parquet"
    write_artifact(rows, path, "rollouts")
    assert 4 <= pq.ParquetFile(path).metadata.num_row_groups <= 10
    sizes = [len(b) for b in iter_artifact(path, "rollouts")]
    assert sum(sizes) == 20 and 2 <= max(sizes) <= 4
    # a narrow column set is read in larger batches
    ids = [len(b) for b in iter_artifact(path, "rollouts", columns=("rollout_id",))]
    assert max(ids) > max(sizes)


def test_grade_summary_does_not_depend_on_the_rollouts_order():
    # pass rates 1/3 (p2), 3/10 (p3), 2/3 (p1): summed in file order the float differs
    plan = {"p2": (1, 3), "p3": (3, 10), "p1": (2, 3)}
    rows = [
        rollout(pid, k, "42" if k < c else "41") for pid, (c, n) in plan.items() for k in range(n)
    ]
    answers = dict.fromkeys(plan, "42")
    _, _, in_file_order = grade_rollouts(rows, answers, GradingParams(workers=1))
    by_problem = sorted(rows, key=lambda r: r["problem_id"])
    _, _, sorted_order = grade_rollouts(by_problem, answers, GradingParams(workers=1))
    assert in_file_order == sorted_order
    assert in_file_order["mean_pass_rate"] == (2 / 3 + 1 / 3 + 3 / 10) / 3
