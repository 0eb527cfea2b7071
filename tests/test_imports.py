"""The import rules of the layout (docs/design.md), read from every module's syntax tree: the arrows
point down (commands -> pipeline -> train/search -> spaces), shared infrastructure sits in neutral
modules, and every import is a plain statement a reader (or a static tool) can follow. Imports under
``if TYPE_CHECKING:`` are exempt: they exist for annotations only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "darts"

# package folder -> the darts modules/packages it must not import from
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pipeline": ("commands", "cli", "report"),
    "search": ("commands", "cli", "train", "pipeline", "report"),
    "train": ("commands", "cli", "search", "pipeline", "report"),
    "spaces": ("commands", "cli", "search", "train", "pipeline", "report", "config", "data"),
}

# (module, imported) pairs another change is removing right now; each is one xfail case, not a waiver.
BEING_MOVED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, name: str | None = None) -> list[str]:
    """The absolute names module ``name`` (default: ``path``'s) imports (``from a import b`` gives
    ``a.b``), function-local ones included, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join([*package[:len(package) - node.level + 1], *([base] if base else [])])
            found.extend(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def violations(folder: str) -> list[tuple[str, str]]:
    banned = tuple(f"darts.{name}" for name in FORBIDDEN[folder])
    return sorted({
        (module_name(path), name)
        for path in (PACKAGE / folder).rglob("*.py")
        for name in imports(path)
        if any(name == b or name.startswith(b + ".") for b in banned)
    })


def _cases() -> list:
    cases = []
    for folder in FORBIDDEN:
        found = violations(folder)
        moving = [v for v in found if v in BEING_MOVED]
        rest = [v for v in found if v not in BEING_MOVED]
        cases.append(pytest.param(folder, rest, id=folder))
        cases += [pytest.param(folder, [v], id=f"{folder}:{v[0]}->{v[1]}",
                               marks=pytest.mark.xfail(reason=f"being moved: {BEING_MOVED[v]}", strict=True))
                  for v in moving]
    return cases


@pytest.mark.parametrize("folder, found", _cases())
def test_arrows_point_down(folder, found):
    assert found == [], f"darts/{folder}/ imports from {', '.join(FORBIDDEN[folder])} are not allowed: {found}"


# importlib.resources (package data) and importlib.metadata are fine; loading code by name is not.
DISPATCH = ("importlib.import_module", "importlib.util", "importlib.__import__")


def test_no_importlib_dispatch():
    """Commands and spaces are imported by name in the source, never looked up from strings."""
    users = sorted({(module_name(p), n) for p in PACKAGE.rglob("*.py") for n in imports(p)
                    if n == "importlib" or n.startswith(DISPATCH)})
    assert users == []


def test_the_rules_see_imports_inside_functions_and_skip_type_checking_blocks(tmp_path):
    """The parser the rules rest on: function-local and relative imports count, annotations-only ones do not."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from darts.report import runs\n"
                     "def f():\n    from darts.commands import train\n    from . import plan\n")
    assert imports(probe, "darts.pipeline.probe") == ["typing.TYPE_CHECKING", "darts.commands.train",
                                                      "darts.pipeline.plan"]
