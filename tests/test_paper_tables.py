"""The paper's Table 1 and Table 2 as DVC runs with the tiny random model (slow tier).

Table 1: the continuation_sources stage writes one artifact with a `source` column and one
metrics row per source. Table 2: an SFT data variant trains and is evaluated on the training
problems (an evaluation benchmark with `source: train`). The arithmetic and the rows' tokens are
tested in test_continuation_sources.py and test_sft_data.py; here, that the commands a user runs
produce every row.
"""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.slow


def test_table_1_continuation_sources_stage(tmp_path):
    from workspace import make_workspace, run

    from intervention_training.artifacts import read_artifact

    def tweak(params: dict) -> None:
        params["grading"]["hard_only"] = True

    ws = make_workspace(tmp_path / "ws", tweak)
    run([sys.executable, "-m", "dvc", "repro", "continuation_sources"], ws)
    rows = read_artifact(ws / "data/continuation_sources.parquet", "continuation_sources")
    rows = rows.to_pylist()
    metrics = json.loads((ws / "metrics/continuation_sources.json").read_text())
    kept = [
        r
        for r in read_artifact(ws / "data/interventions.parquet", "interventions").to_pylist()
        if r["kept"]
    ]
    sources = ("problem_only", "prefix_resample", "prefix_with_error", "prefix_intervention")
    assert kept, "the tiny model's run kept no intervention: nothing to continue"
    assert {r["source"] for r in rows} == set(sources)
    for source in sources:
        assert metrics[source]["continuations"] == sum(r["source"] == source for r in rows) > 0
    assert "skipped" in metrics["stronger_proposer"]  # no separate proposer configured
    shown = run([sys.executable, "-m", "dvc", "metrics", "show"], ws)
    assert "continuation_sources.json" in shown


def test_table_2_variant_trained_and_measured_on_the_training_problems(tmp_path):
    from workspace import make_workspace, run

    from intervention_training.artifacts import read_artifact

    def tweak(params: dict) -> None:
        params["sft_data"]["variant"] = "intervention_only"
        params["evaluation"]["benchmarks"].append({"name": "train", "source": "train"})

    ws = make_workspace(tmp_path / "ws", tweak)
    run([sys.executable, "-m", "dvc", "repro", "eval_metrics@sft"], ws)
    sft = read_artifact(ws / "data/sft.parquet", "sft").to_pylist()
    assert sft and all(r["prefix"] == "" and r["completion"] == r["intervention"] for r in sft)
    problems = read_artifact(ws / "data/problems.parquet", "problems").to_pylist()
    train_ids = {p["problem_id"] for p in problems if p["split"] == "train"}
    samples = read_artifact(ws / "data/eval/sft.parquet", "eval_samples").to_pylist()
    assert {s["problem_id"] for s in samples if s["benchmark"] == "train"} == train_ids
    metrics = json.loads((ws / "metrics/eval_sft.json").read_text())
    train = metrics["train"]  # Table 2's numbers: coverage and accuracy on the training problems
    assert train["problems"] == len(train_ids)
    assert 0 <= train["coverage"] <= train["problems"]
    assert train["accuracy_lo"] <= train["accuracy"] <= train["accuracy_hi"]


# --- each table in one command: scripts/paper_table.sh ------------------------------------------
#
# One committed workspace for the four commands (module scope), so that later tables reuse the
# stages earlier ones ran (DVC's run cache), as they would in a user's repository. Every row of
# each table must come out of `int compare --json`, with its experiment's own parameters.

SCRIPT = "scripts/paper_table.sh"


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    from workspace import ROOT, make_workspace, run

    def tweak(params: dict) -> None:
        params["grading"]["hard_only"] = True  # the tiny model solves nothing: all are hard
        params["sft"]["trainer"].update(max_steps=2, save_steps=1)
        params["rl"]["trainer"].update(max_steps=1, max_completion_length=16, num_generations=2)
        params["evaluation"].update(samples_per_problem=2, ks=[1, 2])
        params["evaluation"]["sampling"]["max_new_tokens"] = 16

    ws = make_workspace(tmp_path_factory.mktemp("tables") / "ws", tweak)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    run(["git", "add", "-A"], ws)
    run([*git, "commit", "-qm", "start"], ws)
    return ws, ROOT / SCRIPT


NAMES = {
    "1": ["t1-policy", "t1-stronger"],
    "2": ["t2-int", "t2-nofilter", "t2-int-only", "t2-suffix"],
    "4": ["t4-int-rl", "t4-rl-from-base", "t4-refsft-rl"],
    "diagnostics": ["diag-int", "diag-refsft"],
}


