"""The SFT data variants of the paper's Table 2 (``sft_data.variant``), token by token.

``prefix_intervention`` (InT, the default), ``intervention_only`` and
``prefix_intervention_suffix`` (with the first correct guided continuation appended), on a tiny
hand-made workspace; the tokens are the ones the ``sft`` stage trains on
(:func:`~intervention_training.training.sft.tokenize_sft_rows`).
"""

from __future__ import annotations

import pytest

import intervention_training.sft_data as sft_data
from intervention_training.artifacts import read_artifact, read_metadata, write_artifact
from intervention_training.config import ConfigError, GuidedParams, SftDataParams, parse_section
from intervention_training.guided import guided_prefix, write_unchecked_selection
from intervention_training.steps import prefix_before_step

PROMPT = "<|im_start|>user\nFind x.<|im_end|>\n<|im_start|>assistant\n"
ATTEMPT_A = "Step 1: Let x = 3.\n\nStep 2: Then 2x + 5 = 12.\n\nStep 3: So \\boxed{12}."
ATTEMPT_B = "Step 1: We compute 2 + 3 = 6.\n\nStep 2: So \\boxed{6}."
FIX_A = "Step 2: Then 2x + 5 = 11."
FIX_B = "Step 1: Check the sign: 2 + 3 = 5."
SUFFIX_A = " So the answer is \\boxed{11}."  # continuation 1 of a/0/0, the first correct one


def _problem(pid: str) -> dict:
    return {
        "problem_id": pid,
        "problem": f"Problem {pid}",
        "answer": "11",
        "reference_solution": f"Worked solution of {pid}.",
        "source": "t",
        "split": "train",
    }


def _rollout(pid: str, completion: str) -> dict:
    return {
        "rollout_id": f"{pid}/0",
        "problem_id": pid,
        "sample_id": 0,
        "prompt": PROMPT,
        "completion": completion,
        "n_tokens": 30,
        "finish_reason": "stop",
        "seed": 1,
    }


def _intervention(pid: str, location: int, content: str) -> dict:
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


def _continuation(pid: str, index: int, text: str, correct: bool) -> dict:
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


@pytest.fixture
def ws(tmp_path):
    """Two selected interventions: a/0/0 (location 2) with correct continuations 1 and 2 (listed
    2 first), b/0/0 (location 1) with none correct; the guided stage ran enabled."""
    write_artifact([_problem("a"), _problem("b")], tmp_path / "problems.parquet", "problems")
    rollouts = [_rollout("a", ATTEMPT_A), _rollout("b", ATTEMPT_B)]
    write_artifact(rollouts, tmp_path / "rollouts.parquet", "rollouts")
    ivs = [_intervention("a", 2, FIX_A), _intervention("b", 1, FIX_B)]
    write_artifact(ivs, tmp_path / "interventions.parquet", "interventions")
    selected = [
        {
            "proposal_id": iv["proposal_id"],
            "rollout_id": iv["rollout_id"],
            "problem_id": iv["problem_id"],
            "n_continuations": 3,
            "n_correct": 2 if iv["problem_id"] == "a" else 0,
            "selected": True,  # as with guided.min_correct: 0
        }
        for iv in ivs
    ]
    write_artifact(selected, tmp_path / "selected.parquet", "selected")
    conts = [
        _continuation("a", 0, " So \\boxed{12}.", False),
        _continuation("a", 2, " Hence \\boxed{11}.", True),
        _continuation("a", 1, SUFFIX_A, True),
        _continuation("b", 0, " So \\boxed{6}.", False),
    ]
    guided = GuidedParams(enabled=True, continuations=3, min_correct=0)
    write_artifact(
        conts,
        tmp_path / "continuations.parquet",
        "continuations",
        provenance={"params": guided.model_dump()},
        summary={"enabled": True},
    )
    return tmp_path


def _write(ws, params: SftDataParams, *, eot: str | None = None, **kwargs) -> dict:
    original = sft_data.end_of_turn_text
    sft_data.end_of_turn_text = lambda model_dir: eot
    try:
        return sft_data.write_sft_data(
            ws / "problems.parquet",
            ws / "rollouts.parquet",
            ws / "interventions.parquet",
            ws / "selected.parquet",
            ws / "no-model",  # read only for the end-of-turn text (stubbed above)
            ws / "sft.parquet",
            params,
            **kwargs,
        )
    finally:
        sft_data.end_of_turn_text = original


