"""The sampled CPU's flame graph as an inline SVG icicle (root at the top), for a report
that runs no script: every frame is a ``<g>`` with its CPU class as a CSS class
(``cpu-compression``...), a ``<rect>`` filled with the class' colour, a label where it fits,
and a ``<title>`` the browser shows on hover (frame, class, CPU seconds, share).

Large profiles stay usable: the siblings narrower than :data:`MIN_SHARE` of the whole are
merged into one ``[n narrow frames]`` box (class ``cpu-merged``; a lone one is drawn as
itself), whose children are not drawn, and rows stop at :data:`MAX_DEPTH`; the number of
boxes is bounded by both, not by the number of stacks. The rows under the root are the
process, then the thread, then the stack root to leaf, as in ``collect cpu``'s folded
stacks.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

CLASS_COLORS: dict[str, str] = {
    "compression": "#C44E52",
    "decompression": "#E8A0A2",
    "hashing": "#8172B3",
    "nar": "#CCB974",
    "network": "#DD8452",
    "database": "#4C72B0",
    "filesystem": "#64B5CD",
    "allocation": "#55A868",
    "runtime": "#A0A0A0",
    "other": "#D8D8D8",
}
MERGED_COLOR = "#F0F0F0"
NAMESPACE = ' xmlns="http://www.w3.org/2000/svg"'
MIN_SHARE = 0.002  # a box narrower than this share of the whole is merged with its like
MAX_DEPTH = 48
WIDTH_PX = 1140
ROW_PX = 17
CHAR_PX = 6.6  # an average character of the 11 px label


@dataclass
class Node:
    """A frame in the call tree: CPU seconds through it, per class, and its children."""

    name: str
    seconds: float = 0.0
    by_class: dict[str, float] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)

    def count(self, cls: str, seconds: float) -> None:
        self.seconds += seconds
        self.by_class[cls] = self.by_class.get(cls, 0.0) + seconds

    @property
    def cls(self) -> str:
        """The class most of its CPU seconds were in."""
        return max(self.by_class.items(), key=lambda kv: kv[1])[0] if self.by_class else "other"


Path = tuple[list[str], str, float]  # frames (process, thread, root..leaf), class, CPU-s


def call_tree(
    stacks: pd.DataFrame, min_share: float = MIN_SHARE, max_depth: int = MAX_DEPTH
) -> Node:
    """The tree of ``cpu_stacks`` rows: process, thread, then the stack's frames; built a
    level at a time, and only under the frames :func:`layout` descends into (at least
    ``min_share`` of the whole, above ``max_depth``), so a large profile's narrow tails
    cost nothing."""
    paths: list[Path] = []
    for process, thread, cls, stack, seconds in stacks[
        ["process", "thread", "class", "stack", "cpu_seconds"]
    ].itertuples(index=False):
        if seconds == seconds and seconds > 0:  # not NaN
            frames = [f for f in str(stack).split(";") if f]
            paths.append(([str(process), str(thread), *frames], str(cls), float(seconds)))
    root = Node("all")
    for _, cls, seconds in paths:
        root.count(cls, seconds)
    alive: list[tuple[Node, list[Path]]] = [(root, paths)]
    for depth in range(max_depth - 1):
        alive = [grown for node, through in alive for grown in _grow(node, through, depth)]
        alive = [(n, p) for n, p in alive if n.seconds >= min_share * root.seconds]
    return root


def _grow(node: Node, through: list[Path], depth: int) -> list[tuple[Node, list[Path]]]:
    """The children of ``node`` (the frames at ``depth`` of the paths through it)."""
    below: dict[str, list[Path]] = {}
    for path in through:
        if depth < len(path[0]):
            name = path[0][depth]
            child = node.children.setdefault(name, Node(name))
            child.count(path[1], path[2])
            below.setdefault(name, []).append(path)
    return [(node.children[name], kept) for name, kept in below.items()]


@dataclass(frozen=True)
class Box:
    """One drawn frame: position (share of the width), row, and what it stands for."""

    x: float
    width: float
    depth: int
    name: str
    cls: str
    seconds: float


def layout(root: Node, min_share: float = MIN_SHARE, max_depth: int = MAX_DEPTH) -> list[Box]:
    """The boxes of the icicle, narrow siblings merged (module docstring)."""
    total = root.seconds
    if total <= 0:
        return []
    boxes: list[Box] = []
    todo = [(root, 0.0, 0)]
    while todo:
        node, x, depth = todo.pop()
        boxes.append(Box(x, node.seconds / total, depth, node.name, node.cls, node.seconds))
        if depth + 1 >= max_depth or node.seconds / total < min_share:
            continue  # a narrow frame (drawn when it is its parent's only one) ends there
        narrow = Node("")
        children = sorted(node.children.values(), key=lambda n: (-n.seconds, n.name))
        several = sum(c.seconds / total < min_share for c in children) > 1
        for child in children:
            if several and child.seconds / total < min_share:
                narrow.seconds += child.seconds
                narrow.children[child.name] = child
                continue
            todo.append((child, x, depth + 1))
            x += child.seconds / total
        if narrow.children:
            name = f"[{len(narrow.children)} narrow frames]"
            boxes.append(Box(x, narrow.seconds / total, depth + 1, name, "merged", narrow.seconds))
    return sorted(boxes, key=lambda b: (b.depth, b.x))


def _box_svg(b: Box, total: float) -> str:
    x, w, y = b.x * WIDTH_PX, b.width * WIDTH_PX, b.depth * ROW_PX
    fill = CLASS_COLORS.get(b.cls, MERGED_COLOR)
    tip = f"{b.name} · {b.cls} · {b.seconds:.3f} CPU-s · {100 * b.seconds / total:.1f}%"
    fits = int((w - 6) / CHAR_PX)
    label = b.name if len(b.name) <= fits else b.name[: fits - 1] + "…" if fits >= 4 else ""
    text = (
        f'<text x="{x + 3:.1f}" y="{y + ROW_PX - 5}">{html.escape(label)}</text>' if label else ""
    )
    return (
        f'<g class="cpu-{html.escape(b.cls)}"><title>{html.escape(tip)}</title>'
        f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.5):.1f}" height="{ROW_PX - 1}" '
        f'fill="{fill}"/>{text}</g>'
    )


def flame_svg(stacks: pd.DataFrame, svg_id: str, label: str) -> str | None:
    """The icicle as one ``<svg>`` element (None without stacks), for inline HTML: a file
    of its own needs :data:`NAMESPACE` on it."""
    if stacks is None or stacks.empty:
        return None
    root = call_tree(stacks)
    boxes = layout(root)
    if not boxes:
        return None
    height = (max(b.depth for b in boxes) + 1) * ROW_PX
    body = "".join(_box_svg(b, root.seconds) for b in boxes)
    return (
        f'<svg id="{svg_id}" class="flame" '
        f'viewBox="0 0 {WIDTH_PX} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(label)}" font-family="monospace" font-size="11">'
        f"{body}</svg>"
    )


def legend_html() -> str:
    """The classes' colours, as a line of swatches."""
    return " ".join(
        f'<span class="swatch"><svg width="12" height="12"><rect width="12" height="12" '
        f'fill="{color}"/></svg> {name}</span>'
        for name, color in CLASS_COLORS.items()
    )