def paper_table(committed, table: str, env: dict | None = None) -> dict:
    """Run the one command for ``table``; check that the table it prints holds its own
    experiments alone (earlier tables' experiments are in the same repository); return
    `int compare --json`'s table for those experiments."""
    from workspace import run, run_env

    ws, script = committed
    out = run(["bash", str(script), table], ws, timeout=1800, env={**run_env(), **(env or {})})
    printed = out[out.rindex("Ran experiment") :]
    others = [n for t, names in NAMES.items() if t != table for n in names]
    assert not [n for n in others if n in printed], printed
    exps = [a for n in NAMES[table] for a in ("--exp", n)]
    shown = run([sys.executable, "-m", "intervention_training.cli", "compare", "--table", table,
                 "--json", *exps], ws)  # fmt: skip
    (doc,) = json.loads(shown)["tables"]
    assert {r["experiment"] for r in doc["rows"]} <= set(NAMES[table])
    return doc


def by_experiment(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["experiment"], []).append(r)
    return out


def test_table_1_in_one_command_with_the_stronger_proposer_row(committed):
    # PROPOSER: a separate proposer (here the same tiny model, named as a folder) labels its row
    ws, _ = committed
    proposer = str(ws.parent / "tiny-model")
    rows = by_experiment(paper_table(committed, "1", {"PROPOSER": proposer})["rows"])
    policy = ["problem_only", "prefix_resample", "prefix_with_error", "prefix_intervention"]
    assert [r["source"] for r in rows["t1-policy"]] == policy
    stronger = [r["source"] for r in rows["t1-stronger"]]
    assert stronger == [*policy[:3], "stronger_proposer"]
    for r in rows["t1-policy"] + rows["t1-stronger"]:
        assert r["continuations"] > 0 and 0 <= r["coverage"] <= r["problems"]
        assert r["coverage_lo"] <= r["coverage"] <= r["coverage_hi"]
    assert rows["t1-stronger"][0]["params"]["proposals.model"] == proposer


def test_table_2_in_one_command_every_variant_on_the_training_problems(committed):
    rows = by_experiment(paper_table(committed, "2")["rows"])
    expected = {
        "t2-int": ("prefix_intervention", True),
        "t2-nofilter": ("prefix_intervention", False),
        "t2-int-only": ("intervention_only", True),
        "t2-suffix": ("prefix_intervention_suffix", True),
    }
    for name, (variant, guided) in expected.items():
        (row,) = rows[name]
        assert (row["sft_data.variant"], row["guided.enabled"]) == (variant, guided)
        assert row["benchmark"] == "train" and row["problems"] > 0
        assert 0 <= row["coverage"] <= row["problems"]
        assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]


def test_table_4_in_one_command_int_against_both_baselines(committed):
    rows = by_experiment(paper_table(committed, "4")["rows"])
    params = {"t4-int-rl": {}, "t4-rl-from-base": {"rl.init": "base"},
              "t4-refsft-rl": {"sft_data.source": "reference"}}  # fmt: skip
    for name, changed in params.items():
        assert [r["model"] for r in rows[name]] == ["base", "sft", "rl"]
        for r in rows[name]:
            assert all(r["params"].get(k) == v for k, v in changed.items()), r["params"]
            m = r["benchmarks"]["heldout"]
            assert m["problems"] > 0 and m["pass@1_lo"] <= m["pass@1"] <= m["pass@1_hi"]


def test_diagnostics_in_one_command_nll_per_source_and_entropy_after_each_sft(committed):
    rows = by_experiment(paper_table(committed, "diagnostics")["rows"])
    nll = {r["source"]: r for r in rows["diag-int"] if r["measure"] == "nll"}
    assert {"prefix_intervention", "intervention_only", "reference"} <= set(nll)
    assert all(r["nll_per_token"] > 0 and r["tokens"] > 0 for r in nll.values())
    entropy = {r["model"] for r in rows["diag-int"] if r["measure"] == "entropy"}
    assert entropy == {"base", "sft"}
    (ref,) = [r for r in rows["diag-refsft"] if r["measure"] == "entropy"]
    assert ref["model"] == "sft" and ref["params"]["sft_data.source"] == "reference"
    assert ref["entropy_per_token_lo"] <= ref["entropy_per_token"] <= ref["entropy_per_token_hi"]
