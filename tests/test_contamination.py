"""Contamination: a planted near-duplicate is found; unrelated and merely similar problems not."""

from __future__ import annotations

from intervention_training.evaluation.contamination import (
    contaminated_train_ids,
    contamination_summary,
    find_contamination,
    ngrams,
    words,
)

BENCH = [
    {
        "problem_id": "b1",
        "problem": "Let $a_1, a_2, \\ldots$ be a sequence of positive integers such that "
        "$a_{n+1} = a_n^2 - a_n + 1$ for every $n$. Prove that any two terms are coprime "
        "and find the smallest possible value of $a_{2024}$ modulo $7$.",
    },
    {"problem_id": "b2", "problem": "Compute $1+1$."},
]
TRAIN = [
    # the benchmark problem, re-typeset (case, spacing, $ signs) with a new first sentence
    {
        "problem_id": "t-dup",
        "problem": "Warm-up aside. LET a_1, a_2, \\ldots BE a sequence of positive integers "
        "such that a_{n+1}=a_n^2-a_n+1 for every n. Prove that any two terms are coprime.",
    },
    {
        "problem_id": "t-other",
        "problem": "Let $ABC$ be a triangle with incentre $I$. Prove that the circumcircle of "
        "$BIC$ passes through the midpoint of the arc $BC$ of the sequence of positive integers.",
    },
    {"problem_id": "t-short", "problem": "compute 1 + 1"},
]


def test_normalisation():
    assert words("Let $X_{n+1}$ = 2\\cdot Y.") == ["let", "x", "n", "1", "2", "cdot", "y"]
    assert ngrams("a b", 3) == {("a", "b")}
    assert len(ngrams(" ".join("abcdefghijklmnopq"), 13)) == 5


def test_planted_duplicate_is_found_and_unrelated_problems_are_not():
    pairs = find_contamination(TRAIN, BENCH, benchmark_name="bench", n=13)
    found = {(p["train_problem_id"], p["benchmark_problem_id"]) for p in pairs}
    assert ("t-dup", "b1") in found
    assert not any(t == "t-other" for t, _ in found)
    # a short problem is compared as a whole: same words = contaminated
    assert ("t-short", "b2") in found
    dup = next(p for p in pairs if p["train_problem_id"] == "t-dup")
    assert dup["shared_ngrams"] > 1 and len(dup["example"].split()) == 13
    assert contaminated_train_ids(pairs) == {"t-dup", "t-short"}


def test_min_shared_and_summary():
    strict = find_contamination(TRAIN, BENCH, benchmark_name="bench", n=13, min_shared=10)
    assert {p["train_problem_id"] for p in strict} == {"t-dup"}
    summary = contamination_summary(strict, {"bench": 2, "other": 5}, n_train=3)
    assert summary["train_problems"] == 3
    assert summary["bench"] == {
        "benchmark_problems": 2,
        "contaminated_benchmark_problems": 1,
        "contaminated_train_problems": 1,
        "pairs": 1,
    }
    assert summary["other"]["pairs"] == 0


def test_removal_drops_contaminated_problems_before_the_split(tmp_path):
    import json

    from intervention_training.artifacts import read_artifact
    from intervention_training.config import (
        BenchmarkSpec,
        ColumnMap,
        ContaminationParams,
        ProblemsParams,
    )
    from intervention_training.evaluation.benchmarks import write_benchmarks
    from intervention_training.problems import write_problems

    leaked = "Let a string consist of digits 1, 2, 3. How many such strings of length 6 exist?"
    train = tmp_path / "train.jsonl"
    rows = [
        {"problem": leaked, "answer": "729", "solution": "3^6"},
        {
            "problem": "Compute the sum of the first ten positive odd numbers.",
            "answer": "100",
            "solution": "n^2",
        },
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": leaked, "answer": "729"}) + "\n")
    specs = [
        BenchmarkSpec(name="heldout", source="heldout"),
        BenchmarkSpec(name="b", source="file", path=str(bench)),
    ]
    params = ProblemsParams(
        source="file",
        path=str(train),
        eval_fraction=0.0,
        columns=ColumnMap(problem="problem", answer="answer", reference_solution="solution"),
    )
    # the stages' own path: the benchmarks stage loads the file, the problems stage reads it
    write_benchmarks(tmp_path / "benchmarks.parquet", specs)
    removal = ContaminationParams(ngram=8, remove=True)
    summary = write_problems(
        tmp_path / "problems.parquet",
        params,
        benchmarks_path=tmp_path / "benchmarks.parquet",
        contamination=removal,
    )
    kept = read_artifact(tmp_path / "problems.parquet", "problems").to_pylist()
    assert [r["answer"] for r in kept] == ["100"]
    assert summary["dropped"]["contaminated"] == 1
    clean = write_problems(
        tmp_path / "problems.parquet",
        params,
        benchmarks_path=tmp_path / "benchmarks.parquet",
        contamination=ContaminationParams(ngram=8, remove=False),
    )
    assert clean["kept"] == 2 and "contaminated" not in clean["dropped"]
