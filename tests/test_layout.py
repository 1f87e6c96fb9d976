"""The package's layout: small modules with one idea each, the science at the top, no import cycle.

The science (mixtures, networks, losses, samplers, training, metrics) is the top level of
``ncsn_toy``; the pictures (``ncsn_toy.figures``) and the command line (``ncsn_toy.commands``) are
subpackages that use it, never the other way round.
"""

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ncsn_toy"
SUBPACKAGES = ("figures", "commands")
TOP_LEVEL = sorted(PACKAGE.glob("*.py"))
MODULES = sorted(PACKAGE.rglob("*.py"))
# the top level stays a list one can read at a glance: one module per idea of the science
MAX_TOP_LEVEL_MODULES = 18
# a module longer than this holds more than one idea: split it by idea, never compress it
MAX_LINES = 450


def module_id(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


# ---------------------------------------------------------------------------- size and ideas
def test_at_most_eighteen_modules_at_the_top_level():
    assert len(TOP_LEVEL) <= MAX_TOP_LEVEL_MODULES, [p.name for p in TOP_LEVEL]


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_no_module_over_450_lines(path):
    n_lines = len(path.read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{module_id(path)} has {n_lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_every_module_states_its_one_idea_on_its_first_line(path):
    """A module docstring whose first line is one sentence: non-empty, ending in '.' or ':'."""
    docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    assert docstring, f"{module_id(path)} has no module docstring"
    first_line = docstring.split("\n", 1)[0].strip()
    assert first_line, f"{module_id(path)}: the docstring's first line is empty"
    assert first_line.endswith((".", ":")), (
        f"{module_id(path)}: the docstring's first line is not a sentence: {first_line!r}"
    )


# ---------------------------------------------------------------------------- the import graph
@dataclass(frozen=True)
class Edge:
    """One import statement's edge: ``module`` imports ``target``, both modules of the package."""

    module: str  # dotted name of the importing module
    target: str  # dotted name of the imported module (a package's __init__ is the package)
    line: int  # where the import statement is
    lazy: bool  # inside a package's module-level __getattr__: runs on first attribute access


def module_name(path: Path, package: Path) -> str:
    """The dotted name of the module at ``path`` inside the package folder ``package``."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def lazy_import_nodes(tree: ast.Module) -> set[int]:
    """The ids of the import nodes inside the module-level ``def __getattr__`` (PEP 562)."""
    nodes = set()
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == "__getattr__":
            for node in ast.walk(statement):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nodes.add(id(node))
    return nodes


def imports_of(path: Path, package: Path, modules: set[str]) -> list[Edge]:
    """Every import in ``path`` of a module of the package, at any depth of the code.

    Module level, inside functions and under ``if TYPE_CHECKING:`` alike: a module that needs
    another's names, even only for its types, depends on it. ``from X import name`` is an edge to
    the submodule ``X.name`` when there is one, else to ``X`` itself (for ``from ncsn_toy import
    two_gaussians`` that is ``ncsn_toy/__init__.py``). The packages above a module, which Python
    initialises before it, are not edges: every module would depend on its own package, and a
    package that imports its modules would always be a cycle.
    """
    tree = ast.parse(path.read_text())
    own = module_name(path, package)
    # the package a relative import counts from: the module's own package
    here = own.split(".") if path.name == "__init__.py" else own.split(".")[:-1]
    lazy_nodes = lazy_import_nodes(tree) if path.name == "__init__.py" else set()
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                source = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.append(submodule if submodule in modules else source)
        for target in targets:
            if target in modules and target != own:
                found.append(Edge(own, target, node.lineno, id(node) in lazy_nodes))
    return found


def package_imports(package: Path) -> list[Edge]:
    """Every import edge between the modules of the package in the folder ``package``."""
    paths = sorted(package.rglob("*.py"))
    modules = {module_name(path, package) for path in paths}
    return [edge for path in paths for edge in imports_of(path, package, modules)]


def import_graph(package: Path, include_lazy: bool = False) -> dict[str, dict[str, int]]:
    """Module -> {imported module: line of the import}, over every module of the package.

    A lazy import (inside a package's module-level ``__getattr__``) is left out unless asked for:
    it runs on the first access to the attribute, after the package has finished importing, so
    it cannot meet a half-initialised module the way an import cycle does. In ncsn_toy it is how
    ``ncsn_toy.explorer`` is loaded on demand; test_api's test_explorer_is_imported_lazily
    checks that ``import ncsn_toy`` never takes it.
    """
    graph = {module_name(path, package): {} for path in package.rglob("*.py")}
    for edge in package_imports(package):
        if include_lazy or not edge.lazy:
            graph[edge.module].setdefault(edge.target, edge.line)
    return graph


def strongly_connected_components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm: the sets of modules that all reach each other through imports."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = len(index)
        lowlink[node] = index[node]
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module: each holds an import cycle."""
    return [c for c in strongly_connected_components(graph) if len(c) > 1]


def describe_cycle(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """The shortest cycle through the component's first module, with the line of each import.

    For example ``a (line 3) -> b (line 7) -> a``: a imports b at its line 3, b imports a at 7.
    """
    start = component[0]
    members = set(component)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor in sorted(graph[node]):
            if successor == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                path = [*reversed(chain), start]
                steps = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(path)]
                return " -> ".join([*steps, start])
            if successor in members and successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise AssertionError(f"no cycle through {start} in {component}")


def cycles_message(cycles: list[list[str]], graph: dict[str, dict[str, int]]) -> str:
    lines = [f"{len(cycles)} import cycle(s); break each by moving the shared part to one module:"]
    lines += [f"  {describe_cycle(component, graph)}" for component in cycles]
    return "\n".join(lines)


def test_no_import_cycle_in_the_package():
    graph = import_graph(PACKAGE)
    cycles = import_cycles(graph)
    assert not cycles, cycles_message(cycles, graph)


def test_the_only_lazy_import_is_the_explorer_and_only_it_reaches_the_figures():
    """``ncsn_toy/__init__.py`` reaches the subpackages only through its lazy ``explorer``.

    Leaving that edge out of the cycle check is a decision: this test keeps it to that one edge.
    """
    edges = package_imports(PACKAGE)
    lazy = {(edge.module, edge.target) for edge in edges if edge.lazy}
    assert lazy == {("ncsn_toy", "ncsn_toy.figures.explorer")}
    upward = {
        edge.target
        for edge in edges
        if edge.module == "ncsn_toy" and not edge.lazy and is_in_subpackage(edge.target)
    }
    assert not upward, f"ncsn_toy/__init__.py imports {sorted(upward)} when it is imported"


# the cycle check itself, on small packages written for it: file -> its lines
SYNTHETIC_PACKAGES = {
    "acyclic": {
        "__init__.py": [
            "from .a import f",
            "def __getattr__(name):",
            "    from .sub.c import h",
            "    return h",
        ],
        "a.py": [
            "from . import b",
            "def f():",
            "    return b",
        ],
        "b.py": ["import os"],
        "sub/__init__.py": [],
        "sub/c.py": [
            "from .. import a",
            "from pkg import f",
            "import pkg.b",
            "def h():",
            "    return f",
        ],
    },
    "siblings, one import inside a function": {
        "__init__.py": [],
        "a.py": ["from .b import g"],
        "b.py": [
            "def g():",
            "    from . import a",
            "    return a",
        ],
    },
    "a name from the package itself": {
        "__init__.py": [
            "from .a import f",
            "VERSION = 1",
        ],
        "a.py": [
            "from pkg import VERSION",
            "def f():",
            "    return VERSION",
        ],
    },
    "three modules, one only for type checking": {
        "__init__.py": [],
        "a.py": ["import pkg.b"],
        "b.py": ["from .sub import c"],
        "sub/__init__.py": [],
        "sub/c.py": [
            "from typing import TYPE_CHECKING",
            "if TYPE_CHECKING:",
            "    from ..a import X",
        ],
    },
}
EXPECTED_CYCLES = {
    "acyclic": [],
    "siblings, one import inside a function": [["pkg.a", "pkg.b"]],
    "a name from the package itself": [["pkg", "pkg.a"]],
    "three modules, one only for type checking": [["pkg.a", "pkg.b", "pkg.sub.c"]],
}


def write_package(folder: Path, files: dict[str, list[str]]) -> Path:
    """The package ``pkg`` in ``folder``, made of ``files`` (file -> its lines)."""
    package = folder / "pkg"
    for name, lines in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines))
    return package


@pytest.mark.parametrize("case", SYNTHETIC_PACKAGES)
def test_the_cycle_check_on_small_packages(tmp_path, case):
    graph = import_graph(write_package(tmp_path, SYNTHETIC_PACKAGES[case]))
    cycles = import_cycles(graph)
    assert cycles == EXPECTED_CYCLES[case]
    message = cycles_message(cycles, graph)
    for component in cycles:
        assert all(module in message for module in component), message


def test_the_small_packages_resolve_every_kind_of_import(tmp_path):
    """Relative, absolute, package-level and lazy imports land on the right modules."""
    package = write_package(tmp_path, SYNTHETIC_PACKAGES["acyclic"])
    assert import_graph(package) == {
        "pkg": {"pkg.a": 1},
        "pkg.a": {"pkg.b": 1},
        "pkg.b": {},
        "pkg.sub": {},
        "pkg.sub.c": {"pkg.a": 1, "pkg": 2, "pkg.b": 3},
    }
    # the lazy import is found, and with it the package would be a cycle
    with_lazy = import_graph(package, include_lazy=True)
    assert with_lazy["pkg"] == {"pkg.a": 1, "pkg.sub.c": 3}
    assert import_cycles(with_lazy) == [["pkg", "pkg.sub.c"]]


def test_the_cycle_is_named_with_its_lines(tmp_path):
    package = write_package(tmp_path, SYNTHETIC_PACKAGES["siblings, one import inside a function"])
    graph = import_graph(package)
    assert describe_cycle(["pkg.a", "pkg.b"], graph) == "pkg.a (line 1) -> pkg.b (line 2) -> pkg.a"


# ---------------------------------------------------------------------------- layers
def is_in_subpackage(module: str) -> bool:
    return any(module.startswith(f"ncsn_toy.{sub}") for sub in SUBPACKAGES)


def imports_from(path: Path) -> set[str]:
    """The modules of ncsn_toy that the module at ``path`` imports, lazily or not."""
    modules = {module_name(p, PACKAGE) for p in MODULES}
    return {edge.target for edge in imports_of(path, PACKAGE, modules)}


@pytest.mark.parametrize(
    "path",
    [p for p in TOP_LEVEL if p.name not in ("__init__.py", "__main__.py")],
    ids=lambda p: p.name,
)
def test_science_never_imports_pictures_or_commands(path):
    upward = {name for name in imports_from(path) if is_in_subpackage(name)}
    assert not upward, f"{path.name} imports {sorted(upward)}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "figures").rglob("*.py")), ids=module_id)
def test_figures_never_import_commands(path):
    commands = {name for name in imports_from(path) if name.startswith("ncsn_toy.commands")}
    assert not commands, f"{module_id(path)} imports {sorted(commands)}"
