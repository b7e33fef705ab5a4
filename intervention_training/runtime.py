"""What every stage script shares: logging, params, one error line, summaries.

Nothing here is stage logic, and no library module imports this one: it sits above the library,
next to the stage scripts (generating stages open their backend with
:func:`intervention_training.backends.open_backend`).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError, ServerError

log = logging.getLogger("intervention_training")

F = TypeVar("F", bound=Callable[..., Any])


def summary_line(stage: str, counts: Mapping[str, Any]) -> str:
    parts = []
    for key, value in counts.items():
        if isinstance(value, Mapping):
            inner = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
            parts.append(f"{key} ({inner})")
        else:
            parts.append(f"{key}={value}")
    return f"[{stage}] " + "; ".join(parts)


def setup_logging() -> None:
    """Our own one-line summaries on stderr; library progress bars and chatter off.

    transformers reads both settings from the environment when it is first imported, so a stage
    that never loads a model does not pay for importing it (about 2 s and 250 MB with torch).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if "transformers" in sys.modules:  # imported before the settings above: apply them now
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage_entry(stage: str) -> Callable[[F], F]:
    """Decorate a stage's main: log setup, and one clear line + exit 2 on bad input or params
    (any :class:`~.errors.InputError`), exit 3 when inference servers failed it
    (:class:`~.errors.ServerError`: finished shards stay for the rerun)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            setup_logging()
            try:
                return fn(*args, **kwargs)
            except InputError as exc:
                print(f"[{stage}] error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            except ServerError as exc:
                print(f"[{stage}] server error: {exc}", file=sys.stderr)
                raise SystemExit(3) from None

        return inner  # type: ignore[return-value]

    return wrap


def load_stage_params(path: str | Path, *sections: str) -> list[Any]:
    """Validate the whole params file (unknown keys fail here), then return ``sections``.

    TRL trainer field names are checked only when a training section is asked for (the check
    imports TRL and torch).
    """
    from .config import SECTIONS, Section, TrainingSection, validate_all

    training = any(issubclass(SECTIONS.get(name, Section), TrainingSection) for name in sections)
    parsed = validate_all(path, trainer_fields=training)
    return [parsed[name] for name in sections]
