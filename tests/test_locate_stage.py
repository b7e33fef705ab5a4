"""The locate_eval stage: CHAMP's annotated solutions through the project's own self-verification.

The scoring arithmetic and the mapping of spans to steps are tested in test_locate_eval.py; here,
that a proposer's block reaches the score (a scripted backend as the proposer) and that the DVC
stage writes its artifact and metrics with a real model (the tiny random one: chance level).
"""

from __future__ import annotations

import json
import sys

import pytest
from fakes import ScriptedBackend

from intervention_training.config import ProposalsParams
from intervention_training.locate_eval import load_annotated, locate, locate_metrics

BLOCK = '{"content": "Check the case n = 1 first.", "location": %d}'


def _three_rows():
    rows = [r for r in load_annotated() if 3 <= r["n_steps"] <= 12 and r["annotated_step"] >= 2]
    by_problem = {}
    for r in rows:  # three different problems, so a prompt names its row
        by_problem.setdefault(r["problem_id"], r)
    return list(by_problem.values())[:3]


def test_the_proposers_location_is_scored_against_the_annotation(tiny_tokenizer):
    rows = _three_rows()
    first, second, third = rows
    answers = {
        first["problem_id"]: BLOCK % first["annotated_step"],  # exact
        second["problem_id"]: BLOCK % 1,  # before the annotated step: too early
        third["problem_id"]: "no block at all",  # nothing to parse
    }

    def script(request, j):
        if request.json_schema is None:
            return "Looking at each substep in turn."
        (pid,) = [pid for pid in answers if rows_by_id[pid]["problem"] in request.prompt]
        return answers[pid]

    rows_by_id = {r["problem_id"]: r for r in rows}
    backend = ScriptedBackend(tiny_tokenizer, script)
    params = ProposalsParams(per_attempt=3, constrained_block=True)
    scored = locate(rows, backend, params)
    # one proposal per solution whatever proposals.per_attempt says
    assert all(req.n == 1 for call in backend.calls for req in call)
    assert [r["item_id"] for r in scored] == [r["item_id"] for r in rows]
    a, b, c = scored
    assert (a["predicted"], a["outcome"], a["within_one"]) == (
        first["annotated_step"],
        "exact",
        True,
    )
    assert (b["predicted"], b["outcome"]) == (1, "too_early")
    assert b["within_one"] == (second["annotated_step"] == 2)
    assert (c["predicted"], c["outcome"], c["within_one"]) == (None, "no_parse", False)
    assert a["parse_status"] == "ok" and c["parse_status"] != "ok"
    # the solution went in as the attempt: its steps are numbered in the verification prompt
    verify = [req for call in backend.calls for req in call if req.json_schema is None]
    assert any(first["span_text"].split()[0] in req.prompt for req in verify)

    table = locate_metrics(scored, n_boot=50)
    assert table["locator"]["n"] == 3
    assert table["locator"]["exact"] == pytest.approx(1 / 3, abs=1e-4)
    assert table["locator"]["no_parse"] == pytest.approx(1 / 3, abs=1e-4)
    # step 1 is never the annotated step of these rows
    assert table["always_first"]["exact"] == 0.0 and table["always_first"]["too_early"] == 1.0
    assert {"uniform_random", "prior_by_position"} <= set(table)
    lo, hi = table["locator"]["exact_lo"], table["locator"]["exact_hi"]
    assert lo <= table["locator"]["exact"] <= hi


@pytest.mark.slow
def test_locate_eval_stage_writes_scored_rows_and_dvc_metrics(tmp_path):
    from workspace import make_workspace, run

    from intervention_training.artifacts import read_artifact

    ws = make_workspace(tmp_path / "ws")
    run([sys.executable, "-m", "dvc", "repro", "locate_eval"], ws)
    rows = read_artifact(ws / "data/locate_eval.parquet", "locate_eval").to_pylist()
    known = {r["item_id"]: r for r in load_annotated()}
    assert len(rows) == 4 and all(r["item_id"] in known for r in rows)
    for r in rows:  # the annotation as loaded, the prediction scored
        assert r["annotated_step"] == known[r["item_id"]]["annotated_step"]
        assert r["outcome"] in ("exact", "too_early", "too_late", "no_parse")
        assert (r["predicted"] is None) == (r["outcome"] == "no_parse")
    metrics = json.loads((ws / "metrics/locate_eval.json").read_text())
    assert set(metrics) >= {"locator", "always_first", "uniform_random", "prior_by_position"}
    assert metrics["locator"]["n"] == 4
    shown = run([sys.executable, "-m", "dvc", "metrics", "show"], ws)
    assert "locate_eval.json" in shown and "locator.exact" in shown  # beside the others