def _rows(ws) -> list[dict]:
    return read_artifact(ws / "sft.parquet", "sft").to_pylist()


def _tokens(tokenizer, rows: list[dict]) -> list[list[int]]:
    """The completion tokens the sft stage trains on (labels past the prompt), no eos added."""
    from intervention_training.training.sft import tokenize_sft_rows

    examples, skipped = tokenize_sft_rows(rows, tokenizer, append_eos=False)
    assert skipped == 0
    n_prompt = len(_encode(tokenizer, PROMPT))
    out = []
    for ex in examples:
        assert ex["input_ids"][:n_prompt] == _encode(tokenizer, PROMPT)
        assert ex["labels"][:n_prompt] == [-100] * n_prompt
        assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
        out.append(ex["input_ids"][n_prompt:])
    return out


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


PREFIX_A = "Step 1: Let x = 3.\n\n"


def test_fixture_prefixes():
    assert prefix_before_step(ATTEMPT_A, 2) == PREFIX_A
    assert prefix_before_step(ATTEMPT_B, 1) == ""


def test_default_variant_is_prefix_plus_intervention_unchanged(ws, tiny_tokenizer):
    summary = _write(ws, SftDataParams())
    rows = _rows(ws)
    assert rows == [
        {
            "prompt": PROMPT,
            "completion": PREFIX_A + FIX_A,
            "problem_id": "a",
            "rollout_id": "a/0",
            "proposal_id": "a/0/0",
            "location": 2,
            "prefix": PREFIX_A,
            "intervention": FIX_A,
            "end_of_turn": False,
        },
        {
            "prompt": PROMPT,
            "completion": FIX_B,
            "problem_id": "b",
            "rollout_id": "b/0",
            "proposal_id": "b/0/0",
            "location": 1,
            "prefix": "",
            "intervention": FIX_B,
            "end_of_turn": False,
        },
    ]
    # the summary keeps the keys it had before variants existed; no continuation is read
    assert summary == {"rows": 2, "problems": 2, "end_of_turn": False, "source": "interventions"}
    explicit = _write(ws, SftDataParams(variant="prefix_intervention"))
    assert explicit == summary and _rows(ws) == rows
    a, b = _tokens(tiny_tokenizer, rows)
    assert a == _encode(tiny_tokenizer, PREFIX_A + FIX_A)
    assert tiny_tokenizer.decode(a) == PREFIX_A + FIX_A
    assert tiny_tokenizer.eos_token_id not in a + b
    # the guided stage continued exactly this text
    iv = {"location": 2, "content": FIX_A}
    assert guided_prefix({"completion": ATTEMPT_A}, iv) == rows[0]["completion"]


def test_intervention_only_has_no_prefix_tokens(ws, tiny_tokenizer):
    default = _tokens(tiny_tokenizer, (_write(ws, SftDataParams()), _rows(ws))[1])
    summary = _write(ws, SftDataParams(variant="intervention_only"))
    rows = _rows(ws)
    assert [r["completion"] for r in rows] == [FIX_A, FIX_B]
    assert [r["prefix"] for r in rows] == ["", ""]
    assert [r["intervention"] for r in rows] == [FIX_A, FIX_B]
    assert [r["location"] for r in rows] == [2, 1]  # still the step the fix replaced
    assert summary["variant"] == "intervention_only" and summary["rows"] == 2
    a, b = _tokens(tiny_tokenizer, rows)
    assert a == _encode(tiny_tokenizer, FIX_A)  # the intervention's tokens and nothing else
    assert tiny_tokenizer.decode(a) == FIX_A
    prefix_ids = _encode(tiny_tokenizer, PREFIX_A)
    assert a[: len(prefix_ids)] != prefix_ids and len(a) < len(default[0])
    assert b == default[1]  # location 1: there was no prefix to drop
    assert tiny_tokenizer.eos_token_id not in a + b


