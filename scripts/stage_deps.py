"""The code each DVC stage runs: the import closure of its script inside the package.

``python scripts/stage_deps.py`` prints, for every stage of dvc.yaml, the code deps it should
list (a folder where the stage imports every module in it); ``tests/test_stage_deps.py`` asserts
that dvc.yaml lists exactly these. Imports are read statically (``ast``), including imports
inside functions (lazy imports run too) and excluding ``if TYPE_CHECKING:`` blocks; importing a
module runs its package's ``__init__.py`` files, so those count as well; a string naming a
sibling ``.py`` file (a script run in a subprocess, as the grader's workers are) counts as an
import of that file.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "intervention_training"
_SCRIPT = re.compile(r"stages/\w+\.py")
_MODULE = re.compile(r"python -m ([\w.]+)")


def module_file(module: str) -> Path | None:
    """The file of a package module (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``), or None."""
    base = ROOT / Path(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(path: Path) -> tuple[set[str], set[Path]]:
    """Package modules that ``path`` imports (module names), and sibling scripts it names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path) if path.is_relative_to(ROOT / PACKAGE) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    scripts: set[Path] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
            if name.endswith(".py") and "/" not in name and (path.parent / name).is_file():
                scripts.add(path.parent / name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    modules = {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None}
    return modules, scripts


def closure(entry: Path) -> set[Path]:
    """Every package file that running ``entry`` can execute (``entry`` itself included)."""
    seen: set[Path] = set()
    todo = [entry]
    if entry.is_relative_to(ROOT / PACKAGE):  # run as a module: its packages are imported first
        parts = _module_name(entry).split(".")
        todo += [f for i in range(1, len(parts)) if (f := module_file(".".join(parts[:i])))]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        modules, scripts = _imported(path)
        todo.extend(scripts)
        for module in modules:
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # parent packages' __init__ run first
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    return seen


def stage_entries(cmd: str) -> list[Path]:
    """The scripts (a launcher and the stage script, or a ``python -m`` module) a command runs."""
    if scripts := _SCRIPT.findall(cmd):
        return [ROOT / s for s in dict.fromkeys(scripts)]
    if m := _MODULE.search(cmd):
        main = module_file(m.group(1) + ".__main__") or module_file(m.group(1))
        if main is not None:
            return [main]
    raise ValueError(f"no stage script in command: {cmd}")


def dvc_stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, dict]:
    """Stage name -> its definition (``foreach`` stages by their template name)."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {name: spec.get("do", spec) for name, spec in stages.items()}


def expected_deps(entries: list[Path]) -> list[str]:
    """The code deps a stage should list: the closure of its scripts, whole folders folded into
    one entry."""
    files = {p.relative_to(ROOT) for entry in entries for p in closure(entry)}
    out: set[Path] = set(files)
    for folder in sorted({f.parent for f in files}, key=lambda p: len(p.parts)):
        if folder == Path(PACKAGE) or folder == Path("stages"):
            continue
        inside = {p.relative_to(ROOT) for p in (ROOT / folder).rglob("*.py")}
        if inside <= files and not any(f in out for f in folder.parents if f != Path(".")):
            out -= inside
            out.add(folder)
    return sorted((str(p) for p in out), key=lambda s: (not s.startswith("stages/"), s))


def listed_code_deps(spec: dict) -> list[str]:
    """The deps of a stage that are code (the script and package files or folders)."""
    return [d for d in spec.get("deps", []) if d.startswith(("stages/", f"{PACKAGE}/"))]


def main() -> int:
    for name, spec in dvc_stages().items():
        print(f"{name}:")
        for dep in expected_deps(stage_entries(spec["cmd"])):
            print(f"  - {dep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
