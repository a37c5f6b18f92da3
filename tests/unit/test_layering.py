"""The package's shape cannot drift: no import cycles, and no import from a lower floor to a
higher one, per the floors written in ``polyrl/__init__.py``'s docstring.

Every module of ``polyrl/`` is parsed with ``ast`` (nothing is imported or run) and every
import counts: top-level ones, ones inside functions, and ones under ``TYPE_CHECKING``
(a type a module names is a dependency of its meaning, and an import that only a type
checker follows can still tie two parts in a circle). An import of ``a.b`` counts as one of
``a.b``; that Python also runs the package ``a/__init__.py`` first is not counted, since a
package's ``__init__`` re-exporting its own modules is not a dependency between parts.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polyrl

PACKAGE = Path(polyrl.__file__).resolve().parent

# The one known cycle: sources/parse.py imports the venue parsers to dispatch frames, and they
# import its shared helpers. It is removed by splitting the parsers by message family (issue
# 14, item 2); this exemption goes with it. No other cycle may be exempted here.
KNOWN_CYCLES: list[frozenset[str]] = []

_FLOOR_LINE = re.compile(r"^\s+(\d+)\s{2,}([\w.]+(?:, [\w.]+)*)(?:\s{2,}.*)?$")


def module_files(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is a package __init__)}`` for every module of polyrl."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules of polyrl it imports}`` (see the module docstring)."""
    mods = module_files(package)

    def known(name: str) -> str:
        while name not in mods:  # `from polyrl.x import SomeClass`: the module is polyrl.x
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        here = mod if is_pkg else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {known(a.name) for a in node.names if _ours(a.name)}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not _ours(target):
                    continue
                for a in node.names:  # `from polyrl.x import y` may name the module polyrl.x.y
                    sub = f"{target}.{a.name}"
                    deps.add(sub if sub in mods else known(target))
        deps.discard(mod)
        graph[mod] = deps
    return graph


def _ours(name: str) -> bool:
    return name == "polyrl" or name.startswith("polyrl.")


def floors() -> dict[str, int]:
    """``{part: floor}`` from the table in the package docstring."""
    doc = polyrl.__doc__ or ""
    table = doc.split("Floors: who may import whom", 1)[1]
    out: dict[str, int] = {}
    for line in table.splitlines():
        m = _FLOOR_LINE.match(line)
        if m:
            for part in m.group(2).split(", "):
                assert part not in out, f"{part} is on two floors of the package docstring"
                out[part] = int(m.group(1))
    return out


def part_of(module: str, table: dict[str, int]) -> str | None:
    """The most specific entry of the floor table that ``module`` falls under."""
    if module == "polyrl":
        return "polyrl" if "polyrl" in table else None
    rel = module.removeprefix("polyrl.")
    while rel:
        if rel in table:
            return rel
        rel = rel.rpartition(".")[0]
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def a_loop(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete import loop inside a cycle component, to print."""
    inside = set(comp)
    start = comp[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return comp


def test_the_floor_table_is_in_the_package_docstring_and_names_real_parts() -> None:
    table = floors()
    assert len(table) >= 20, table
    mods = module_files()
    for part in table:
        name = "polyrl" if part == "polyrl" else f"polyrl.{part}"
        assert name in mods, f"the floor table names {part}, which is not a module of polyrl"


def test_every_module_has_a_floor() -> None:
    table = floors()
    lost = [m for m in module_files() if part_of(m, table) is None]
    assert not lost, f"modules with no floor in polyrl/__init__.py's docstring: {lost}"


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    loops = "\n".join(" -> ".join(a_loop(graph, c)) for c in found)
    assert not found, f"import cycles in polyrl:\n{loops}"


def test_no_import_reaches_a_higher_floor_or_a_neighbour_on_its_own() -> None:
    table = floors()
    bad = []
    for mod, deps in sorted(import_graph().items()):
        mine = part_of(mod, table)
        assert mine is not None
        for dep in sorted(deps):
            theirs = part_of(dep, table)
            assert theirs is not None
            if theirs != mine and table[theirs] >= table[mine]:
                bad.append(
                    f"{mod} (floor {table[mine]}, {mine}) imports "
                    f"{dep} (floor {table[theirs]}, {theirs})"
                )
    assert not bad, "imports that break the floors:\n" + "\n".join(bad)


def test_the_check_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The graph behind the checks, on a tiny package: a lazy import, a TYPE_CHECKING one, a
    relative one and ``from package import module`` are all edges, and their loop is found."""
    pkg = tmp_path / "polyrl"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from polyrl.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from polyrl.sub.c import X\n"
    )
    (pkg / "sub" / "c.py").write_text("from ..a import f\nimport polyrl\n")
    graph = import_graph(pkg)
    assert graph == {
        "polyrl": set(),
        "polyrl.a": {"polyrl.sub.b"},
        "polyrl.sub": set(),
        "polyrl.sub.b": {"polyrl.sub.c"},
        "polyrl.sub.c": {"polyrl.a", "polyrl"},
    }
    (comp,) = cycles(graph)
    assert comp == ["polyrl.a", "polyrl.sub.b", "polyrl.sub.c"]
    assert a_loop(graph, comp) == ["polyrl.a", "polyrl.sub.b", "polyrl.sub.c", "polyrl.a"]
