"""The layout holds: no import cycles in bot/ or workers/, and the web process stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "workers")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, wherever the import stands (lazy ones included)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_there_is_no_import_cycle_in_bot_or_workers() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_workers_never_import_bot() -> None:
    graph = import_graph()
    offenders = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m.startswith("workers")
        for d in deps
        if d.startswith("bot")
    )
    assert offenders == []


def _loaded_after_import(module: str) -> list[str]:
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'moto', 'matplotlib') or m.startswith('workers.aws')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_web_process_loads_no_aws_driver() -> None:
    """Nor matplotlib: charts are drawn by the notify worker (workers/slack/chart.py)."""
    assert _loaded_after_import("bot.app") == []
    assert _loaded_after_import("bot.__main__") == []


#: What each layer of workers/ may not import (docs/ARCHITECTURE.md, "Dependencies").
FORBIDDEN = {
    "workers.domain": ("workers.engine", "workers.runtime", "workers.aws", "workers.slack"),
    "workers.analysis": ("workers.engine", "workers.runtime", "workers.aws", "workers.slack"),
    "workers.aws": ("workers.engine", "workers.runtime", "workers.slack", "workers.api"),
    "workers.slack": ("workers.aws", "workers.engine.runner", "workers.engine.steps"),
}


def test_each_layer_imports_only_what_lies_below_it() -> None:
    offenders = sorted(
        f"{module} -> {dep}"
        for module, deps in import_graph().items()
        for layer, banned in FORBIDDEN.items()
        if module == layer or module.startswith(layer + ".")
        for dep in deps
        if dep.startswith(banned)
    )
    assert offenders == []
