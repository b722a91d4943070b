"""The house rules a reader relies on: small files, one-way imports, diffusers internals in one adapter."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attnscope

SRC = Path(attnscope.__file__).resolve().parent
MAX_LINES = 400
ADAPTER = SRC / "models" / "wan.py"
# diffusers pipeline/hook attributes that are private (underscored) and read by attnscope
PRIVATE = re.compile(r"\._execution_device\b|\._guidance_scale|\.state_manager\._context|\._interrupt\b"
                     r"|\._cp_plan\b|\._parallel_config\b|\._current_timestep\b")


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in SRC.rglob("*.py")}


def _module_level_imports(name: str, path: Path) -> set[str]:
    """attnscope modules imported outside function bodies (TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.startswith("attnscope"):
                    found.update(f"{base}.{a.name}" for a in node.names)
                    found.add(base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("attnscope"))
            visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


def test_no_file_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these files: {long}"


def test_private_diffusers_attributes_only_in_the_wan_adapter():
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p != ADAPTER and PRIVATE.search(p.read_text())]
    assert not users, f"read diffusers internals through attnscope.models.wan, not in {users}"


def test_no_import_cycle():
    modules = _modules()
    # a module importing its own package (``from . import x``) is how packages work, not a cycle
    graph = {name: {m for m in _module_level_imports(name, path)
                    if m in modules and m != name and not name.startswith(m + ".")}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def cycle_from(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
            if nxt not in state and (found := cycle_from(nxt, stack + [nxt])):
                return found
        state[node] = 2
        return None

    for name in graph:
        if name not in state and (found := cycle_from(name, [name])):
            raise AssertionError(" -> ".join(found))
