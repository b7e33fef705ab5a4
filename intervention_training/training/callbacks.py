"""Trainer callbacks shared by the SFT and RL stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .common import log_rows, write_log


class StepLogCallback(TrainerCallback):
    """Rewrite the per-step JSON log (see :func:`.common.log_rows`) at every logging step.

    Built from ``state.log_history``, which a resumed run restores from its checkpoint, so the
    file always covers every step since the start, not only those of the last attempt. Only the
    main process writes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            write_log(self.path, log_rows(state.log_history))
