"""Trainer callbacks shared by the SFT and RL stages: training curves through DVCLive.

The stages log every training step with DVCLive (DVC's own logger) into a folder that dvc.yaml
declares as plots, so ``dvc plots show``, ``dvc exp show`` and DVC's editor integrations see
loss, reward and the zero-advantage fraction per step. :class:`LiveCurves` extends the DVCLive
callback that ships with transformers in two ways:

* the DVCLive step is the trainer's ``global_step`` (the stock callback counts log calls, from
  0), and the metrics carry this project's names (:data:`.common.LOG_KEYS`, under ``train/``);
* a resumed run first writes back the steps in the restored ``log_history``: DVC deletes a
  stage's outputs before it reruns it, so without this the curves of an interrupted and resumed
  run would start at the resumed step.

Only the main process writes. ``report_to`` (W&B, TensorBoard, trackio ...) stays available
beside it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.integrations import DVCLiveCallback

from .common import log_rows

#: The DVCLive metric-name prefix of every logged value.
PREFIX = "train"


class LiveCurves(DVCLiveCallback):
    """Per-step training curves in the DVCLive folder ``live_dir`` (see the module docstring)."""

    def __init__(self, live_dir: str | Path) -> None:
        # log_model=False: HF_DVCLIVE_LOG_MODEL must not add checkpoint copies to a stage's outputs
        super().__init__(live=None, log_model=False)
        self.live_dir = Path(live_dir)

    def setup(self, args: Any, state: Any, model: Any) -> None:
        self._initialized = True
        if not state.is_world_process_zero:
            return
        # No dvc.yaml edits, no experiment of its own and no report: DVC runs the stage and
        # dvc.yaml declares the folder.
        self.live = _live_class()(
            dir=str(self.live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=False
        )
        for row in log_rows(state.log_history):  # a resumed run: the steps done before
            self._write_step(row)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        if not self._initialized:
            self.setup(args, state, kw.get("model"))
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        rows = log_rows([{**logs, "step": state.global_step}])
        if rows:
            self._write_step(rows[0])

    def _write_step(self, row: Mapping[str, Any]) -> None:
        self.live.step = int(row["step"])
        for name, value in row.items():
            if name != "step":
                self.live.log_metric(f"{PREFIX}/{name}", value)
        self.live.make_summary()


def _live_class() -> type:
    """DVCLive's ``Live``, made to work in a git repository without commits.

    dvclive 3.49 asks git for the current commit while it starts and catches only DVC's own
    errors, so in a fresh ``git init`` before the first commit (where ``dvc repro`` runs fine)
    it raises scmrepo's ``SCMError`` and the training stage would fail. That lookup only names
    an experiment, which the stages do not make (``save_dvc_exp=False``).
    """
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    class PipelineLive(Live):
        def _init_dvc(self) -> None:
            try:
                super()._init_dvc()
            except SCMError:
                pass

    return PipelineLive


def read_curves(live_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step rows (``step`` plus one key per metric) of a :class:`LiveCurves` folder,
    read back from DVCLive's TSV files; [] when the folder holds none."""
    rows: dict[int, dict[str, Any]] = {}
    folder = Path(live_dir) / "plots" / "metrics" / PREFIX
    for path in sorted(folder.glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for record in csv.DictReader(fh, delimiter="\t"):
                step = int(record["step"])
                rows.setdefault(step, {"step": step})[path.stem] = float(record[path.stem])
    return [rows[s] for s in sorted(rows)]
