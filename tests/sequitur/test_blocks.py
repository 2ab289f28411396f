"""Tuning blocks: a Figure 9-style example by hand, both heuristics, properties of any result."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.sequitur import (Composite, Grammar, Rule, Separator, TuningBlocks, cover,
                                find_blocks, mine, rule_stats, select_blocks)

# In the spirit of the report's Figure 9 (whose string is not in our copy of the text): four
# networks of six layers, "3@30" being layer 3 with 30% of its filters pruned.
FIGURE9 = [
    ["1@0", "2@30", "3@30", "4@50", "5@50", "6@0"],
    ["1@0", "2@30", "3@30", "4@0", "5@30", "6@30"],
    ["1@50", "2@30", "3@30", "4@50", "5@50", "6@0"],
    ["1@50", "2@50", "3@0", "4@50", "5@50", "6@0"],
]


def test_figure9_grammar() -> None:
    # By hand: "1@0 2@30" repeats first (r1), grows to r2 -> 1@0 2@30 3@30 (r1 inlined); the third
    # network splits "2@30 3@30" off as r3; "4@50 5@50" (r4) grows into r5 -> 4@50 5@50 6@0; the
    # fourth network's "4@50 5@50" makes r6, which the final "6@0" turns back into a use of r5.
    g = mine(FIGURE9, many=True)
    assert g.format() == ("r0 -> r2 r5 | r2 4@0 5@30 6@30 | 1@50 r3 r5 | 1@50 2@50 3@0 r5\n"
                          "r2 -> 1@0 r3\n"
                          "r3 -> 2@30 3@30\n"
                          "r5 -> 4@50 5@50 6@0")
    networks = {s.name: sorted(s.sequences) for s in rule_stats(g).values()}
    assert networks == {"r0": [0, 1, 2, 3], "r2": [0, 1], "r3": [0, 1, 2], "r5": [0, 2, 3]}


def test_figure9_blocks_and_composites() -> None:
    tb = select_blocks(mine(FIGURE9, many=True))
    # r2 (1@0 2@30 3@30) is in networks 0 and 1, but its child r3 is in 0, 1 and 2: heuristic 2
    # passes r2 over for r3. r3 and r5 have no child rules and appear in three networks each.
    assert tb.blocks == (("2@30", "3@30"), ("4@50", "5@50", "6@0"))
    assert tb.rules == (("r3",), ("r5",))
    assert tb.composites == (
        Composite(0, 6, ((1, 0), (3, 1)), ((0, "1@0"),)),
        Composite(1, 6, ((1, 0),), ((0, "1@0"), (3, "4@0"), (4, "5@30"), (5, "6@30"))),
        Composite(2, 6, ((1, 0), (3, 1)), ((0, "1@50"),)),
        Composite(3, 6, ((3, 1),), ((0, "1@50"), (1, "2@50"), (2, "3@0"))),
    )
    assert tb.vectors() == [(1, 1), (1, 0), (1, 1), (0, 1)]
    assert tb.networks(0) == {0, 1, 2} and tb.networks(1) == {0, 2, 3}
    assert tb.cost == 5
    assert tb.coverage == pytest.approx(15 / 24)
    assert tb.format() == (
        "blocks:\n"
        "  B0 = 2@30 3@30   (r3; networks 0 1 2)\n"
        "  B1 = 4@50 5@50 6@0   (r5; networks 0 2 3)\n"
        "networks:\n"
        "  0: 1@0 B0 B1\n"
        "  1: 1@0 B0 4@0 5@30 6@30\n"
        "  2: 1@50 B0 B1\n"
        "  3: 1@50 2@50 3@0 B1")
    assert find_blocks(FIGURE9) == tb


def test_repeats_inside_one_network_and_a_parent_preferred() -> None:
    # Symbols that name module kinds can repeat inside a network. "p q" occurs twice, but only
    # in network 0: heuristic 1 rejects it (frequency counts networks, not occurrences).
    # r4 -> r2 r2 u is in networks 1 and 2, exactly as often as its child r2 -> s t: preferred,
    # and r2, reached only through r4, is not a block of its own.
    g = mine(["pqpqr", "ststu", "ststu", "abc"], many=True)
    assert g.format() == "r0 -> r1 r1 r | r4 | r4 | a b c\nr1 -> p q\nr2 -> s t\nr4 -> r2 r2 u"
    stats = {s.name: s for s in rule_stats(g).values()}
    assert stats["r1"].occurrences == 2 and stats["r1"].frequency == 1
    tb = select_blocks(g)
    assert tb.blocks == (tuple("ststu"),)
    assert tb.rules == (("r4",),)
    assert [c.placements for c in tb.composites] == [(), ((0, 0),), ((0, 0),), ()]
    assert tb.composites[0].uncovered == tuple(enumerate("pqpqr"))


def test_child_more_frequent_than_parent_wins_and_is_counted_per_use() -> None:
    # r3 -> r1 r1 u is in networks 0 and 1, its child r1 -> s t in all three: r1 is the block.
    g = mine(["ststu", "ststu", "st"], many=True)
    assert g.format() == "r0 -> r3 | r3 | r1\nr1 -> s t\nr3 -> r1 r1 u"
    tb = select_blocks(g)
    assert tb.blocks == (("s", "t"),)
    assert tb.vectors() == [(2,), (2,), (1,)]
    assert tb.composites[0] == Composite(0, 5, ((0, 0), (2, 0)), ((4, "u"),))


def test_one_network_has_no_blocks() -> None:
    for g in (mine("abcabc"), mine(["abcabc"], many=True)):
        tb = select_blocks(g)
        assert tb.blocks == () and tb.cost == 0 and tb.coverage == 0.0
        assert tb.composites == (Composite(0, 6, (), tuple(enumerate("abcabc"))),)
    assert select_blocks(mine([], many=True)) == TuningBlocks((), ())


def test_cover_one_block_per_symbol_baseline() -> None:
    symbols = sorted({s for net in FIGURE9 for s in net})
    tb = cover(FIGURE9, [(s,) for s in symbols])
    assert tb.cost == len(symbols) == 12 and tb.coverage == 1.0
    assert tb.rules == ()
    assert [len(c.placements) for c in tb.composites] == [6, 6, 6, 6]
    assert tb.networks(symbols.index("4@50")) == {0, 2, 3}


def test_cover_takes_the_longest_block_first() -> None:
    tb = cover([list("abcab"), list("xab")], [("a", "b"), ("a", "b", "c")])
    assert tb.composites[0] == Composite(0, 5, ((0, 1), (3, 0)), ())
    assert tb.composites[1] == Composite(1, 3, ((1, 0),), ((0, "x"),))
    assert tb.vectors() == [(1, 1), (1, 0)]


def test_cover_rejects_bad_blocks() -> None:
    with pytest.raises(ValueError, match="block 1 is empty"):
        cover(["ab"], [("a",), ()])
    with pytest.raises(TypeError, match=r"block 0 starts with \[1\]"):
        cover(["ab"], [([1], "b")])
    with pytest.raises(TypeError, match=r"symbol \[2\] \(item 1 of sequence 0\)"):
        cover([["a", [2]]], [("a",)])


# --- properties of any selection -------------------------------------------------------------

layer_networks = st.lists(
    st.lists(st.sampled_from([0, 30, 50]), min_size=1, max_size=8).map(
        lambda rates: [(layer, rate) for layer, rate in enumerate(rates)]),
    min_size=1, max_size=7)
letter_networks = st.lists(st.lists(st.sampled_from("abc"), max_size=12), min_size=1, max_size=6)


def descendants(rule: Rule) -> set[Rule]:
    """Every rule reachable from rule's body."""
    out: set[Rule] = set()
    todo = [v for v in rule.body() if isinstance(v, Rule)]
    while todo:
        r = todo.pop()
        if r not in out:
            out.add(r)
            todo.extend(v for v in r.body() if isinstance(v, Rule))
    return out


