"""The on-policy diagnostics (stages ``nll`` and ``entropy``), on the tiny random model.

The batched, padded scorer is checked against a one-sequence-at-a-time loop over positions;
the scored positions against the tokenizer and the ``sft`` stage's own tokenization; the
sources against the ``sft_data`` builder; the intervals for determinism; bad input for a clear
error that leaves earlier outputs as they were.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from intervention_training.artifacts import read_artifact, read_metadata, write_artifact
from intervention_training.config import (
    ConfigError,
    DiagnosticsParams,
    EvaluationParams,
    GuidedParams,
    parse_section,
)
from intervention_training.diagnostics.entropy import write_entropy
from intervention_training.diagnostics.nll import nll_metrics, sft_sequence, write_nll
from intervention_training.diagnostics.scoring import (
    choose_subset,
    load_scoring_model,
    ratio_interval,
    score_completions,
)
from intervention_training.guided import write_unchecked_selection
from intervention_training.prompts import rollout_prompt
from intervention_training.steps import prefix_before_step

ROOT = Path(__file__).resolve().parents[1]

ATTEMPT_A = "Step 1: Let x = 3.\n\nStep 2: Then 2x + 5 = 12.\n\nStep 3: So \\boxed{12}."
ATTEMPT_B = "Step 1: We compute 2 + 3 = 6.\n\nStep 2: So \\boxed{6}."
FIX_A = "Step 2: Then 2x + 5 = 11."
FIX_B = "Step 1: Check the sign: 2 + 3 = 5."
SUFFIX_A = " So the answer is \\boxed{11}."


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    model, tokenizer, _ = load_scoring_model(tiny_model_dir, device="cpu")
    return model, tokenizer


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def by_hand(model, ids: list[int], n_prompt: int) -> tuple[list[float], list[float]]:
    """NLL and entropy of each completion token, one sequence, no padding, a loop over
    positions in float64."""
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].double()
    nll, entropy = [], []
    for t in range(max(n_prompt, 1), len(ids)):
        logp = torch.log_softmax(logits[t - 1], dim=-1)
        nll.append(-logp[ids[t]].item())
        entropy.append(-(logp.exp() * logp).sum().item())
    return nll, entropy


def sequences(tokenizer) -> list[tuple[list[int], int]]:
    prompt = rollout_prompt(tokenizer, "Find x if 2x + 5 = 11.")
    p = encode(tokenizer, prompt)
    return [
        (p + encode(tokenizer, "Step 1: Let x = 3."), len(p)),
        (p + encode(tokenizer, "So"), len(p)),  # one or two completion tokens
        (p + encode(tokenizer, ATTEMPT_A + " " + ATTEMPT_B), len(p)),
        (encode(tokenizer, "Final answer: \\boxed{\\frac{5}{4}}"), 3),
    ]


# --- (a) the batched scorer against a hand computation -----------------------------------------


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_scores_equal_a_loop_over_positions(scorer, padding_side, batch_size):
    model, tokenizer = scorer
    seqs = sequences(tokenizer)
    got = score_completions(
        model, seqs, batch_size=batch_size, pad_id=tokenizer.pad_token_id, padding_side=padding_side
    )
    assert len(got) == len(seqs)
    for (ids, n_prompt), scored in zip(seqs, got, strict=True):
        nll, entropy = by_hand(model, ids, n_prompt)
        assert scored.n_tokens == len(ids) - n_prompt == len(nll)
        np.testing.assert_allclose(scored.nll, nll, rtol=0, atol=2e-5)
        np.testing.assert_allclose(scored.entropy, entropy, rtol=0, atol=2e-5)
        assert (scored.entropy >= 0).all()
        assert (scored.entropy <= np.log(len(tokenizer)) + 1e-6).all()


def test_a_padded_batch_scores_each_row_as_alone(scorer):
    model, tokenizer = scorer
    seqs = sequences(tokenizer)
    alone = [score_completions(model, [s], batch_size=1)[0] for s in seqs]
    for side in ("left", "right"):
        batched = score_completions(model, seqs, batch_size=len(seqs), padding_side=side, pad_id=7)
        for a, b in zip(alone, batched, strict=True):
            np.testing.assert_allclose(a.nll, b.nll, atol=2e-5)
            np.testing.assert_allclose(a.entropy, b.entropy, atol=2e-5)


def test_a_sequence_without_completion_tokens_is_refused(scorer):
    model, _ = scorer
    with pytest.raises(ValueError, match="no completion token"):
        score_completions(model, [([5, 6, 7], 3)])


# --- (b) the scored positions are the completion tokens, as SFT trains on them ----------------


def sft_row(prompt: str, completion: str, **extra) -> dict:
    return {
        "prompt": prompt,
        "completion": completion,
        "problem_id": "a",
        "rollout_id": "a/0",
        "proposal_id": "a/0/0",
        "location": 2,
        "prefix": "",
        "intervention": completion,
        "end_of_turn": False,
        **extra,
    }


def test_scored_positions_are_exactly_the_completion_tokens(scorer):
    model, tokenizer = scorer
    prompt = rollout_prompt(tokenizer, "Find x.")
    completion = prefix_before_step(ATTEMPT_A, 2) + FIX_A
    ids, n_prompt = sft_sequence(sft_row(prompt, completion), tokenizer)
    assert ids[:n_prompt] == encode(tokenizer, prompt)
    assert ids[n_prompt:] == encode(tokenizer, completion)  # no end-of-turn token appended
    assert tokenizer.eos_token_id not in ids[n_prompt:]
    (scored,) = score_completions(model, [(ids, n_prompt)])
    assert scored.n_tokens == len(encode(tokenizer, completion))
    # the first scored token is the completion's first, predicted from the prompt's last
    nll, _ = by_hand(model, ids, n_prompt)
    np.testing.assert_allclose(scored.nll, nll, atol=2e-5)


def test_an_end_of_turn_in_the_data_is_scored_and_an_empty_completion_skipped(scorer):
    _, tokenizer = scorer
    prompt = rollout_prompt(tokenizer, "Find x.")
    ids, n_prompt = sft_sequence(sft_row(prompt, FIX_A + tokenizer.eos_token), tokenizer)
    assert ids[-1] == tokenizer.eos_token_id
    assert ids[n_prompt:] == encode(tokenizer, FIX_A) + [tokenizer.eos_token_id]
    assert sft_sequence(sft_row(prompt, ""), tokenizer) is None


def test_sft_append_eos_and_max_length_score_what_the_trainer_trains_on(scorer):
    # sft.append_eos adds the end-of-turn token to the loss; TRL keeps the first max_length ids
    _, tokenizer = scorer
    prompt = rollout_prompt(tokenizer, "Find x.")
    row = sft_row(prompt, FIX_A)
    n = len(encode(tokenizer, prompt))
    ids, n_prompt = sft_sequence(row, tokenizer, append_eos=True)
    assert n_prompt == n and ids[n:] == encode(tokenizer, FIX_A) + [tokenizer.eos_token_id]
    cut, n_prompt = sft_sequence(row, tokenizer, max_length=n + 2)
    assert cut == encode(tokenizer, prompt) + encode(tokenizer, FIX_A)[:2] and n_prompt == n
    assert sft_sequence(row, tokenizer, max_length=n) is None  # no loss token left: dropped


# --- (c) the sources, built by the sft_data builder --------------------------------------------


def problem(pid: str, split: str = "train") -> dict:
    return {
        "problem_id": pid,
        "problem": f"Find x for problem {pid}.",
        "answer": "11",
        "reference_solution": f"Step 1: Subtract 5 from both sides of {pid}. So \\boxed{{11}}.",
        "source": "t",
        "split": split,
    }


def rollout(tokenizer, pid: str, completion: str) -> dict:
    return {
        "rollout_id": f"{pid}/0",
        "problem_id": pid,
        "sample_id": 0,
        "prompt": rollout_prompt(tokenizer, problem(pid)["problem"]),
        "completion": completion,
        "n_tokens": 30,
        "finish_reason": "stop",
        "seed": 1,
    }


def intervention(pid: str, location: int, content: str) -> dict:
    return {
        "proposal_id": f"{pid}/0/0",
        "rollout_id": f"{pid}/0",
        "problem_id": pid,
        "sample_id": 0,
        "proposal_index": 0,
        "n_steps": 3,
        "parse_status": "ok",
        "location": location,
        "content": content,
        "repairs": [],
        "leaked": False,
        "leak_evidence": None,
        "kept": True,
        "drop_reason": None,
    }


def continuation(pid: str, index: int, text: str, correct: bool) -> dict:
    return {
        "continuation_id": f"{pid}/0/0/{index}",
        "proposal_id": f"{pid}/0/0",
        "problem_id": pid,
        "continuation_index": index,
        "completion": text,
        "n_tokens": 8,
        "finish_reason": "stop",
        "status": "correct" if correct else "incorrect",
        "extracted": "11" if correct else "12",
        "correct": correct,
        "seed": index,
    }


def make_ws(tmp_path: Path, tokenizer, guided: str) -> Path:
    """Two training problems with one kept intervention each, one eval problem. ``guided``:
    ``off`` (the guided stage switched off), ``none_correct`` or ``correct`` (a/0/0 has a
    correct continuation)."""
    problems = [problem("a"), problem("b"), problem("e", split="eval")]
    write_artifact(problems, tmp_path / "problems.parquet", "problems")
    rollouts = [rollout(tokenizer, "a", ATTEMPT_A), rollout(tokenizer, "b", ATTEMPT_B)]
    write_artifact(rollouts, tmp_path / "rollouts.parquet", "rollouts")
    ivs = [intervention("a", 2, FIX_A), intervention("b", 1, FIX_B)]
    write_artifact(ivs, tmp_path / "interventions.parquet", "interventions")
    if guided == "off":
        write_unchecked_selection(
            tmp_path / "interventions.parquet",
            tmp_path / "selected.parquet",
            tmp_path / "continuations.parquet",
            GuidedParams(enabled=False),
            provenance={"params": GuidedParams(enabled=False).model_dump()},
        )
        return tmp_path
    selected = [
        {
            "proposal_id": iv["proposal_id"],
            "rollout_id": iv["rollout_id"],
            "problem_id": iv["problem_id"],
            "n_continuations": 2,
            "n_correct": 0,
            "selected": True,
        }
        for iv in ivs
    ]
    write_artifact(selected, tmp_path / "selected.parquet", "selected")
    conts = [continuation("a", 0, " So \\boxed{12}.", False)]
    if guided == "correct":
        conts.append(continuation("a", 1, SUFFIX_A, True))
    params = GuidedParams(enabled=True, continuations=2, min_correct=0)
    write_artifact(
        conts,
        tmp_path / "continuations.parquet",
        "continuations",
        provenance={"params": params.model_dump()},
        summary={"enabled": True},
    )
    return tmp_path


def run_nll(ws: Path, model_dir: Path, **params) -> dict:
    cfg = DiagnosticsParams(device="cpu", bootstrap=50, **params)
    return write_nll(
        ws / "problems.parquet",
        ws / "rollouts.parquet",
        ws / "interventions.parquet",
        ws / "selected.parquet",
        model_dir,
        ws / "nll.parquet",
        ws / "nll.json",
        cfg,
        continuations_path=ws / "continuations.parquet",
    )


def test_int_and_reference_rows_scored_suffix_skipped_without_guided(
    tmp_path, tiny_model_dir, scorer
):
    model, tokenizer = scorer
    ws = make_ws(tmp_path, tokenizer, "off")
    summary = run_nll(ws, tiny_model_dir)
    rows = read_artifact(ws / "nll.parquet", "nll").to_pylist()
    metrics = json.loads((ws / "nll.json").read_text())
    assert summary["skipped"] == ["prefix_intervention_suffix"]
    assert "guided.enabled" in metrics["prefix_intervention_suffix"]["skipped"]
    ids = {(r["source"], r["proposal_id"]) for r in rows}
    assert ids == {
        ("prefix_intervention", "a/0/0"),
        ("prefix_intervention", "b/0/0"),
        ("intervention_only", "a/0/0"),
        ("intervention_only", "b/0/0"),
        ("reference", "reference/a"),
        ("reference", "reference/b"),  # the eval problem has no rollout and no row
    }
    assert len({r["row_id"] for r in rows}) == len(rows)
    # each row: the completion the sft_data builder writes, scored token for token
    completions = {
        ("prefix_intervention", "a/0/0"): prefix_before_step(ATTEMPT_A, 2) + FIX_A,
        ("prefix_intervention", "b/0/0"): FIX_B,  # location 1: no prefix
        ("intervention_only", "a/0/0"): FIX_A,
        ("reference", "reference/a"): problem("a")["reference_solution"],
    }
    for r in rows:
        key = (r["source"], r["proposal_id"])
        if key not in completions:
            continue
        prompt_ids = encode(tokenizer, rollout(tokenizer, r["problem_id"], "")["prompt"])
        completion_ids = encode(tokenizer, completions[key])
        assert (r["prompt_tokens"], r["n_tokens"]) == (len(prompt_ids), len(completion_ids))
        nll, _ = by_hand(model, prompt_ids + completion_ids, len(prompt_ids))
        assert r["nll_sum"] == pytest.approx(sum(nll), abs=1e-4)
        assert r["nll_per_token"] == pytest.approx(sum(nll) / len(nll), abs=1e-5)
    for source in ("prefix_intervention", "intervention_only", "reference"):
        mine = [r for r in rows if r["source"] == source]
        m = metrics[source]
        assert m["rows"] == len(mine) == 2
        assert m["tokens"] == sum(r["n_tokens"] for r in mine)
        assert m["nll_per_token"] == pytest.approx(sum(r["nll_sum"] for r in mine) / m["tokens"])
        assert m["nll_row_mean"] == pytest.approx(np.mean([r["nll_per_token"] for r in mine]))
        assert m["nll_per_token_lo"] <= m["nll_per_token"] <= m["nll_per_token_hi"]
    meta = read_metadata(ws / "nll.parquet")
    assert meta["provenance"]["model"] == str(tiny_model_dir)
    assert meta["provenance"]["dtype"] == "float32"


def test_suffix_skipped_when_no_continuation_is_correct(tmp_path, tiny_model_dir, scorer):
    ws = make_ws(tmp_path, scorer[1], "none_correct")
    run_nll(ws, tiny_model_dir, sources=("prefix_intervention", "prefix_intervention_suffix"))
    metrics = json.loads((ws / "nll.json").read_text())
    assert metrics["prefix_intervention_suffix"] == {
        "skipped": "no selected intervention has a correct guided continuation (2 without one)"
    }
    assert metrics["prefix_intervention"]["rows"] == 2
    assert set(metrics) == {"prefix_intervention", "prefix_intervention_suffix"}


def test_suffix_rows_scored_when_a_correct_continuation_exists(tmp_path, tiny_model_dir, scorer):
    _, tokenizer = scorer
    ws = make_ws(tmp_path, tokenizer, "correct")
    run_nll(ws, tiny_model_dir, sources=("prefix_intervention_suffix",))
    (row,) = read_artifact(ws / "nll.parquet", "nll").to_pylist()
    assert row["row_id"] == "prefix_intervention_suffix/a/0/0"
    completion = prefix_before_step(ATTEMPT_A, 2) + FIX_A + SUFFIX_A
    assert row["n_tokens"] == len(encode(tokenizer, completion))


def test_max_rows_takes_the_same_seeded_subset_of_every_source(tmp_path, tiny_model_dir, scorer):
    ws = make_ws(tmp_path, scorer[1], "off")
    run_nll(ws, tiny_model_dir, max_rows=1, sources=("prefix_intervention", "intervention_only"))
    rows = read_artifact(ws / "nll.parquet", "nll").to_pylist()
    assert len(rows) == 2
    assert rows[0]["proposal_id"] == rows[1]["proposal_id"]  # paired: the same proposal


def test_no_row_from_any_source_is_an_error(tmp_path, tiny_model_dir, scorer):
    ws = make_ws(tmp_path, scorer[1], "off")
    # no attempt, hence no kept intervention and no prompt for a reference row
    write_artifact([], ws / "rollouts.parquet", "rollouts")
    write_artifact([], ws / "interventions.parquet", "interventions")
    off = GuidedParams(enabled=False)
    write_unchecked_selection(
        ws / "interventions.parquet",
        ws / "selected.parquet",
        ws / "continuations.parquet",
        off,
        provenance={"params": off.model_dump()},
    )
    with pytest.raises(Exception, match="no SFT row from any diagnostics source") as info:
        run_nll(ws, tiny_model_dir)
    assert "rollouts.parquet" in str(info.value)
    assert not (ws / "nll.parquet").exists()


# --- entropy -----------------------------------------------------------------------------------


def eval_sample(pid: str, j: int, completion: str, benchmark: str = "heldout") -> dict:
    return {
        "eval_id": f"{benchmark}/{pid}/{j}",
        "model": "base",
        "benchmark": benchmark,
        "problem_id": pid,
        "sample_id": j,
        "reference": "11",
        "reference_gradable": True,
        "completion": completion,
        "n_tokens": 5,
        "finish_reason": "stop",
        "seed": j,
        "status": "incorrect",
        "extracted": None,
        "detail": None,
        "judge_verdict": None,
        "correct": False,
        "answer_group": None,
    }


def entropy_ws(tmp_path: Path, samples: list[dict]) -> Path:
    problems = [problem("a"), problem("e", split="eval"), problem("f", split="eval")]
    write_artifact(problems, tmp_path / "problems.parquet", "problems")
    write_artifact([], tmp_path / "benchmarks.parquet", "benchmarks")
    evaluation = EvaluationParams()
    write_artifact(
        samples,
        tmp_path / "eval.parquet",
        "eval_samples",
        provenance={"params": evaluation.model_dump(mode="json")},
    )
    return tmp_path


def run_entropy(ws: Path, model_dir: Path, **params) -> dict:
    return write_entropy(
        ws / "eval.parquet",
        model_dir,
        ws / "problems.parquet",
        ws / "benchmarks.parquet",
        ws / "entropy.json",
        DiagnosticsParams(device="cpu", bootstrap=50, **params),
        EvaluationParams(),
    )


def test_entropy_over_the_models_own_samples_equals_a_hand_computation(
    tmp_path, tiny_model_dir, scorer
):
    model, tokenizer = scorer
    texts = {("e", 0): "Step 1: Let x = 3.", ("e", 1): "", ("f", 0): ATTEMPT_B}
    samples = [eval_sample(p, j, t) for (p, j), t in texts.items()]
    ws = entropy_ws(tmp_path, samples)
    summary = run_entropy(ws, tiny_model_dir)
    metrics = json.loads((ws / "entropy.json").read_text())
    total, tokens = 0.0, 0
    for (pid, _), text in texts.items():
        if not text:
            continue  # an empty completion is a sample with no token
        prompt_ids = encode(tokenizer, rollout_prompt(tokenizer, problem(pid)["problem"]))
        ids = prompt_ids + encode(tokenizer, text)
        _, entropy = by_hand(model, ids, len(prompt_ids))
        total += sum(entropy)
        tokens += len(entropy)
    m = metrics["heldout"]
    assert (m["samples"], m["tokens"]) == (3, tokens)
    assert m["entropy_per_token"] == pytest.approx(total / tokens, abs=1e-5)
    assert m["entropy_per_token_lo"] <= m["entropy_per_token"] <= m["entropy_per_token_hi"]
    assert summary["heldout"]["tokens"] == tokens


def test_max_samples_is_a_seeded_subset_per_benchmark(tmp_path, tiny_model_dir):
    samples = [eval_sample(p, j, "Step 1: Let x = 3.") for p in ("e", "f") for j in range(3)]
    ws = entropy_ws(tmp_path, samples)
    run_entropy(ws, tiny_model_dir, max_samples=2)
    first = json.loads((ws / "entropy.json").read_text())
    assert first["heldout"]["samples"] == 2
    run_entropy(ws, tiny_model_dir, max_samples=2)
    assert json.loads((ws / "entropy.json").read_text()) == first


def test_a_sample_of_an_unknown_problem_is_an_error_naming_the_file(tmp_path, tiny_model_dir):
    ws = entropy_ws(tmp_path, [eval_sample("zz", 0, "x")])
    with pytest.raises(Exception, match="eval.parquet.*heldout/zz"):
        run_entropy(ws, tiny_model_dir)
    assert not (ws / "entropy.json").exists()


# --- (d) statistics ----------------------------------------------------------------------------


def test_the_bootstrap_interval_holds_the_mean_and_is_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    counts = rng.integers(5, 60, size=40)
    sums = counts * rng.uniform(0.5, 3.0, size=40)
    mean = sums.sum() / counts.sum()
    lo, hi = ratio_interval(sums, counts, resamples=500, seed=7)
    assert lo < mean < hi
    assert ratio_interval(sums, counts, resamples=500, seed=7) == (lo, hi)
    assert ratio_interval(sums, counts, resamples=500, seed=8) != (lo, hi)
    assert ratio_interval([], [], resamples=10) == (None, None)
    assert ratio_interval([1.0], [0], resamples=10) == (None, None)
    one = ratio_interval([6.0], [3], resamples=10)
    assert one == (2.0, 2.0)


def test_nll_metrics_weight_tokens_and_keep_skipped_sources():
    rows = [
        {"source": "reference", "nll_sum": 10.0, "n_tokens": 10, "nll_per_token": 1.0},
        {"source": "reference", "nll_sum": 30.0, "n_tokens": 10, "nll_per_token": 3.0},
        {"source": "reference", "nll_sum": 4.0, "n_tokens": 2, "nll_per_token": 2.0},
    ]
    table = nll_metrics(
        rows,
        ["prefix_intervention_suffix", "reference"],
        skipped={"prefix_intervention_suffix": "why"},
        resamples=100,
        seed=1,
    )
    assert table["prefix_intervention_suffix"] == {"skipped": "why"}
    ref = table["reference"]
    assert (ref["rows"], ref["tokens"]) == (3, 22)
    assert ref["nll_per_token"] == pytest.approx(44 / 22)
    assert ref["nll_row_mean"] == pytest.approx(2.0)
    assert table == nll_metrics(
        rows,
        ["prefix_intervention_suffix", "reference"],
        skipped={"prefix_intervention_suffix": "why"},
        resamples=100,
        seed=1,
    )


def test_choose_subset_is_seeded_and_depends_on_the_keys_only():
    keys = [f"p{i}" for i in range(20)]
    a = choose_subset(keys, 5, 0, "nll")
    assert len(a) == 5 and a <= set(keys)
    assert choose_subset(list(reversed(keys)), 5, 0, "nll") == a
    assert choose_subset(keys, None, 0, "nll") == set(keys)
    assert choose_subset(keys, 50, 0, "nll") == set(keys)


def test_the_params_section_rejects_unknown_keys_and_repeats():
    ok = parse_section({"diagnostics": {"max_rows": 3}}, "diagnostics")
    assert ok.max_rows == 3 and ok.sources[-1] == "reference"
    for bad, key in [
        ({"max_row": 3}, "diagnostics.max_row"),
        ({"sources": ["reference", "reference"]}, "diagnostics.sources"),
        ({"sources": ["made_up"]}, "diagnostics.sources"),
        ({"device": "gpu"}, "diagnostics.device"),
        ({"max_samples": 0}, "diagnostics.max_samples"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_section({"diagnostics": bad}, "diagnostics")


# --- (e) bad input: one clear line, exit 2, earlier outputs intact ------------------------------


def run_script(args: list[str], params: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "--params", str(params)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def write_params(ws: Path) -> Path:
    path = ws / "params.yaml"
    path.write_text(yaml.safe_dump({"diagnostics": {"device": "cpu", "bootstrap": 20}}))
    return path


def without_column(path: Path, column: str) -> None:
    table = pq.read_table(path)
    pq.write_table(
        table.drop_columns([column]).replace_schema_metadata(table.schema.metadata), path
    )


def assert_fails_cleanly(proc, outputs: dict[Path, bytes], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    for path, before in outputs.items():
        assert path.read_bytes() == before, path


def test_nll_stage_bad_input_names_the_file_and_keeps_earlier_outputs(
    tmp_path, tiny_model_dir, scorer
):
    ws = make_ws(tmp_path, scorer[1], "off")
    run_nll(ws, tiny_model_dir)
    outputs = {p: p.read_bytes() for p in (ws / "nll.parquet", ws / "nll.json")}
    params = write_params(ws)
    args = [
        "stages/nll.py",
        *("--problems", str(ws / "problems.parquet")),
        *("--rollouts", str(ws / "rollouts.parquet")),
        *("--interventions", str(ws / "interventions.parquet")),
        *("--selected", str(ws / "selected.parquet")),
        *("--continuations", str(ws / "continuations.parquet")),
        *("--model", str(tiny_model_dir)),
        *("--out", str(ws / "nll.parquet")),
        *("--metrics", str(ws / "nll.json")),
    ]
    without_column(ws / "rollouts.parquet", "prompt")
    proc = run_script(args, params)
    assert_fails_cleanly(proc, outputs, "[nll] error", "rollouts.parquet", "'prompt'")
    assert sorted(p.name for p in ws.glob("*nll*")) == ["nll.json", "nll.parquet"]
    # an empty rollouts artifact: the selected interventions' attempts are missing
    write_artifact([], ws / "rollouts.parquet", "rollouts")
    proc = run_script(args, params)
    assert_fails_cleanly(proc, outputs, "[nll] error", "rollouts.parquet", "missing")


def test_entropy_stage_bad_input_names_the_file_and_keeps_earlier_outputs(tmp_path, tiny_model_dir):
    ws = entropy_ws(tmp_path, [eval_sample("e", 0, "Step 1: Let x = 3.")])
    run_entropy(ws, tiny_model_dir)
    outputs = {ws / "entropy.json": (ws / "entropy.json").read_bytes()}
    params = write_params(ws)
    args = [
        "stages/entropy.py",
        *("--name", "base"),
        *("--samples", str(ws / "eval.parquet")),
        *("--model", str(tiny_model_dir)),
        *("--problems", str(ws / "problems.parquet")),
        *("--benchmarks", str(ws / "benchmarks.parquet")),
        *("--metrics", str(ws / "entropy.json")),
    ]
    without_column(ws / "eval.parquet", "completion")
    proc = run_script(args, params)
    assert_fails_cleanly(proc, outputs, "[entropy] error", "eval.parquet", "'completion'")
    write_artifact([], ws / "eval.parquet", "eval_samples")
    proc = run_script(args, params)
    assert_fails_cleanly(proc, outputs, "eval.parquet", "no evaluation samples")


def test_the_nll_artifact_schema_is_declared():
    from intervention_training.schemas import KEYS, SCHEMAS

    assert KEYS["nll"] == "row_id"
    assert isinstance(SCHEMAS["nll"], pa.Schema)
