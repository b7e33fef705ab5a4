"""The ``int`` command line: look inside the pipeline's artifacts, report on them, compare
experiments, plan a run.

Exit status: 0 success; 1 nothing matched (``show`` filters selected no row, ``compare`` found
no row for any table asked for); 2 bad input (an unknown artifact name, a missing or unreadable
artifact, an invalid option or params file, no DVC or no DVC repository for ``compare``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ..artifacts import count_rows
from ..errors import InputError
from .data import Artifacts, resolve
from .funnel import compute_funnel, funnel_json
from .intervention_view import intervention_card
from .plan import Cluster, estimate, format_duration
from .render import generic_card, print_cards
from .select import RowFilter, first_matches, restrict_context

EXIT_NO_MATCH = 1
EXIT_BAD_INPUT = 2

HELP = (
    "Look inside the InT pipeline: show artifacts' rows, count the funnel, write an HTML "
    "report, compare DVC experiments as the paper's tables, plan a run. Exit status: 0 "
    "success; 1 nothing matched (show, compare); 2 bad input (unknown artifact name, missing "
    "or unreadable artifact, invalid option or params file, no DVC repository for compare)."
)

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR = typer.Option(Path("data"), "--data-dir", "-d", help="Folder holding the artifacts.")
JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _console() -> Console:
    """Styled on a terminal; plain and 120 columns wide in a pipe or a file."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120
    return console


