"""The grammar DAG: nodes, edges with multiplicity, a layered layout, and a drawing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import networkx as nx  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from workbench.sequitur import mine, select_blocks  # noqa: E402
from workbench.sequitur.dag import (HIGHLIGHT_COLOR, draw_grammar, layered_layout,  # noqa: E402
                                    to_networkx)

PACKAGE = Path(__file__).resolve().parents[2] / "workbench" / "sequitur"


def test_textbook_dag() -> None:
    g = mine("abcdbcabcd")  # r0 -> r3 r1 r3, r1 -> b c, r3 -> a r1 d
    dag = to_networkx(g)
    assert isinstance(dag, nx.DiGraph) and dag.graph["start"] == "r0"
    assert set(dag.nodes) == {"r0", "r1", "r3"}
    assert {(u, v): m for u, v, m in dag.edges(data="multiplicity")} == {
        ("r0", "r3"): 2, ("r0", "r1"): 1, ("r3", "r1"): 1}
    assert dag.nodes["r3"] == {"body": "a r1 d", "expansion": "a b c d", "length": 4,
                               "occurrences": 2, "uses": 2, "sequences": (0,), "frequency": 1,
                               "start": False}
    assert dag.nodes["r0"]["start"] and dag.nodes["r1"]["occurrences"] == 3


def test_layout_layers_by_longest_path() -> None:
    pos = layered_layout(to_networkx(mine("abcdbcabcd")))
    # r1 hangs below r3 even though r0 also uses it directly.
    assert {n: y for n, (_, y) in pos.items()} == {"r0": 0.0, "r3": -1.0, "r1": -2.0}
    wide = layered_layout(nx.DiGraph([("s", "a"), ("s", "b"), ("s", "c")]))
    assert sorted(x for x, y in wide.values() if y == -1.0) == [-1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="acyclic"):
        layered_layout(nx.DiGraph([("a", "b"), ("b", "a")]))


def test_draw_returns_axes_and_marks_blocks() -> None:
    nets = [["1@0", "2@30", "3@30"], ["1@50", "2@30", "3@30"], ["1@0", "2@30", "3@30"]]
    g = mine(nets, many=True)
    blocks = [name for names in select_blocks(g).rules for name in names]
    ax = draw_grammar(g, highlight=blocks)
    texts = {t.get_text(): t for t in ax.texts}
    assert "r0" in texts and any(t.startswith("r") and "2@30 3@30" in t for t in texts)
    marked = [t.get_text() for t in ax.texts
              if t.get_bbox_patch().get_facecolor() == to_rgba(HIGHLIGHT_COLOR)]
    assert [m.split(":")[0] for m in marked] == blocks and len(blocks) == 1
    fig, ax2 = plt.subplots()
    assert draw_grammar(to_networkx(g), ax=ax2) is ax2
    with pytest.raises(KeyError, match="r99"):
        draw_grammar(g, highlight=["r99"])
    plt.close("all")


def test_package_never_imports_torch() -> None:
    code = ("import sys, workbench.sequitur, workbench.sequitur.dag; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    for path in PACKAGE.glob("*.py"):
        assert "torch" not in path.read_text(), path
