"""The ``int`` command line: ``show``, ``funnel``, ``report`` and ``plan`` (see docs/cli.md)."""

from .app import app, main

__all__ = ["app", "main"]
