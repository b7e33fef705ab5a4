"""Benchmark loaders: every real benchmark file, format detection, hub/heldout/train sources,
errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intervention_training.config import (
    BenchmarkColumns,
    BenchmarkSpec,
    ConfigError,
    EvaluationParams,
    parse_section,
)
from intervention_training.evaluation.benchmarks import (
    detect_format,
    load_benchmark,
)
from intervention_training.problems import ProblemSourceError

# file -> (format auto resolves to, rows kept, first id, first answer)
EXPECTED = {
    "imo_answerbench_v2.csv": ("answerbench", 399, "imo-bench-algebra-001", "3"),
    "math500.jsonl": ("generic", 500, "test/precalculus/807.json", None),
    "aime_2024_I.jsonl": ("generic", 15, "aime_2024_I/1", "204"),
    "aime_2024_II.jsonl": ("generic", 15, "aime_2024_II/1", "073"),
    "aime_2025_I.jsonl": ("generic", 15, "aime_2025_I/1", "70"),
    "aime_2025_II.jsonl": ("generic", 15, "aime_2025_II/1", "468"),
    "hmmt_feb_2024.jsonl": ("generic", 30, "hmmt_feb_2024/1", "29"),
    "hmmt_feb_2025.jsonl": ("generic", 30, "hmmt_feb_2025/1", "103"),
    "olympiadbench.jsonl": ("olympiadbench", 675, "1606", "2"),
    "gsm8k_test.jsonl": ("gsm8k", 1319, None, "18"),
}


@pytest.mark.shared_data
def test_every_shared_benchmark_file_loads(shared_data):
    files = sorted(p.name for p in (shared_data / "benchmarks").iterdir())
    assert set(files) == set(EXPECTED), "a benchmark file was added or removed: update EXPECTED"
    for name in files:
        fmt, kept, first_id, first_answer = EXPECTED[name]
        spec = BenchmarkSpec(name=Path(name).stem, path=str(shared_data / "benchmarks" / name))
        bench = load_benchmark(spec)
        assert bench.format == fmt, name
        assert len(bench.rows) == kept, (name, bench.summary())
        assert all(r["problem"] and r["answer"] for r in bench.rows), name
        assert len({r["problem_id"] for r in bench.rows}) == kept, name
        first = bench.rows[0]
        if first_id is not None:
            assert first["problem_id"] == first_id, name
        if first_answer is not None:
            assert first["answer"] == first_answer, name


@pytest.mark.shared_data
def test_real_file_quirks(shared_data):
    root = shared_data / "benchmarks"
    imo = load_benchmark(BenchmarkSpec(name="imo", path=str(root / "imo_answerbench_v2.csv")))
    # the published CSV has one row with broken quoting: dropped and counted, not fatal
    assert imo.dropped == {"malformed_row": 1}
    assert "imo-bench-algebra-036" not in {r["problem_id"] for r in imo.rows}
    assert (
        "\n" in next(r for r in imo.rows if r["problem_id"] == "imo-bench-algebra-037")["problem"]
    )
    olymp = load_benchmark(BenchmarkSpec(name="ob", path=str(root / "olympiadbench.jsonl")))
    assert not any("$" in r["answer"] for r in olymp.rows)  # list items unwrapped from $...$
    assert any(", " in r["answer"] for r in olymp.rows)  # multi-part answers joined
    gsm = load_benchmark(BenchmarkSpec(name="gsm", path=str(root / "gsm8k_test.jsonl")))
    assert all(r["answer"].lstrip("-").replace(".", "").isdigit() for r in gsm.rows)
    assert all(r["problem_id"].startswith("gsm/") for r in gsm.rows)
    math500 = load_benchmark(BenchmarkSpec(name="m", path=str(root / "math500.jsonl"), limit=7))
    assert len(math500.rows) == 7


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_detect_format():
    assert detect_format({"Problem ID": 1, "Problem": "", "Short Answer": ""}) == "answerbench"
    assert detect_format({"question": "", "final_answer": ["1"]}) == "olympiadbench"
    assert detect_format({"question": "q", "answer": "work\n#### 1,200"}) == "gsm8k"
    assert detect_format({"problem": "p", "answer": "1"}) == "generic"


def test_generic_loader_columns_dedup_and_gsm8k_answers(tmp_path):
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"q": "What is 1+1?", "final": "2", "key": "a"},
            {"q": "What is 1+1?", "final": "2", "key": "b"},  # same text
            {"q": "Empty answer", "final": "", "key": "c"},
            {"q": "What is 2+2?", "final": 4, "key": "d"},
        ],
    )
    cols = BenchmarkColumns(problem="q", answer="final", problem_id="key")
    bench = load_benchmark(BenchmarkSpec(name="b", path=str(path), columns=cols))
    assert [r["problem_id"] for r in bench.rows] == ["a", "d"]
    assert bench.rows[1]["answer"] == "4"
    assert bench.dropped == {"duplicate": 1, "empty_answer": 1}
    gsm = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "x\n#### 1,200"}])
    assert load_benchmark(BenchmarkSpec(name="g", path=str(gsm))).rows[0]["answer"] == "1200"


def test_missing_column_names_row_and_columns(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [{"text": "x", "answer": "1"}])
    with pytest.raises(ProblemSourceError, match=r"row 1: no problem column.*'text'"):
        load_benchmark(BenchmarkSpec(name="b", path=str(path)))


def test_heldout_uses_the_eval_split_only():
    rows = [
        {"problem_id": "p1", "problem": "A", "answer": "1", "split": "train"},
        {"problem_id": "p2", "problem": "B", "answer": "2", "split": "eval"},
    ]
    bench = load_benchmark(BenchmarkSpec(name="heldout", source="heldout"), heldout=rows)
    assert bench.rows == [{"problem_id": "p2", "problem": "B", "answer": "2"}]
    with pytest.raises(ProblemSourceError):
        load_benchmark(BenchmarkSpec(name="heldout", source="heldout"))


TRAIN_PROBLEMS = [
    {"problem_id": "t2", "problem": "C", "answer": "3", "split": "train"},
    {"problem_id": "e1", "problem": "B", "answer": "2", "split": "eval"},
    {"problem_id": "t1", "problem": "A", "answer": "1", "split": "train"},
    {"problem_id": "t3", "problem": "D", "answer": "4", "split": "train"},
]


def test_train_source_is_exactly_the_training_problems_in_artifact_order():
    spec = BenchmarkSpec(name="train", source="train")
    bench = load_benchmark(spec, heldout=TRAIN_PROBLEMS)
    assert bench.rows == [
        {"problem_id": "t2", "problem": "C", "answer": "3"},
        {"problem_id": "t1", "problem": "A", "answer": "1"},
        {"problem_id": "t3", "problem": "D", "answer": "4"},
    ]
    assert bench.format == "train" and bench.summary()["kept"] == 3
    # the selection, when given, is ignored with subset all; limit keeps the first rows
    assert load_benchmark(spec, heldout=TRAIN_PROBLEMS, selected={"t1"}).rows == bench.rows
    limited = BenchmarkSpec(name="train", source="train", limit=2)
    assert [r["problem_id"] for r in load_benchmark(limited, heldout=TRAIN_PROBLEMS).rows] == [
        "t2",
        "t1",
    ]
    with pytest.raises(ProblemSourceError, match="problems artifact is needed"):
        load_benchmark(spec)


def test_train_source_selected_subset_reads_the_pass_rates_selection(tmp_path):
    from intervention_training.artifacts import ArtifactError, write_artifact
    from intervention_training.evaluation.benchmarks import selected_problem_ids

    rates = [
        {"problem_id": pid, "n_samples": 4, "n_correct": n, "pass_rate": n / 4, "selected": n == 0}
        for pid, n in (("t1", 2), ("t2", 0), ("t3", 0), ("e1", 0))
    ]
    write_artifact(rates, tmp_path / "pass_rates.parquet", "pass_rates")
    selected = selected_problem_ids(tmp_path / "pass_rates.parquet")
    assert selected == {"t2", "t3", "e1"}
    spec = BenchmarkSpec(name="hard", source="train", subset="selected")
    bench = load_benchmark(spec, heldout=TRAIN_PROBLEMS, selected=selected)
    # eval problems never enter, whatever the selection says
    assert [r["problem_id"] for r in bench.rows] == ["t2", "t3"]
    with pytest.raises(ArtifactError, match="pass-rates"):
        load_benchmark(spec, heldout=TRAIN_PROBLEMS)
    with pytest.raises(ArtifactError, match="no selected training problems"):
        load_benchmark(spec, heldout=TRAIN_PROBLEMS, selected={"t9"})


def test_benchmarks_stage_skips_the_sources_read_from_the_problems_artifact(tmp_path):
    from intervention_training.evaluation.benchmarks import write_benchmarks

    specs = [
        BenchmarkSpec(name="heldout", source="heldout"),
        BenchmarkSpec(name="train", source="train", subset="selected"),
    ]
    assert write_benchmarks(tmp_path / "benchmarks.parquet", specs) == {}


def test_hub_source_through_datasets_load_dataset(tmp_path):
    folder = tmp_path / "hubset"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [{"problem": "Find x.", "answer": "3", "id": "h1"}])
    spec = BenchmarkSpec(name="hub", source="hub", hub_name=str(folder))  # split "test"
    bench = load_benchmark(spec, cache_dir=str(tmp_path / "cache"))
    assert bench.rows == [{"problem_id": "h1", "problem": "Find x.", "answer": "3"}]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (r"\boxed{5}", "5"),
        (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r" \boxed { \{1, 2\} } ", r"\{1, 2\}"),
        (r"\fbox{x^2}", "x^2"),
        (r"\boxed{\text{all } n}", r"\text{all } n"),
        (r"\boxed{1} and \boxed{2}", r"\boxed{1} and \boxed{2}"),  # two boxes: not a wrapper
        (r"\boxed{1}+{2}", r"\boxed{1}+{2}"),  # the box closes before the end
        (r"\boxed{\}", r"\boxed{\}"),  # unbalanced
        (r"\boxedx{5}", r"\boxedx{5}"),  # another command
        ("073", "073"),
    ],
)
def test_a_wrapping_box_is_unwrapped(raw, expected):
    from intervention_training.evaluation.benchmarks import unwrap_boxed

    assert unwrap_boxed(raw) == expected


def _paper_spec(name: str) -> BenchmarkSpec:
    import yaml

    params = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs/paper.yaml").read_text()
    )
    specs = parse_section(params, "evaluation").benchmarks
    return next(s for s in specs if s.name == name)


def test_paper_hub_benchmarks_validate():
    want = {
        "hmmt_nov_2025": ("MathArena/hmmt_nov_2025", "train"),
        "amo_bench": ("meituan-longcat/AMO-Bench", "test"),
        "apex_shortlist": ("MathArena/apex-shortlist", "train"),
    }
    for name, (hub_name, split) in want.items():
        spec = _paper_spec(name)
        assert (spec.source, spec.hub_name, spec.split) == ("hub", hub_name, split)


def test_paper_amo_bench_entry_reads_rows_shaped_like_the_card(tmp_path):
    # AMO-Bench's card: question_id (int), prompt (the problem), solution, answer, answer_type
    folder = tmp_path / "amo"
    folder.mkdir()
    rows = [
        {
            "question_id": 1,
            "prompt": "Find n.",
            "solution": "...",
            "answer": r"\boxed{12}",
            "answer_type": "number",
        },
        {
            "question_id": 2,
            "prompt": "Find the set.",
            "solution": "...",
            "answer": r"\boxed{\{1, 3\}}",
            "answer_type": "set",
        },
    ]
    write_jsonl(folder / "test.jsonl", rows)
    spec = _paper_spec("amo_bench").model_copy(update={"hub_name": str(folder)})
    bench = load_benchmark(spec, cache_dir=str(tmp_path / "cache"))
    assert bench.rows == [
        {"problem_id": "1", "problem": "Find n.", "answer": "12"},
        {"problem_id": "2", "problem": "Find the set.", "answer": r"\{1, 3\}"},
    ]


@pytest.mark.parametrize("name", ["hmmt_nov_2025", "apex_shortlist"])
def test_paper_matharena_entries_take_problem_idx_as_the_id(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    rows = [
        {"problem_idx": 1, "problem": "Compute 2+3.", "answer": "5", "source": "x"},
        {"problem_idx": 2, "problem": "Compute 2*3.", "answer": "6", "source": "y"},
    ]
    write_jsonl(folder / "train.jsonl", rows)
    spec = _paper_spec(name).model_copy(update={"hub_name": str(folder)})
    bench = load_benchmark(spec, cache_dir=str(tmp_path / "cache"))
    assert [(r["problem_id"], r["answer"]) for r in bench.rows] == [("1", "5"), ("2", "6")]


def test_evaluation_params_are_validated():
    ok = parse_section({"evaluation": {"samples_per_problem": 8, "ks": [1, 8]}}, "evaluation")
    assert isinstance(ok, EvaluationParams)
    train = [
        {"name": "train", "source": "train"},
        {"name": "hard", "source": "train", "subset": "selected"},
    ]
    parsed = parse_section({"evaluation": {"benchmarks": train}}, "evaluation")
    assert [(b.source, b.subset) for b in parsed.benchmarks] == [
        ("train", "all"),
        ("train", "selected"),
    ]
    for bad, key in (
        ({"ks": [1, 8]}, "ks"),
        ({"benchmarks": [{"name": "x", "source": "file"}]}, "path is required"),
        ({"benchmarks": [{"name": "a", "source": "heldout"}] * 2}, "unique"),
        ({"judge": {"enabld": True}}, "enabld"),
        ({"benchmarks": [{"name": "../x", "source": "heldout"}]}, "name"),
        ({"benchmarks": [{"name": "x", "source": "heldout", "subset": "selected"}]}, "subset"),
        ({"benchmarks": [{"name": "x", "source": "train", "subset": "hard"}]}, "subset"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_section({"evaluation": bad}, "evaluation")
