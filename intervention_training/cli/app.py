"""The ``int`` command line: look inside the pipeline's artifacts, report on them, plan a run.

Exit status: 0 success; 1 nothing matched (``show`` filters selected no row); 2 bad input (an
unknown artifact name, a missing or unreadable artifact, an invalid option or params file).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
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
from .plan import estimate, format_duration
from .render import generic_card, print_cards
from .select import RowFilter, first_matches, restrict_context

EXIT_NO_MATCH = 1
EXIT_BAD_INPUT = 2

HELP = (
    "Look inside the InT pipeline: show artifacts' rows, count the funnel, write an HTML "
    "report, plan a run. Exit status: 0 success; 1 nothing matched (show); 2 bad input "
    "(unknown artifact name, missing or unreadable artifact, invalid option or params file)."
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
    throughput: float | None = typer.Option(
        None, "--throughput", help="Generation speed in new tokens per second (gives times)."
    ),
    json_out: bool = JSON,
) -> None:
    """Estimate the generations, new tokens and time each generating stage will cost.

    Upper bounds: every generation is counted at its max_new_tokens; prompt tokens are not
    counted. Failed attempts and kept interventions come from the assumed rates.
    """
    result = estimate(
        params,
        problems=problems,
        failure_rate=failure_rate,
        keep_rate=keep_rate,
        throughput=throughput,
    )
    if json_out:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"plan for {params}", title_justify="left")
    for col in ("stage", "items", "generations", "new tokens (max)", "time", "how"):
        table.add_column(col, justify="left" if col in ("stage", "how") else "right")
    for s in result.stages:
        time = format_duration(s.seconds) if s.seconds is not None else "—"
        table.add_row(
            s.stage,
            f"{s.items:,} {s.item_unit}",
            f"{s.generations:,}",
            f"{s.new_tokens:,}",
            time,
            s.note,
        )
    total = result.total_seconds
    table.add_row(
        "total",
        "",
        f"{result.total_generations:,}",
        f"{result.total_tokens:,}",
        format_duration(total) if total is not None else "—",
        "",
    )
    console = _console()
    console.print(table)
    a = result.assumptions
    console.print(
        f"assumed: failure rate {a['failure_rate']:g}, keep rate {a['keep_rate']:g}"
        + ("" if throughput else "; pass --throughput TOKENS_PER_S for times"),
        style="dim",
    )
    for note in result.verified:
        console.print(f"verified: {note}", style="dim")


def _flat(doc: str | None) -> str:
    """A docstring as help text: paragraphs kept, the line breaks inside them removed."""
    paragraphs = (doc or "").strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


for _command in (show, funnel, report, plan):
    app.command(help=_flat(_command.__doc__))(_command)


def main() -> None:
    """Console-script entry point."""
    app()
