"""The grammar as a DAG (report Figure 9, right): rules are nodes, an edge means "uses".

The layout is layered by hand (depth = longest path from the start rule, order within a layer
by the mean position of the parents) so drawing needs neither graphviz nor pydot.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import networkx as nx

from workbench.sequitur.grammar import Grammar
from workbench.sequitur.mine import rule_stats
from workbench.sequitur.symbols import format_value

if TYPE_CHECKING:  # matplotlib is imported only when something is drawn
    from matplotlib.axes import Axes

RULE_COLOR = "#a8dadc"
HIGHLIGHT_COLOR = "#f4a261"


def to_networkx(grammar: Grammar) -> nx.DiGraph:
    """DiGraph over rule names; edge (parent, child) has 'multiplicity' = uses in parent's body.

    Node attributes: body (text), expansion (text), length (terminals), occurrences,
    uses, sequences (sorted tuple of sequence indices), frequency (len of sequences), start.
    """
    graph = nx.DiGraph(start=grammar.start.name)
    for rule, st in rule_stats(grammar).items():
        graph.add_node(rule.name, body=" ".join(format_value(v) for v in rule.body()),
                       expansion=" ".join(format_value(v) for v in rule.expand()),
                       length=st.length, occurrences=st.occurrences, uses=st.uses,
                       sequences=tuple(sorted(st.sequences)), frequency=st.frequency,
                       start=rule is grammar.start)
        for child, m in st.children:
            graph.add_edge(rule.name, child.name, multiplicity=m)
    return graph


def layered_layout(graph: nx.DiGraph) -> dict[Any, tuple[float, float]]:
    """(x, y) per node: y = -(longest path from a source, e.g. the start rule), x spread by the
    parents' mean x, one unit apart."""
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("layered_layout needs a directed acyclic graph")
    order = list(nx.topological_sort(graph))
    depth: dict[Any, int] = {n: 0 for n in order}
    for n in order:
        for child in graph.successors(n):
            depth[child] = max(depth[child], depth[n] + 1)
    layers: dict[int, list[Any]] = {}
    for n in order:
        layers.setdefault(depth[n], []).append(n)
    pos: dict[Any, tuple[float, float]] = {}
    for d in sorted(layers):
        nodes = layers[d]
        if d:  # parents are all in shallower layers, so their x is already known
            def mean_parent_x(n: Any) -> float:
                xs = [pos[p][0] for p in graph.predecessors(n)]
                return sum(xs) / len(xs) if xs else 0.0
            nodes = sorted(nodes, key=lambda n: (mean_parent_x(n), str(n)))
        width = len(nodes)
        for i, n in enumerate(nodes):
            pos[n] = (i - (width - 1) / 2, -float(d))
    return pos


def draw_grammar(grammar: Grammar | nx.DiGraph, ax: Axes | None = None,
                 highlight: Iterable[str] = (), max_label: int = 28) -> Axes:
    """Draw the rule DAG (start rule on top); rules named in highlight (e.g. blocks) in orange.

    Each node shows its name and expansion (cut at max_label characters); edges used more than
    once carry their multiplicity. Returns the Axes; never calls plt.show().
    """
    import matplotlib.pyplot as plt

    graph = to_networkx(grammar) if isinstance(grammar, Grammar) else grammar
    pos = layered_layout(graph)
    if ax is None:
        per_layer = max((x for x, _ in pos.values()), default=0.0) * 2 + 1
        chars = min(max((len(n) + 2 + len(graph.nodes[n].get("expansion", "")) for n in graph),
                        default=4), max_label + 6)
        depth = -min((y for _, y in pos.values()), default=0.0) + 1
        width = min(max(4.0, 0.09 * chars * per_layer + 1.0), 16.0)
        _, ax = plt.subplots(figsize=(width, 1.0 + 1.0 * depth))
    marked = set(highlight)
    unknown = marked - set(graph.nodes)
    if unknown:
        raise KeyError(f"highlight names rules not in the grammar: {sorted(unknown)}")

    def label(n: str) -> str:
        text = graph.nodes[n].get("expansion", "")
        if len(text) > max_label:
            text = text[:max_label - 3] + "..."
        return f"{n}: {text}" if text and not graph.nodes[n].get("start") else n

    # Each node is drawn as its label in a box; edges that skip layers bend so that they do
    # not run through the nodes of the layers between.
    short = [(u, v) for u, v in graph.edges if pos[u][1] - pos[v][1] <= 1]
    long = [(u, v) for u, v in graph.edges if pos[u][1] - pos[v][1] > 1]
    for edges, style in ((short, "arc3"), (long, "arc3,rad=0.25")):
        if edges:
            nx.draw_networkx_edges(graph, pos, edgelist=edges, ax=ax, arrows=True,
                                   arrowstyle="-|>", arrowsize=12, node_size=2200,
                                   connectionstyle=style, edge_color="#555555")
    for n, (x, y) in pos.items():
        ax.text(x, y, label(n), ha="center", va="center", fontsize=8, zorder=3,
                bbox={"boxstyle": "round,pad=0.4", "ec": "#333333",
                      "fc": HIGHLIGHT_COLOR if n in marked else RULE_COLOR})
    multi = {(u, v): f"x{m}" for u, v, m in graph.edges(data="multiplicity") if m and m > 1}
    if multi:
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=multi, ax=ax, font_size=7)
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.set_axis_off()
    return ax

