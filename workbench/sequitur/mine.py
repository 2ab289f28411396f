"""Sequences in, grammar out (`mine`), grammar back to sequences (`expand`), and rule statistics.

A rule's statistics are read off the grammar's DAG (rules as nodes, "uses" as edges) in one
bottom-up pass (lengths) and one top-down pass (occurrences, sequences), so they cost time
linear in the grammar's size, not in the length of the expanded input.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from workbench.sequitur.grammar import Grammar
from workbench.sequitur.symbols import Rule, Separator, expand_rule


def mine(data: Iterable[Hashable] | Iterable[Iterable[Hashable]], *, many: bool = False) -> Grammar:
    """The Sequitur grammar of one sequence, or with many=True of several (one per network).

    `many` is explicit because a sequence of tuples, such as [(layer, rate), ...], is also an
    iterable of iterables: mine([("conv1", 0.3), ("conv2", 0.5)]) is one network of two symbols.
    """
    if isinstance(data, (Grammar, Rule)):
        raise TypeError(f"mine() takes sequences of symbols, got a {type(data).__name__}")
    if many:
        if isinstance(data, (str, bytes)):
            raise TypeError("mine(..., many=True) takes an iterable of sequences, got one string")
        return Grammar.from_sequences(data)
    try:
        items = iter(data)
    except TypeError:
        raise TypeError(f"mine() takes an iterable of hashable symbols, got {data!r}") from None
    return Grammar.from_sequence(items)


def expand(obj: Grammar | Rule) -> list[Any]:
    """The inverse of mine: a one-sequence grammar's symbols, a list per sequence, or a rule's."""
    if isinstance(obj, Grammar):
        return obj.sequences() if obj.multi else obj.expand()
    if isinstance(obj, Rule):
        return expand_rule(obj)
    raise TypeError(f"expand() takes a Grammar or a Rule, got {type(obj).__name__}")


@dataclass(frozen=True)
class RuleStats:
    """What the block identifier needs to know about one rule.

    uses: references in rule bodies (Sequitur's own count; 0 for the start rule);
    occurrences: times the rule occurs in the full derivation of all sequences;
    length: terminals the rule expands to (separators not counted);
    sequences: indices of the sequences (networks) whose derivation contains the rule,
    directly or through descendant rules;
    children: (child rule, times it appears in this rule's body), in order of first appearance.
    """

    rule: Rule
    uses: int
    occurrences: int
    length: int
    sequences: frozenset[int]
    children: tuple[tuple[Rule, int], ...]

    @property
    def name(self) -> str:
        """The rule's name, 'r3'."""
        return self.rule.name

    @property
    def frequency(self) -> int:
        """Number of sequences (networks) that use the rule: the report's appearing frequency."""
        return len(self.sequences)


def children(rule: Rule) -> tuple[tuple[Rule, int], ...]:
    """(child rule, multiplicity) for the nonterminals in rule's body, first appearance first."""
    counts: Counter[Rule] = Counter(s.rule for s in rule.symbols() if s.rule is not None)
    return tuple(counts.items())


def topological_order(grammar: Grammar) -> list[Rule]:
    """Live rules reachable from the start rule, every parent before its children."""
    post: list[Rule] = []
    seen = {grammar.start}
    # Iterative depth-first search; each frame is (rule, iterator over its child rules).
    stack = [(grammar.start, iter(grammar.start.symbols()))]
    while stack:
        rule, it = stack[-1]
        for s in it:
            child = s.rule
            if child is not None and child not in seen:
                seen.add(child)
                stack.append((child, iter(child.symbols())))
                break
        else:
            stack.pop()
            post.append(rule)
    post.reverse()
    return post


def rule_stats(grammar: Grammar) -> dict[Rule, RuleStats]:
    """Statistics of every rule, keyed by rule, in creation order (start rule first)."""
    order = topological_order(grammar)
    kids = {r: children(r) for r in order}
    length: dict[Rule, int] = {}
    for r in reversed(order):  # children before parents
        terminals = sum(1 for s in r.symbols()
                        if s.rule is None and not isinstance(s.value, Separator))
        length[r] = terminals + sum(m * length[c] for c, m in kids[r])

    occurrences: Counter[Rule] = Counter({grammar.start: 1})
    sequences: dict[Rule, set[int]] = {r: set() for r in order}
    index = 0
    for s in grammar.start.symbols():
        if isinstance(s.value, Separator):
            index += 1
        elif s.rule is not None:
            sequences[s.rule].add(index)
    sequences[grammar.start] = set(range(grammar.n_sequences))
    for r in order:  # parents before children
        for c, m in kids[r]:
            occurrences[c] += occurrences[r] * m
            if r is not grammar.start:
                sequences[c] |= sequences[r]

    return {r: RuleStats(rule=r, uses=r.uses, occurrences=occurrences[r], length=length[r],
                         sequences=frozenset(sequences[r]), children=kids[r])
            for r in grammar.rules()}
