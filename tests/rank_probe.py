"""Run a real stage script (``stages/sft.py``) in this process and report what this rank did.

Used by tests/test_multinode_training.py in place of the stage script on a launcher's command
line: ``rank_probe.py STAGE_SCRIPT [ARGS ...]``. The stage runs unchanged (``runpy``, as
``__main__``); the probe only watches. At exit it writes ``$RANK_PROBE_DIR/rank<RANK>.json``
with this process's rank, node rank and world size as the launcher set them, a SHA-256 of the
trained parameters as they stood before the model was saved (float32 bytes, every tensor by
name), and the paths this process wrote through the training code's output functions
(``write_json``, ``replace_dir``). A helper module, not a test file.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from intervention_training.training import callbacks, common, sft

report: dict[str, Any] = {
    "rank": int(os.environ.get("RANK", "0")),
    "node_rank": int(os.environ.get("GROUP_RANK", "0")),
    "world_size_env": int(os.environ.get("WORLD_SIZE", "1")),
    "writes": [],
}


def _watch(name: str) -> None:
    original = getattr(common, name)

    def wrapped(path: Any, *args: Any, **kwargs: Any) -> Any:
        target = args[0] if name == "replace_dir" else path  # replace_dir(tmp, out)
        report["writes"].append(str(target))
        return original(path, *args, **kwargs)

    setattr(common, name, wrapped)


def _checksum(model: Any) -> str:
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


_save_model = sft.save_model


def _save_model_watched(trainer: Any, out_dir: Any) -> None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    report["checksum"] = _checksum(model)
    report["world_size"] = trainer.accelerator.num_processes
    report["global_step"] = trainer.state.global_step
    _save_model(trainer, out_dir)


def _dump() -> None:
    folder = Path(os.environ["RANK_PROBE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{report['rank']}.json").write_text(json.dumps(report), encoding="utf-8")


for _name in ("write_json", "replace_dir"):
    _watch(_name)

_live_class = callbacks._live_class


def _live_class_watched() -> Any:
    # the DVCLive curves: whoever starts a Live object writes the curves folder
    report["writes"].append("live")
    return _live_class()


callbacks._live_class = _live_class_watched
sft.save_model = _save_model_watched
atexit.register(_dump)

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = [script, *sys.argv[2:]]
    runpy.run_path(script, run_name="__main__")
