"""dvc.yaml says what each stage depends on, completely: every darts module a stage's command can
execute (and the package data those modules read) lies under one of the stage's deps, so editing
it reruns the stage; and precisely: no stage depends on ``darts`` as a whole (a report change must
not rerun a search).

A stage runs ``darts <command>``; what it executes is the import closure of
``darts/commands/<command>.py``: its imports, function-local ones included (``run()`` imports the
torch-heavy modules inside it), followed transitively through every darts module reached, with the
packages' ``__init__.py`` files that hold code. Imports under ``if TYPE_CHECKING:`` never run and
are left out; a string naming a darts module counts as an import (``importlib`` dispatch). The
dispatcher, ``darts/cli.py``, and the other commands it imports only to build its parser, parse
arguments and call the command: they are left out, so editing one command reruns only its stages.
"""

from __future__ import annotations

import ast
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml

from darts.pipeline.workspace import SOURCES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "darts"

# Package data and the module that reads it (at import time or when called).
DATA_READERS = {"darts/resources/genotypes.json": "darts/genotypes.py"}


def _stages() -> dict[str, dict]:
    """Stage name -> its definition (foreach's ``do`` unwrapped); YAML anchors resolved."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


STAGES = _stages()


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST):
    """The nodes under ``node``, function bodies included, ``if TYPE_CHECKING:`` bodies left out."""
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            yield from (n for orelse in child.orelse for n in (orelse, *_walk(orelse)))
            continue
        yield child
        yield from _walk(child)


@cache
def _imports(path: Path) -> frozenset[str]:
    """The darts modules ``path`` imports, function-local imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("darts.")
              and node.value.isidentifier() is False and _module_file(node.value)):
            found.add(node.value)   # a module named by a string: importlib dispatch
    modules = set()
    for name in found:
        if name == "darts" or name.startswith("darts."):
            parts = name.split(".")
            # a module runs its packages' __init__ first
            modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if _module_file(".".join(parts[:i])))
    return frozenset(modules)


def closure(roots: list[str]) -> set[Path]:
    """The module files reached from ``roots`` (module names), following imports transitively."""
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        assert path is not None, f"darts module {name} not found"
        todo.extend(_imports(path) - seen)
    return {_module_file(name) for name in seen}


def command_closure(command: str) -> set[str]:
    """Files (relative to the project) that ``darts <command>`` can execute or read."""
    files = closure([f"darts.commands.{command}"])
    rel = {str(p.relative_to(ROOT)) for p in files if p.name != "__init__.py" or p.read_text(encoding="utf-8").strip()}
    return rel | {data for data, reader in DATA_READERS.items() if reader in rel}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def command_of(stage: dict) -> str:
    argv = shlex.split(stage["cmd"])
    assert argv[0] == "darts", f"{stage['cmd']}: a stage runs `darts <command>`"
    return argv[1]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_cover_the_import_closure_of_the_stage_command(name):
    stage = STAGES[name]
    needed = command_closure(command_of(stage))
    missing = sorted(p for p in needed if not covered(p, stage["deps"]))
    assert not missing, f"dvc.yaml stage {name}: deps miss files its command runs or reads: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_are_precise_and_inside_a_workspace(name):
    """No coarse ``darts`` dep (a report change must not rerun a search); every source dep exists and is
    copied into a smoke workspace (darts/pipeline/workspace.py's SOURCES), every other one is a stage's output."""
    outs = [str(o if isinstance(o, str) else next(iter(o))) for s in STAGES.values() for o in s.get("outs", [])]
    prefixes = [o.split("${")[0] for o in outs]
    for dep in STAGES[name]["deps"]:
        assert dep.rstrip("/") != "darts", f"dvc.yaml stage {name}: depends on all of darts/"
        literal = dep.split("${")[0]
        if any(p.startswith(literal) or literal.startswith(p) for p in prefixes):
            continue   # another stage's output
        assert (ROOT / dep).exists(), f"dvc.yaml stage {name}: dep {dep} does not exist"
        assert covered(dep, list(SOURCES)), f"dvc.yaml stage {name}: dep {dep} is not copied into a workspace"


def test_the_closure_follows_function_local_imports_and_leaves_out_the_dispatcher():
    tabulate, search = command_closure("tabulate"), command_closure("search")
    assert "darts/report/tables.py" in tabulate          # imported inside tabulate's run()
    assert "darts/search/bilevel.py" in search           # search.cnn -> bilevel, imported inside run()
    assert not any(p.startswith("darts/report/") for p in search)
    assert "darts/cli.py" not in search and "darts/__init__.py" in search