def user_errors(fn: F) -> F:
    """Turn bad-input errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:  # CliInputError, ArtifactError, ConfigError, ...
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return inner  # type: ignore[return-value]


@user_errors
def show(
    artifact: str = typer.Argument(
        ...,
        help="An artifact name (problems, rollouts, grades, pass_rates, proposals, "
        "interventions, continuations, selected, sft; a unique prefix will do) resolved "
        "under --data-dir, or a path to an artifact file.",
    ),
    data_dir: Path = DATA_DIR,
    problem: str | None = typer.Option(
        None, "--problem", "-p", help="Only this problem_id (glob patterns like 'champ/1*' work)."
    ),
    sample: int | None = typer.Option(None, "--sample", "-s", help="Only this sample (attempt)."),
    status: str | None = typer.Option(
        None,
        "--status",
        help="Only rows with this status (comma-separated for several). interventions: kept, "
        "dropped, or a drop reason/parse status (leaked, duplicate, invalid_json, ...); grades: "
        "a grade status or 'failed'; proposals: generated/skipped; continuations: a grade "
        "status; selected: selected/rejected; pass_rates: selected/solved/unsolved; "
        "rollouts: stop/length or the attempt's grade; problems: train/eval.",
    ),
    key: str | None = typer.Option(
        None, "--id", help="Only the row with this key (proposal_id, rollout_id, ...)."
    ),
    limit: int = typer.Option(10, "--limit", "-n", min=0, help="Show at most this many (0: all)."),
    full: bool = typer.Option(False, "--full", help="Show long texts and later steps in full."),
    json_out: bool = JSON,
) -> None:
    """Show an artifact's rows readably; interventions with their problem, attempt and outcome.

    An intervention is shown with its problem and reference answer, the failed attempt's
    numbered steps, the first-error step marked '>>', the intervention in its place marked
    '++', and what the guided continuations made of it. Exits 1 when no row matches.
    """
    ref = resolve(artifact, data_dir)
    ctx = Artifacts(ref.path.parent)
    flt = RowFilter(problem=problem, sample=sample, status=status, key=key)
    shown, n_matched = first_matches(ref.name, ref.path, flt, ctx, limit)
    n_rows = count_rows(ref.path, ref.name)
    restrict_context(ctx, shown)
    if json_out:
        print(json.dumps(shown, indent=2, ensure_ascii=False, default=str))
    else:
        console = _console()
        card = intervention_card if ref.name == "interventions" else None
        cards = [
            card(r, ctx, full) if card else generic_card(ref.name, r, ctx, full) for r in shown
        ]
        print_cards(console, cards)
        console.print(
            f"\n{len(shown)} shown of {n_matched} matching rows ({n_rows} in {ref.path})",
            style="dim",
            soft_wrap=True,
        )
    if not n_matched:
        raise typer.Exit(EXIT_NO_MATCH)


@user_errors
def funnel(data_dir: Path = DATA_DIR, json_out: bool = JSON) -> None:
    """Count what survives each stage, from problems to SFT rows, and why the rest was dropped.

    Counts come from the rows of the artifacts on disk. Stages whose artifact does not exist yet
    show no count. Exits 2 when the folder holds no artifact at all.
    """
    art = Artifacts(data_dir)
    stages = compute_funnel(art)
    if json_out:
        print(json.dumps(funnel_json(art, stages), indent=2))
        return
    top = max((s.count or 0 for s in stages), default=0) or 1
    table = Table(title=f"funnel of {data_dir}", title_justify="left")
    table.add_column("stage")
    table.add_column("count", justify="right")
    table.add_column("", style="cyan", no_wrap=True)
    table.add_column("dropped (reason: count)", style="red")
    table.add_column("note", style="dim")
    for s in stages:
        count = "—" if s.count is None else str(s.count)
        bar = "█" * max(1 if s.count else 0, round(16 * (s.count or 0) / top))
        drops = "\n".join(f"{r}: {n}" for r, n in s.drops.items())
        table.add_row(s.label, count, bar, drops, s.note)
    _console().print(table)


@user_errors
def report(
    data_dir: Path = DATA_DIR,
    metrics_dir: Path = typer.Option(
        Path("metrics"), "--metrics-dir", "-m", help="Folder of evaluation metrics (*.json)."
    ),
    out: Path = typer.Option(Path("reports/index.html"), "--out", "-o", help="HTML file to write."),
) -> None:
    """Write a self-contained HTML report: funnel, first errors, lengths, pass rates, metrics.

    The file has inline CSS and SVG only (no scripts, nothing fetched when viewed).
    """
    from .report import write_report

    write_report(data_dir, out, metrics_dir)
    print(f"[report] wrote {out}", file=sys.stderr)


class TableChoice(str, Enum):
    one = "1"
    two = "2"
    four = "4"
    diagnostics = "diagnostics"
    all = "all"


@user_errors
def compare(
    table: TableChoice = typer.Option(
        TableChoice.all,
        "--table",
        "-t",
        help="Which of the paper's tables: 1, 2, 4, diagnostics or all.",
    ),
    input_file: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help="Saved output of `dvc exp show --json` (default: run it in --repo).",
    ),
    repo: Path = typer.Option(Path("."), "--repo", help="The DVC repository to ask."),
    all_commits: bool = typer.Option(
        False, "--all-commits", "-A", help="Every commit's experiments, not only HEAD's."
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print GitHub-flavoured Markdown."),
    json_out: bool = JSON,
    exp: list[str] = typer.Option(
        [],
        "--exp",
        "-e",
        help="Compare only these experiments (repeat it; `workspace` is the workspace).",
    ),
) -> None:
    """Compare DVC experiments (and the workspace) as the paper's Tables 1, 2 and 4 and its
    on-policy diagnostics.

    Table 1: coverage and accuracy of each continuation source on hard problems, with their
    ratio to the problem alone (metrics/continuation_sources.json). Table 2: coverage and
    accuracy after SFT on the training problems (the `train` benchmark of eval_sft.json, or
    every benchmark it has), per sft_data.variant and guided.enabled. Table 4: pass@1 per
    benchmark of the base, SFT and RL models. Diagnostics: NLL per token of each SFT data
    source under the base model (nll.json) and each model's next-token entropy on its own
    samples (entropy_*.json), in nats. Rows carry the params that differ between experiments;
    numbers carry their bootstrap intervals (low, high); rates are percentages.

    Reads `dvc exp show --json`, run in --repo, or a saved copy (--input). Failed, queued and
    running experiments are not compared; an experiment without a table's metrics is left out
    of that table, and both are said. Exits 1 when no requested table has a row, 2 when DVC is
    missing, --repo is not a DVC repository or the input is not `dvc exp show --json`.
    """
    from .compare import TABLES, build_tables, print_tables, read_input, run_exp_show, to_json
    from .compare import markdown as to_markdown

    doc = read_input(input_file) if input_file else run_exp_show(repo, all_commits=all_commits)
    wanted = TABLES if table is TableChoice.all else (table.value,)
    tables, skipped = build_tables(doc, wanted, only=exp or None)
    if json_out:
        print(to_json(tables, skipped))
    elif markdown:
        print(to_markdown(tables, skipped), end="")
    else:
        print_tables(_console(), tables, skipped)
    if not any(t.rows for t in tables):
        raise typer.Exit(EXIT_NO_MATCH)


@user_errors
def plan(
    params: Path = typer.Option(Path("params.yaml"), "--params", help="Params file to plan for."),
    problems: int | None = typer.Option(
        None, "--problems", min=1, help="Problems in the set (default: problems.limit)."
    ),
    failure_rate: float = typer.Option(
        0.75, "--failure-rate", help="Assumed share of attempts that fail (0..1)."
    ),
    keep_rate: float = typer.Option(
        0.5,
        "--keep-rate",
        help="Assumed share of intervention slots (failed attempt x min(M, max_per_attempt)) "
        "that end with a kept intervention (0..1).",
    ),
    select_rate: float = typer.Option(
        1.0,
        "--select-rate",
        help="Assumed share of kept interventions the guided check selects for SFT (0..1; "
        "1 is the upper bound).",
    ),
    eval_problems: int | None = typer.Option(
        None,
        "--eval-problems",
        help="Benchmark problems in all (default: counted from the evaluation benchmarks' "
        "files; needed for hub benchmarks).",
    ),
    nodes: int = typer.Option(1, "--nodes", help="Nodes the run gets."),
    gpus_per_node: int = typer.Option(
        8, "--gpus-per-node", help="GPUs per node (the training batch is read as written for one)."
    ),
    throughput: float | None = typer.Option(
        None,
        "--throughput",
        help="Generation speed of one whole node in new tokens per second (instead of "
        "--gen-tokens-per-gpu).",
    ),
    gen_tokens_per_gpu: float | None = typer.Option(
        None, "--gen-tokens-per-gpu", help="Generation speed in new tokens per second per GPU."
    ),
    train_tokens_per_gpu: float | None = typer.Option(
        None,
        "--train-tokens-per-gpu",
        help="Training speed (forward + backward) in tokens per second per GPU.",
    ),
    train_efficiency: float = typer.Option(
        0.9,
        "--train-efficiency",
        help="Share of the linear training speed-up kept per doubling of nodes (0..1].",
    ),
    seq_tokens_per_s: float | None = typer.Option(
        None,
        "--seq-tokens-per-s",
        help="One sequence's decode speed: no stage or RL step ends before its longest "
        "generation is decoded at this rate.",
    ),
    json_out: bool = JSON,
) -> None:
    """Estimate the generations, tokens, wall time and GPU-hours each stage will cost.

    Upper bounds: every generation is counted at its max_new_tokens and every training sequence
    at its length limit; prompt tokens of generations are not counted. Failed attempts, kept
    and selected interventions come from the assumed rates. Times need a stated speed: generation
    (--gen-tokens-per-gpu or --throughput) scales with the GPUs (data parallel); training
    (--train-tokens-per-gpu) keeps the config's global batch (written for one node), so it uses
    at most one GPU per sequence of that batch and loses --train-efficiency per doubling of
    nodes. GPU-hours count every GPU held.
    """
    cluster = Cluster(
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        gen_tokens_per_gpu=gen_tokens_per_gpu,
        train_tokens_per_gpu=train_tokens_per_gpu,
        train_efficiency=train_efficiency,
        seq_tokens_per_s=seq_tokens_per_s,
        throughput=throughput,
    )
    result = estimate(
        params,
        problems=problems,
        failure_rate=failure_rate,
        keep_rate=keep_rate,
        select_rate=select_rate,
        cluster=cluster,
        eval_problems=eval_problems,
    )
    if json_out:
        print(json.dumps(result.to_dict(), indent=2))
        return

    def hours(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f}"

    def wall(value: float | None) -> str:
        return "—" if value is None else format_duration(value)

    a = result.assumptions
    c = a["cluster"]
    table = Table(
        title=f"plan for {params} on {c['nodes']} node(s) x {c['gpus_per_node']} GPUs",
        title_justify="left",
    )
    for col in ("stage", "items", "generations", "tokens (max)", "GPUs", "time", "GPU-hours"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in result.stages:
        table.add_row(
            s.stage,
            f"{s.items:,} {s.item_unit}",
            f"{s.generations:,}",
            f"{(s.train_tokens if s.stage == 'sft' else s.new_tokens):,}",
            f"{s.gpus:,}" if s.gpus is not None else "",
            wall(s.seconds),
            hours(s.gpu_hours),
        )
    for kind in ("generation", "training"):
        table.add_row(
            f"{kind} total",
            "",
            "",
            "",
            "",
            wall(result.seconds_of(kind)),
            hours(result.gpu_hours_of(kind)),
        )
    table.add_row(
        "total",
        "",
        f"{result.total_generations:,}",
        "",
        f"{c['gpus']:,} held",
        wall(result.total_seconds),
        hours(result.total_gpu_hours),
    )
    console = _console()
    console.print(table)
    for s in result.stages:
        console.print(f"{s.stage}: {s.note}", style="dim")
    console.print(
        "total: the stages one after another; GPU-hours count every GPU held", style="dim"
    )
    console.print(
        f"assumed: failure rate {a['failure_rate']:g}, keep rate {a['keep_rate']:g}, "
        f"select rate {a['select_rate']:g}",
        style="dim",
    )
    if c["throughput"] is not None:
        gen = f"{c['throughput']:,g} new tokens/s per node"
    elif c["gen_tokens_per_gpu"] is not None:
        gen = f"{c['gen_tokens_per_gpu']:,g} new tokens/s per GPU"
    else:
        gen = "not given (--gen-tokens-per-gpu or --throughput for times)"
    train = (
        f"{c['train_tokens_per_gpu']:,g} tokens/s per GPU"
        if c["train_tokens_per_gpu"] is not None
        else "not given (--train-tokens-per-gpu for times)"
    )
    seq = (
        f"{c['seq_tokens_per_s']:,g} tokens/s"
        if c["seq_tokens_per_s"] is not None
        else "not given (no floor)"
    )
    console.print(
        f"speeds: generation {gen}, data parallel over {a['tensor_parallel_size']}-GPU "
        f"replicas; training {train}, efficiency {c['train_efficiency']:g} per doubling of "
        f"nodes, global batch kept ({a['sft_global_batch']} SFT sequences, "
        f"{a['rl_completions_per_step']} RL completions per step); one sequence's decode {seq}",
        style="dim",
    )
    for note in result.verified:
        console.print(f"verified: {note}", style="dim")


def _flat(doc: str | None) -> str:
    """A docstring as help text: paragraphs kept, the line breaks inside them removed."""
    paragraphs = (doc or "").strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


for _command in (show, funnel, report, compare, plan):
    app.command(help=_flat(_command.__doc__))(_command)


def main() -> None:
    """Console-script entry point."""
    app()
