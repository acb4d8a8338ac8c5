"""The package layout holds: no import circles, layers import downwards only, and the
test environment is exactly the lock."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("warnd", "feeds", "detectors")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _import_graph() -> dict[str, set[str]]:
    """Module → modules of ours it imports, at any depth of the file (lazy imports too)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in mods:
                        graph[m].add(full)
                    elif node.module in mods:
                        graph[m].add(node.module)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods)
        graph[m].discard(m)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _cycles(_import_graph()) == []


def test_layers_import_downwards_only():
    graph = _import_graph()
    bad = [f"{m} imports {d}" for m, deps in graph.items() for d in deps
           if m.startswith(("feeds", "detectors")) and d.startswith("warnd")]
    # the rooms of warnd/: alerting and report sit below the service and the web console
    rank = {"warnd.service": 2, "warnd.web": 2, "warnd.alerting": 1, "warnd.report": 1}

    def room(mod: str) -> int:
        return next((r for prefix, r in rank.items() if mod.startswith(prefix + ".")
                     or mod == prefix), 0)

    bad += [f"{m} imports {d}" for m, deps in graph.items() for d in deps
            if m.startswith("warnd.") and room(d) > room(m) and room(m) > 0]
    assert bad == []


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_this_environment_is_the_lock():
    """What the suite runs with is exactly what constraints.txt pins (make test installs it)."""
    pins = _lock()
    off = []
    for dist in md.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name == "warnd":
            continue
        if pins.get(name) != dist.version:
            off.append(f"{name} {dist.version} (lock: {pins.get(name, 'not pinned')})")
    assert off == []


def test_every_declared_dependency_is_locked():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", d).group(0)).lower()
             for d in declared}
    assert sorted(names - set(_lock())) == []