def check_selection(g: Grammar, tb: TuningBlocks) -> None:
    """Blocks are shared, placed where they occur, tile each network, and obey both heuristics."""
    seqs = g.sequences()
    assert len(tb.composites) == len(seqs) and len(set(tb.blocks)) == len(tb.blocks)
    for i in range(len(tb.blocks)):
        assert len(tb.networks(i)) >= 2
    for c, seq in zip(tb.composites, seqs):
        assert c.length == len(seq)
        covered: list[int] = []
        for pos, b in c.placements:
            assert tuple(seq[pos:pos + len(tb.blocks[b])]) == tb.blocks[b]
            covered += range(pos, pos + len(tb.blocks[b]))
        for pos, symbol in c.uncovered:
            assert seq[pos] == symbol
        assert sorted(covered + [p for p, _ in c.uncovered]) == list(range(len(seq)))
    # Heuristics, recomputed from the definitions: walk each network's derivation without
    # entering chosen rules; every rule met is chosen exactly when it is met in >= 2 networks
    # and no descendant of it occurs in more networks than that.
    freq = {r: s.frequency for r, s in rule_stats(g).items()}
    chosen = {g.rule(name) for names in tb.rules for name in names}
    met: dict[Rule, set[int]] = {}
    network = 0
    for v in g.start.body():
        network += isinstance(v, Separator)
        todo = [v] if isinstance(v, Rule) else []
        while todo:
            r = todo.pop()
            met.setdefault(r, set()).add(network)
            if r not in chosen:
                todo.extend(x for x in r.body() if isinstance(x, Rule))
    for r, networks in met.items():
        good = len(networks) >= 2 and all(freq[d] <= len(networks) for d in descendants(r))
        assert (r in chosen) == good, (r, g.format())
    assert chosen <= set(met)


@settings(max_examples=120, deadline=None)
@given(layer_networks)
def test_blocks_of_layer_networks(nets: list[list[tuple[int, int]]]) -> None:
    g = mine(nets, many=True)
    check_selection(g, select_blocks(g))
    # A layer occurs once per network, so a rule's two uses lie in two networks: heuristic 1
    # can never fire on such symbols.
    assert all(s.frequency >= 2 for r, s in rule_stats(g).items() if r is not g.start)


@settings(max_examples=120, deadline=None)
@given(letter_networks)
def test_blocks_of_networks_with_repeats(nets: list[list[str]]) -> None:
    g = mine(nets, many=True)
    check_selection(g, select_blocks(g))


def test_a_rule_inside_a_block_elsewhere_is_no_block_for_one_network() -> None:
    # r3 -> a a lies in both networks, but network 0 only uses it inside the block r2 -> r3 a;
    # outside r2 it occurs in network 1 alone, so it is not a block (found by hypothesis).
    g = mine(["aaa", "aaaaa"], many=True)
    assert g.format() == "r0 -> r2 | r2 r3\nr2 -> r3 a\nr3 -> a a"
    tb = select_blocks(g)
    assert tb.blocks == (("a", "a", "a"),)
    assert tb.composites[1] == Composite(1, 5, ((0, 0),), ((3, "a"), (4, "a")))
