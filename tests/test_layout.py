"""The package's layout: the science at the top, pictures and commands in subpackages below it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ncsn_toy"
SUBPACKAGES = ("figures", "commands")
TOP_LEVEL = sorted(PACKAGE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the ncsn_toy modules that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = ["ncsn_toy", *path.parent.relative_to(PACKAGE).parts]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("ncsn_toy")}


def test_at_most_fifteen_modules_at_the_top_level():
    assert len(TOP_LEVEL) <= 15, [p.name for p in TOP_LEVEL]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300


@pytest.mark.parametrize(
    "path",
    [p for p in TOP_LEVEL if p.name not in ("__init__.py", "__main__.py")],
    ids=lambda p: p.name,
)
def test_science_never_imports_pictures_or_commands(path):
    upward = {
        name
        for name in imported_modules(path)
        if any(name.startswith(f"ncsn_toy.{sub}") for sub in SUBPACKAGES)
    }
    assert not upward, f"{path.name} imports {sorted(upward)}"


def test_figures_never_import_commands():
    for path in (PACKAGE / "figures").glob("*.py"):
        assert not {n for n in imported_modules(path) if n.startswith("ncsn_toy.commands")}, (
            path.name
        )
