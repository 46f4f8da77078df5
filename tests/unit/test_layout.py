"""The shape of the package: which part may import which (../shared/ARCHITECTURE.md).

The pipeline runs one way: sources (``nar``, ``codecs``, ``payloads``) feed ``bench``;
``collect`` writes the ``store``; ``analyze`` reads it; ``report`` renders an analysis; the
``testbed`` emulates Hydra; ``scenarios`` alone wires testbed, collectors, analysis and report;
``commands`` (and ``cli``) turn argv into one library call. An import against that direction
(upward), or a circle, fails here, function-local imports included (they are how a circle
hides).

``KNOWN`` lists edges the layout does not allow yet, while a move is under way; the
redesign's moves (issue 15) emptied it.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import profiler

ROOT = Path(profiler.__file__).parent

# The foundation every part may use: no imports of the parts above it.
BASE = {"errors", "units", "hydra", "atomic", "_files", "__version__"}
# everything below the wiring: what scenarios and commands may use
STAGES = {
    "nar", "codecs", "payloads", "bench", "audit", "store", "collect", "analyze", "report",
    "testbed",
}  # fmt: skip
# part -> the parts it may import (besides BASE and itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "units": set(),
    "hydra": set(),
    "atomic": set(),
    "_files": set(),
    "nar": set(),
    "codecs": set(),
    "payloads": {"nar", "codecs"},
    "bench": {"nar", "codecs", "payloads"},
    # a binary cache read as it is: narinfos (payloads), NAR hashes, the writers (codecs),
    # the bill's assumptions and codec figures (bench)
    "audit": {"nar", "codecs", "payloads", "bench"},
    "store": set(),
    "collect": {"store", "codecs"},  # codecs: compressed journals (codecs.streams)
    # bench: codec profiles (types and values); payloads: the farm's binary cache (narinfo sizes)
    "analyze": {"store", "bench", "codecs", "payloads"},
    "report": {"analyze", "store", "bench", "codecs", "audit"},
    # the emulator does real work with the sources; its truth asks the analysis's questions
    "testbed": {"nar", "codecs", "payloads", "store", "analyze"},
    "scenarios": STAGES,
    "commands": STAGES | {"scenarios"},
    "cli": {"commands", "store"},
    "__main__": {"cli"},
    # the package's face (profiler/__init__.py): lazy names from the stages; the stages take
    # only __version__ from it, which is not an edge
    "api": {"analyze", "scenarios", "store", "bench", "codecs"},
}
# Edges of the code the layout does not allow (a ratchet while a move is under way; issue
# 15's moves emptied it): adding one needs a reason in its comment.
KNOWN: set[tuple[str, str]] = set()


def _part(path: Path) -> str:
    rel = path.relative_to(ROOT)
    name = rel.parts[0]
    return name.removesuffix(".py") if name != "__init__.py" else "api"


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = _part(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "profiler":
                    targets = [a.name for a in node.names]
                elif node.module.startswith("profiler."):
                    targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                targets = [
                    a.name.split(".")[1] for a in node.names if a.name.startswith("profiler.")
                ]
            for dst in targets:
                if dst == "__version__" or dst == src:
                    continue
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                edges.setdefault((src, dst), []).append(where)
    return edges


def test_every_part_is_in_the_layout() -> None:
    parts = {_part(p) for p in ROOT.rglob("*.py")}
    assert parts <= set(ALLOWED), f"parts missing from the layout: {sorted(parts - set(ALLOWED))}"


def test_no_upward_import() -> None:
    wrong = {
        edge: where
        for edge, where in _edges().items()
        if edge[1] not in BASE | ALLOWED.get(edge[0], set())
    }
    new = {e: w for e, w in wrong.items() if e not in KNOWN}
    assert not new, "imports against the layout: " + "; ".join(
        f"{s} -> {d} ({', '.join(w)})" for (s, d), w in sorted(new.items())
    )
    gone = KNOWN - set(wrong)
    assert not gone, f"fixed, remove from KNOWN: {sorted(gone)}"


def test_no_import_circle_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    known_circles = [c for c in circles if any((a, b) in KNOWN for a, b in itertools.pairwise(c))]
    fresh = [c for c in circles if c not in known_circles]
    assert not fresh, "import circles: " + "; ".join(" -> ".join(c) for c in fresh)


def test_the_layout_itself_has_no_circle() -> None:
    order: list[str] = []
    remaining = {p: set(a) for p, a in ALLOWED.items()}
    while remaining:
        ready = sorted(p for p, deps in remaining.items() if not deps - set(order))
        assert ready, f"the layout has a circle among {sorted(remaining)}"
        order += ready
        for p in ready:
            del remaining[p]
