"""Checks of Sequitur's invariants computed from the public rule bodies alone."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable
from typing import Any

from workbench.sequitur import Grammar, Rule, Separator


def _key(v: Any) -> tuple[str, Hashable]:
    """Rules by identity, terminals by value (as the grammar compares them)."""
    return ("rule", id(v)) if isinstance(v, Rule) else ("terminal", v)


def repeated_digrams(g: Grammar) -> list[tuple[Any, list[tuple[str, int]]]]:
    """Digrams with two non-overlapping occurrences: [(digram, [(rule name, index), ...])]."""
    where: dict[tuple, list[tuple[str, int]]] = defaultdict(list)
    for r in g.rules():
        body = r.body()
        for i in range(len(body) - 1):
            where[(_key(body[i]), _key(body[i + 1]))].append((r.name, i))
    bad = []
    for digram, occ in where.items():
        overlapping_pair = (len(occ) == 2 and occ[0][0] == occ[1][0]
                            and abs(occ[0][1] - occ[1][1]) == 1)
        if len(occ) > 1 and not overlapping_pair:
            bad.append((digram, occ))
    return bad


def references(g: Grammar) -> Counter:
    """How many times each rule (by name) is referenced in all bodies."""
    return Counter(v.name for r in g.rules() for v in r.body() if isinstance(v, Rule))


def assert_invariants(g: Grammar) -> None:
    """Digram uniqueness, rule utility, bodies of >= 2 symbols, counts, separators only in r0."""
    assert repeated_digrams(g) == [], g.format()
    refs = references(g)
    for r in g.rules():
        if r is g.start:
            assert refs[r.name] == 0
            continue
        assert refs[r.name] >= 2, (r.name, g.format())
        assert r.uses == refs[r.name]
        assert len(r) >= 2
        assert not any(isinstance(v, Separator) for v in r.body())
    live = {r.name for r in g.rules()}
    assert set(refs) <= live
