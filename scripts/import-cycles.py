#!/usr/bin/env python3
"""Lists the imports between the crate's top-level modules and fails on a cycle.

    python3 scripts/import-cycles.py [--graph]

A module is a file or folder directly under src/ (src/app.rs is `app`, everything
under src/output/ is `output`); main.rs, the binary, stands on top and is left out. An
import is any `crate::NAME` in a file's code (comments and strings aside), in a `use` line
or inline. Code under `#[cfg(test)]` counts too: a test module that reaches back up is a
cycle for a reader all the same. Exit 1 naming the modules of each cycle; with --graph,
the edges are printed as well. Python 3.11 standard library only.
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
CRATE = re.compile(r"\bcrate::")
IDENTIFIER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


def module_of(path: Path) -> str | None:
    relative = path.relative_to(SRC)
    top = relative.parts[0]
    if top in ("main.rs", "lib.rs"):
        return None
    return top.removesuffix(".rs")


def code_only(text: str) -> str:
    """The text without comments, string literals and char literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        module = module_of(path)
        if module is None:
            continue
        targets = graph.setdefault(module, set())
        code = code_only(path.read_text())
        for found in CRATE.finditer(code):
            targets.update(n for n in first_names(code, found.end()) if n not in (module, "self"))
    return graph


def first_names(code: str, at: int) -> list[str]:
    """The module names a path names right after `crate::` at `at`: one, or the first
    segment of each item of a `{...}` group."""
    if code.startswith("{", at):
        depth, start, items = 0, at + 1, []
        for position in range(at, len(code)):
            if code[position] == "{":
                depth += 1
            elif code[position] == "}":
                depth -= 1
                if depth == 0:
                    items.append(code[start:position])
                    break
            elif code[position] == "," and depth == 1:
                items.append(code[start:position])
                start = position + 1
        names = (IDENTIFIER.match(item) for item in items)
        return [name.group(1) for name in names if name]
    name = IDENTIFIER.match(code, at)
    return [name.group(1)] if name else []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
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
    return found


def main() -> int:
    graph = imports()
    if "--graph" in sys.argv[1:]:
        for module in sorted(graph):
            print(f"{module} -> {', '.join(sorted(t for t in graph[module] if t in graph)) or '(nothing)'}")
    found = cycles(graph)
    for component in found:
        print(f"import cycle among: {', '.join(component)}", file=sys.stderr)
    if not found:
        print(f"no import cycle among the crate's {len(graph)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
