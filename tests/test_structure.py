"""The engine's shape: no import cycle between its modules, and Starlette only at the streaming edge.

Imports are read with ``ast``, so a cycle is found whether or not it would break at run time. Every ``import`` and
``from … import`` counts, at module level or inside a function (a lazy import that closes a cycle is still two
modules that need each other). Imports under ``if TYPE_CHECKING:`` are exempt: they never run, and annotating
with a type from a module that imports this one is not a dependency. A package's own ``__init__`` running before
its submodules is not counted either (``a.b`` importing ``a.c`` is an edge to ``a.c``, not to ``a``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "layers" / "engine" / "engine"
# The only shipped module that may import Starlette: the streaming function's ASGI edge.
STARLETTE_EDGE = ENGINE / "api" / "asgi.py"


def _module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` (function bodies included) except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the ``else:`` branch of ``if TYPE_CHECKING`` does run
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names ``node`` imports, relative imports resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    # ``from a import b``: the module ``a.b`` when there is one, else the name ``b`` of module ``a``
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(package_root: Path) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (see the module docstring for what counts)."""
    files = {_module_name(path, package_root): path for path in package_root.rglob("*.py")}
    top = package_root.name
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _imports(tree):
            names = _imported_names(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                # a submodule named in ``from a import b`` is the target; otherwise ``a`` itself
                submodules = [name for name in names[:-1] if name in files]
                chosen = submodules if len(submodules) == len(names) - 1 else [*submodules, names[-1]]
            else:
                chosen = names
            for name in chosen:
                if name == top or name.startswith(top + "."):
                    # ``import a.b.c`` binds the deepest module that exists
                    while name not in files and "." in name:
                        name = name.rsplit(".", 1)[0]
                    if name in files and name != module:
                        targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each strongly connected component of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _path_through(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete cycle inside ``component``, as ``a -> b -> a``, for the failure message."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    while True:
        options = sorted(graph[trail[-1]] & members)
        if start in options and len(trail) > 1:
            return " -> ".join([*trail, start])
        step = next((o for o in options if o not in seen), None)
        if step is None:
            return " -> ".join([*trail, options[0]]) if options else start
        trail.append(step)
        seen.add(step)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_check_finds_a_cycle_through_a_function_level_import(tmp_path: Path):
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def thing():\n    from pkg import a\n    return a\n",
            "pkg/c.py": "from . import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_check_exempts_type_checking_imports_only(tmp_path: Path):
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub.x import X\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/x.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.y import Y\nelse:\n"
                "    import pkg.z\nX = 1\n"
            ),
            "pkg/y.py": "from ..pkg.sub import x\n",
            "pkg/z.py": "from .sub.x import X\n",
        },
    )
    graph = import_graph(package)
    assert "pkg.y" not in graph["pkg.sub.x"]
    assert cycles(graph) == [["pkg.sub.x", "pkg.z"]]  # the ``else:`` branch of TYPE_CHECKING counts


def test_no_import_cycle_in_the_engine():
    graph = import_graph(ENGINE)
    assert len(graph) > 50 and "engine.responses.create" in graph  # the walk found the engine
    assert "engine.responses.create" not in graph["engine.responses.loop"]
    found = [_path_through(graph, component) for component in cycles(graph)]
    assert found == [], "import cycles in the engine:\n" + "\n".join(found)


def _imports_starlette(path: Path) -> bool:
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if any(name == "starlette" or name.startswith("starlette.") for name in names):
            return True
    return False


def test_starlette_only_at_the_streaming_edge():
    shipped = [*ENGINE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    importers = sorted(str(path.relative_to(ROOT)) for path in shipped if _imports_starlette(path))
    assert importers == [str(STARLETTE_EDGE.relative_to(ROOT))]
