"""Graph-level checks and upstream's run order.

Upstream sorts with Kahn's algorithm over the non-constant edges and drops nodes without any edge (they never
run). A cycle is an error; nothing reaching ``__end__`` is an error (upstream: ``KeyError('__end__')`` at the first
run). Dead branches (they run, but their output and their errors are lost), nodes without inputs and unused
input are warnings, since upstream runs such graphs.
"""

from __future__ import annotations

from collections import deque

from .problems import Report, show
from .spec import GraphSpec

START, END = "__start__", "__end__"


def degrees(g: GraphSpec) -> tuple[dict[str, list[str]], dict[str, int], dict[str, int]]:
    ids = [n.id for n in g.nodes] + [START, END]        # upstream's dict order: nodes, then start and end
    outs: dict[str, list[str]] = {i: [] for i in ids}
    indeg = {i: 0 for i in ids}
    outdeg = {i: 0 for i in ids}
    for e in g.edges:
        if e.is_constant:
            continue
        outs.setdefault(e.src, []).append(e.dst)
        indeg[e.dst] = indeg.get(e.dst, 0) + 1
        outdeg[e.src] = outdeg.get(e.src, 0) + 1
    return outs, indeg, outdeg


def run_order(g: GraphSpec) -> list[str]:
    """Upstream's ``topological_sort``: Kahn's order (FIFO from the nodes list order), zero-degree nodes dropped.
    Raises ``ValueError('Graph has a cycle')`` as upstream does (validation reports cycles first)."""
    outs, indeg, outdeg = degrees(g)
    remaining = dict(indeg)
    queue = deque(i for i in remaining if remaining[i] == 0)
    order: list[str] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for nxt in outs.get(node, []):
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                queue.append(nxt)
    if len(order) != len(remaining):
        raise ValueError("Graph has a cycle")
    return [i for i in order if indeg[i] > 0 or outdeg[i] > 0]


def _cycle(outs: dict[str, list[str]], nodes: list[str]) -> list[str] | None:
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        stack.append(n)
        for m in outs.get(n, []):
            if color.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if color.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return None

    for n in nodes:
        if color.get(n) is None:
            found = visit(n)
            if found:
                return found
    return None


def _reach(outs: dict[str, list[str]], starts: list[str]) -> set[str]:
    seen, todo = set(starts), list(starts)
    while todo:
        for m in outs.get(todo.pop(), []):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def check(g: GraphSpec, epath: str, report: Report, *, chained: bool) -> None:
    outs, indeg, outdeg = degrees(g)
    cycle = _cycle(outs, list(outs))
    if cycle:
        report.error(epath, f"cycle in {epath}: " + " -> ".join(show(n) for n in cycle),
                     hint="a graph must be acyclic; to repeat steps, put them in a Loop node")
        return
    if indeg.get(END, 0) == 0:
        report.error(epath, f"no path into __end__: no edge of {epath} ends at \"__end__\"",
                     hint='add {"iid": LAST_NODE, "oid": "__end__"}; constant edges do not count')
        return
    if chained:
        return
    back: dict[str, list[str]] = {}
    for src, dsts in outs.items():
        for d in dsts:
            back.setdefault(d, []).append(src)
    feeds_end = _reach(back, [END])
    constant_fed = {e.dst for e in g.edges if e.is_constant}
    for node in g.nodes:
        if indeg[node.id] == 0 and outdeg[node.id] == 0:
            report.warn(node.path, f"{node.label} at {node.path} has no edges and never runs")
        elif node.id not in feeds_end:
            report.warn(node.path, f"{node.label} at {node.path} runs but its output never reaches __end__",
                        hint="upstream ignores its result and swallows its errors; so does this engine, with a "
                             "warning at run time")
        elif indeg[node.id] == 0 and node.id not in constant_fed and node.kind != "Constant":
            report.warn(node.path, f"{node.label} at {node.path} has no inputs: it is called with no arguments")
    if outdeg.get(START, 0) == 0 and not g.implicit:
        report.warn(epath, f"no edge of {epath} leaves __start__: the graph ignores its input")
