"""Symbols and rules: the linked bodies, their values, iterative expansion, how values print."""
from __future__ import annotations

import pytest

from workbench.sequitur import Grammar, Rule, Separator, Symbol
from workbench.sequitur.symbols import GUARD, expand_rule, format_value


def test_rule_api() -> None:
    g = Grammar.from_sequence("abcdbcabcd")
    r1 = g.rule("r1")
    assert isinstance(r1, Rule) and repr(r1) == "r1"
    assert r1.body() == ["b", "c"] and len(r1) == 2 and r1.uses == 2
    assert [type(s) for s in r1.symbols()] == [Symbol, Symbol]
    assert r1.first.value == "b" and r1.last.value == "c" and r1.first.next is r1.last
    assert r1.last.next.is_guard and not r1.first.is_nonterminal
    assert g.rule("r3").body() == ["a", r1, "d"] and g.rule("r3").first.next.is_nonterminal
    assert g.rule("r3").expand() == list("abcd")
    assert [r.name for r in g.rules()] == ["r0", "r1", "r3"]
    with pytest.raises(KeyError, match="r2"):
        g.rule("r2")  # made, then inlined
    with pytest.raises(KeyError, match="no rule named 'x'"):
        g.rule("x")


def test_guard_and_repr() -> None:
    r = Rule(code=5, number=7)
    assert r.name == "r7" and r.uses == 0 and len(r) == 0 and r.body() == []
    assert r.first is r.guard is r.last and r.guard.is_guard and r.guard.code == GUARD
    assert repr(r.guard) == "Symbol(guard of r7)" and repr(Symbol("a", 0, None)) == "Symbol('a')"
    assert expand_rule(r) == []


def test_format_value() -> None:
    g = Grammar.from_sequence("abab")
    assert [format_value(v) for v in ("x", ("L3", 30), 7, g.rule("r1"), Separator(2))] == [
        "x", "('L3', 30)", "7", "r1", "|"]
    assert repr(Separator(2)) == "Separator(2)" and Separator(1) != Separator(1)


def test_expand_rule_walks_deep_chains_without_recursion() -> None:
    # A chain of 5000 rules, each holding the next and one terminal, built by hand.
    rules = [Rule(code=1000 + i, number=i) for i in range(5000)]
    for i, r in enumerate(rules):
        body = [Symbol(i, i, None)]
        if i + 1 < len(rules):
            body.append(Symbol(rules[i + 1], rules[i + 1].code, rules[i + 1]))
        prev = r.guard
        for s in body:
            s.prev, prev.next = prev, s
            prev = s
        prev.next, r.guard.prev = r.guard, prev
    assert expand_rule(rules[0]) == list(range(5000))
