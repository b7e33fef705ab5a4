"""Start a training stage script as ``accelerate launch --config_file CONFIG`` would.

Usage (dvc.yaml): ``python stages/launch.py CONFIG SCRIPT [ARGS ...]``.

A configuration for one process on the CPU with no mixed precision (the default,
``configs/accelerate/cpu.yaml``) runs the script with this Python directly: ``accelerate launch``
does exactly that after importing torch in a launcher process of its own, about 5 s on two
cores. Every other configuration goes to ``accelerate launch`` unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml


def is_plain_cpu(config: dict[str, Any]) -> bool:
    """True for a one-process, one-machine CPU configuration without mixed precision."""
    return (
        str(config.get("distributed_type", "NO")).upper() == "NO"
        and int(config.get("num_processes", 1) or 1) == 1
        and int(config.get("num_machines", 1) or 1) == 1
        and config.get("use_cpu") is True
        and str(config.get("mixed_precision", "no")).lower() == "no"
    )


def launch_command(config_path: Path, script_and_args: list[str]) -> list[str]:
    """The command that runs ``script_and_args`` under the accelerate file ``config_path``."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    if is_plain_cpu(config):
        return [sys.executable, *script_and_args]
    return ["accelerate", "launch", "--config_file", str(config_path), *script_and_args]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python stages/launch.py CONFIG SCRIPT [ARGS ...]", file=sys.stderr)
        return 2
    config = Path(argv[0])
    if not config.is_file():
        print(f"launch: {config}: no such accelerate configuration file", file=sys.stderr)
        return 2
    command = launch_command(config, argv[1:])
    print(f"launch: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)  # noqa: S606 - an argument list, no shell
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
