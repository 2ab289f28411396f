"""mine/expand are inverses; rule statistics agree with a brute-force walk of the derivation."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.sequitur import Grammar, Rule, Separator, expand, mine, rule_stats
from workbench.sequitur.mine import children, topological_order


def derivation_counts(g: Grammar) -> tuple[Counter, dict[str, set[int]]]:
    """Brute force: occurrences of each rule in the derivation tree, and the sequences using it."""
    occurrences: Counter = Counter()
    sequences: dict[str, set[int]] = {}
    index = 0
    for v in g.start.body():
        if isinstance(v, Separator):
            index += 1
            continue
        todo = [v]
        while todo:
            x = todo.pop()
            if isinstance(x, Rule):
                occurrences[x.name] += 1
                sequences.setdefault(x.name, set()).add(index)
                todo.extend(x.body())
    return occurrences, sequences


def test_mine_one_sequence_and_expand() -> None:
    g = mine("abcdbcabcd")
    assert isinstance(g, Grammar) and not g.multi
    assert expand(g) == list("abcdbcabcd")
    assert expand(g.rule("r3")) == list("abcd")


def test_mine_many_expands_per_sequence() -> None:
    nets = [[("L1", 0), ("L2", 30)], [("L1", 0), ("L2", 30), ("L3", 50)]]
    g = mine(nets, many=True)
    assert g.multi and g.n_sequences == 2
    assert expand(g) == nets
    # Without many=True the same list is one sequence whose symbols are the inner lists.
    with pytest.raises(TypeError, match="not hashable"):
        mine(nets)
    assert expand(mine(nets[0])) == nets[0]  # tuples are symbols, not sequences


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="iterable of hashable symbols"):
        mine(5)
    with pytest.raises(TypeError, match="got one string"):
        mine("abc", many=True)
    with pytest.raises(TypeError, match="got a Grammar"):
        mine(mine("ab"))
    with pytest.raises(TypeError, match="Grammar or a Rule"):
        expand([1, 2])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=300))
def test_expand_mine_is_identity(seq: list[int]) -> None:
    assert expand(mine(seq)) == seq


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abc"), max_size=15), max_size=6))
def test_expand_mine_many_is_identity(seqs: list[list[str]]) -> None:
    assert expand(mine(seqs, many=True)) == seqs


def test_stats_of_textbook_grammar() -> None:
    g = mine("abcdbcabcd")  # r0 -> r3 r1 r3, r1 -> b c, r3 -> a r1 d
    stats = rule_stats(g)
    assert [s.name for s in stats.values()] == ["r0", "r1", "r3"]
    r0, r1, r3 = stats.values()
    assert (r0.uses, r0.occurrences, r0.length, r0.sequences) == (0, 1, 10, frozenset({0}))
    assert (r1.uses, r1.occurrences, r1.length) == (2, 3, 2)  # once in r0, once in each r3
    assert (r3.uses, r3.occurrences, r3.length) == (2, 2, 4)
    assert r0.children == ((g.rule("r3"), 2), (g.rule("r1"), 1))
    assert r3.children == ((g.rule("r1"), 1),) and r1.children == ()
    assert r1.frequency == 1


def test_stats_name_the_sequences_through_descendants() -> None:
    g = mine(["abcx", "yabc", "bcz"], many=True)
    stats = {s.name: s for s in rule_stats(g).values()}
    assert g.format() == "r0 -> r2 x | y r2 | r3 z\nr2 -> a r3\nr3 -> b c"
    assert stats["r2"].sequences == frozenset({0, 1})
    assert stats["r3"].sequences == frozenset({0, 1, 2})  # twice through r2, once directly
    assert stats["r0"].length == 11  # separators are not counted


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), max_size=25), min_size=1, max_size=6))
def test_stats_match_brute_force(seqs: list[list[int]]) -> None:
    g = mine(seqs, many=True)
    occurrences, sequences = derivation_counts(g)
    stats = rule_stats(g)
    assert list(stats) == g.rules()
    for rule, s in stats.items():
        if rule is g.start:
            continue
        assert s.length == len(expand(rule))
        assert s.occurrences == occurrences[rule.name]
        assert s.sequences == frozenset(sequences[rule.name])
        assert s.uses == rule.uses
        assert dict(s.children) == dict(children(rule))


def test_topological_order_puts_parents_first() -> None:
    g = mine("abcabdabcabd" * 3 + "xabcx")
    order = topological_order(g)
    assert order[0] is g.start and set(order) == set(g.rules())
    position = {r: i for i, r in enumerate(order)}
    for r in order:
        for child, _ in children(r):
            assert position[r] < position[child]
