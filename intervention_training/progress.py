"""A progress bar for long loops: items done, rate and ETA on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """Yield ``tick(n)`` that advances a bar by ``n``; silent when stderr is not a TTY."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="req", disable=None, file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()
