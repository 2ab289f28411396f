"""The pieces of a Sequitur grammar: Symbols in circular doubly linked rule bodies, and Rules.

A rule's body is closed by a guard symbol, so insertion and removal need no end cases. Every
value carries a small integer code (terminals and rules share one numbering; guards are -1) so
that a digram is keyed by one int in the grammar's table.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

GUARD = -1  # the code of a guard symbol; real codes are >= 0
SHIFT = 32  # digram key = first code << 32 | second code (codes stay far below 2**32)


class Separator:
    """A terminal placed between sequences; each is equal only to itself, so it never repeats."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"Separator({self.index})"


class Symbol:
    """One node of a rule body: a terminal value, a reference to a Rule, or the rule's guard."""

    __slots__ = ("value", "code", "rule", "prev", "next")

    def __init__(self, value: Any, code: int, rule: Rule | None,
                 prev: Symbol | None = None, next: Symbol | None = None) -> None:
        self.value = value  # the terminal, or the referenced Rule, or None for a guard
        self.code = code  # small int naming the value in digram keys
        self.rule = rule  # the referenced Rule (nonterminal), the owning Rule (guard), else None
        self.prev = prev  # None once the symbol has been removed from the grammar
        self.next = next

    @property
    def is_guard(self) -> bool:
        """True for the sentinel that closes a rule's circular body."""
        return self.code == GUARD

    @property
    def is_nonterminal(self) -> bool:
        """True if this symbol stands for a rule."""
        return self.rule is not None and self.code != GUARD

    def __repr__(self) -> str:
        if self.code == GUARD:
            return f"Symbol(guard of {self.rule!r})"
        return f"Symbol({self.value!r})"


class Rule:
    """A production r<number> -> body; `uses` counts the nonterminals that reference it."""

    __slots__ = ("guard", "count", "code", "number")

    def __init__(self, code: int, number: int) -> None:
        self.code = code
        self.number = number  # creation order; the start rule is 0
        self.count = 0
        guard = Symbol(None, GUARD, self)
        guard.prev = guard.next = guard
        self.guard = guard

    @property
    def name(self) -> str:
        """'r<number>', as the report names the rules of Figure 9 (r0 is the start rule)."""
        return f"r{self.number}"

    @property
    def uses(self) -> int:
        """How many nonterminals in the grammar reference this rule (0 for the start rule)."""
        return self.count

    @property
    def first(self) -> Symbol:
        """The first symbol of the body (the guard if the body is empty)."""
        return self.guard.next

    @property
    def last(self) -> Symbol:
        """The last symbol of the body (the guard if the body is empty)."""
        return self.guard.prev

    def symbols(self) -> Iterator[Symbol]:
        """The body's symbols, left to right."""
        s = self.guard.next
        while s.code != GUARD:
            yield s
            s = s.next

    def body(self) -> list[Any]:
        """The body as values: a Rule for each nonterminal, the terminal itself otherwise."""
        return [s.value for s in self.symbols()]

    def expand(self) -> list[Any]:
        """The terminals this rule derives, left to right (iterative, any depth)."""
        return expand_rule(self)

    def __len__(self) -> int:
        return sum(1 for _ in self.symbols())

    def __repr__(self) -> str:
        return self.name


def expand_rule(rule: Rule) -> list[Any]:
    """The terminals `rule` derives, walking nested bodies with an explicit stack."""
    out: list[Any] = []
    append = out.append
    stack = [rule.guard.next]
    while stack:
        s = stack.pop()
        while s.code != GUARD:
            if s.rule is None:
                append(s.value)
                s = s.next
            else:
                stack.append(s.next)
                s = s.rule.guard.next
    return out


def format_value(value: Any) -> str:
    """How a body value prints: rules by name, separators as '|', strings bare, others by repr."""
    if isinstance(value, Rule):
        return value.name
    if isinstance(value, Separator):
        return "|"
    return value if isinstance(value, str) else repr(value)
