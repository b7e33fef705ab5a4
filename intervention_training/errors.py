"""The one base class of "bad input" errors, so a stage turns every one of them into one line.

Each layer raises its own subclass (a params file: ``ConfigError``; an artifact file:
``ArtifactError``; a model folder: ``ModelError``; a problem or benchmark source:
``ProblemSourceError``), with a message that names the file, row and column. Stage scripts
catch :class:`InputError` alone: one clear line on stderr and exit status 2, and no artifact
is touched (writes are atomic).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input or configuration; the message says which file, row, column or key."""


class ServerError(RuntimeError):
    """An inference server failed the stage: every server unreachable, retries spent, a served
    model other than the expected one. Stage scripts print the one line and exit 3; finished
    generation shards stay, so the rerun resumes."""