def test_suffix_tokens_follow_the_intervention_without_end_of_turn(ws, tiny_tokenizer):
    default = _tokens(tiny_tokenizer, (_write(ws, SftDataParams()), _rows(ws))[1])
    params = SftDataParams(variant="prefix_intervention_suffix")
    summary = _write(ws, params, continuations_path=ws / "continuations.parquet")
    rows = _rows(ws)
    # b/0/0 has no correct continuation: dropped and counted
    assert [r["proposal_id"] for r in rows] == ["a/0/0"]
    assert summary == {
        "rows": 1,
        "problems": 1,
        "end_of_turn": False,
        "source": "interventions",
        "variant": "prefix_intervention_suffix",
        "no_correct_continuation": 1,
    }
    (row,) = rows
    # the first correct continuation by index (1), not by file order (2 is listed first)
    assert row["completion"] == PREFIX_A + FIX_A + SUFFIX_A
    assert row["prefix"] == PREFIX_A and row["intervention"] == FIX_A
    assert not row["end_of_turn"]
    (ids,) = _tokens(tiny_tokenizer, rows)
    suffix_ids = _encode(tiny_tokenizer, SUFFIX_A)
    # the default row's tokens, then exactly the suffix's tokens, then nothing
    assert ids == default[0] + suffix_ids
    assert tiny_tokenizer.decode(ids[len(default[0]) :]) == SUFFIX_A
    assert tiny_tokenizer.eos_token_id not in ids


def test_end_of_turn_comes_after_the_suffix_only_when_asked(ws, tiny_tokenizer):
    eos = tiny_tokenizer.eos_token
    params = SftDataParams(variant="prefix_intervention_suffix", end_of_turn=True)
    _write(ws, params, eot=eos, continuations_path=ws / "continuations.parquet")
    (row,) = _rows(ws)
    assert row["completion"] == PREFIX_A + FIX_A + SUFFIX_A + eos and row["end_of_turn"]
    (ids,) = _tokens(tiny_tokenizer, [row])
    assert ids[-1] == tiny_tokenizer.eos_token_id
    assert ids.count(tiny_tokenizer.eos_token_id) == 1
    assert ids[:-1] == _encode(tiny_tokenizer, PREFIX_A + FIX_A) + _encode(tiny_tokenizer, SUFFIX_A)
    _write(ws, SftDataParams(variant="intervention_only", end_of_turn=True), eot=eos)
    assert [r["completion"] for r in _rows(ws)] == [FIX_A + eos, FIX_B + eos]


def test_suffix_needs_guided_enabled(ws):
    params = SftDataParams(variant="prefix_intervention_suffix")
    with pytest.raises(ConfigError, match="guided.enabled.*continuations artifact"):
        _write(ws, params)
    with pytest.raises(ConfigError, match="prefix_intervention_suffix needs guided.enabled"):
        _write(
            ws,
            params,
            continuations_path=ws / "continuations.parquet",
            guided=GuidedParams(enabled=False),
        )
    # the continuations artifact of a guided stage that ran switched off
    write_unchecked_selection(
        ws / "interventions.parquet",
        ws / "selected.parquet",
        ws / "continuations.parquet",
        GuidedParams(enabled=False),
        provenance={"params": GuidedParams(enabled=False).model_dump()},
    )
    assert read_metadata(ws / "continuations.parquet")["summary"]["enabled"] is False
    with pytest.raises(ConfigError, match="written with guided.enabled: false"):
        _write(ws, params, continuations_path=ws / "continuations.parquet")
    assert not (ws / "sft.parquet").exists()
    # the other variants never read it
    assert _write(ws, SftDataParams(variant="intervention_only"))["rows"] == 2


def test_invalid_combinations_fail_by_name(ws):
    for variant in ("intervention_only", "prefix_intervention_suffix"):
        with pytest.raises(ConfigError, match=f"sft_data.*variant '{variant}' applies to source"):
            parse_section({"sft_data": {"source": "reference", "variant": variant}}, "sft_data")
    with pytest.raises(ConfigError, match="sft_data.variant"):
        parse_section({"sft_data": {"variant": "suffix_only"}}, "sft_data")
    # params built without validation are refused by the stage too
    bad = SftDataParams.model_construct(
        end_of_turn=False, source="reference", variant="intervention_only"
    )
    with pytest.raises(ConfigError, match="applies to source 'interventions' only"):
        _write(ws, bad)
    with pytest.raises(ValueError, match="suffix goes with"):
        sft_data.sft_row(_rollout("a", ATTEMPT_A), _intervention("a", 2, FIX_A), None, suffix="x")


def test_reference_source_still_works(ws):
    parsed = parse_section({"sft_data": {"source": "reference"}}, "sft_data")
    assert parsed.variant == "prefix_intervention"
    summary = _write(ws, parsed)
    assert summary == {"rows": 2, "problems": 2, "end_of_turn": False, "source": "reference"}
    assert [r["completion"] for r in _rows(ws)] == [
        "Worked solution of a.",
        "Worked solution of b.",
    ]
