"""What the DVCLive training curves cost an SFT run: the same run with and without them.

Usage (from the repository root):

    .venv/bin/python bench/training_curves.py [--steps 16] [--repeats 3] [--model PATH]

Model: the tiny random model of the tests (a step takes milliseconds, so the curves' own cost
is as visible as it can be), or ``--model`` (e.g. data/models/base). Each repeat trains the same
rows for ``--steps`` optimiser steps twice, alternating which goes first: with
:class:`~intervention_training.training.callbacks.LiveCurves` writing every step
(``logging_steps: 1``) and without a curves folder. Printed: wall time of each, the difference
per step, and the ratio with / without.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, table


def one_run(model: Path, rows: list[dict], steps: int, work: Path, curves: bool) -> float:
    from intervention_training.config import SftParams
    from intervention_training.training.sft import train_sft

    params = SftParams.model_validate(
        {
            "trainer": {
                "max_steps": steps,
                "per_device_train_batch_size": 2,
                "logging_steps": 1,
                "save_steps": 10**6,
                "use_cpu": True,
                "learning_rate": 1e-5,
                "report_to": "none",
                "disable_tqdm": True,
            }
        }
    )
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    train_sft(
        rows,
        model,
        params,
        out_dir=work / "out",
        checkpoints=work / "ckpt",
        live_dir=work / "live" if curves else None,
    )
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from transformers import AutoTokenizer
    from workspace import sft_rows

    root = Path(tempfile.mkdtemp(prefix="bench-curves-"))
    if args.model is None:
        from tiny_model import build_tiny_model

        model = build_tiny_model(root / "tiny-model")
    else:
        model = Path(args.model)
    rows = sft_rows(AutoTokenizer.from_pretrained(model))
    one_run(model, rows, 2, root / "warm", curves=True)  # imports, first kernels
    with_s, without_s = [], []
    for i in range(args.repeats):
        order = (True, False) if i % 2 == 0 else (False, True)
        for curves in order:
            t = one_run(model, rows, args.steps, root / "run", curves)
            (with_s if curves else without_s).append(t)
    shutil.rmtree(root, ignore_errors=True)
    w, wo = statistics.median(with_s), statistics.median(without_s)
    print(machine())
    print(f"model {model}, {args.steps} steps, {args.repeats} repeats (medians)")
    print(
        table(
            ["run", "wall s (median)", "all runs s"],
            [
                ["with DVCLive curves", w, " ".join(f"{t:.2f}" for t in with_s)],
                ["without curves", wo, " ".join(f"{t:.2f}" for t in without_s)],
            ],
        )
    )
    print(f"ratio with / without: {w / wo:.3f}; difference per step: {(w - wo) / args.steps:.4f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
