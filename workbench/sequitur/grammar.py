"""Sequitur (Nevill-Manning and Witten 1997): a hierarchical grammar inferred online in linear time.

Each rule body is a circular doubly linked list of Symbols closed by a guard. A hash table maps
every digram (pair of adjacent symbols) to its one indexed occurrence. Appending a symbol forms a
new digram; when that digram already occurs elsewhere, the two occurrences are replaced by a
nonterminal (reusing a rule whose whole body is that digram, or creating one), and a rule that
drops to a single use is inlined. Two properties then hold whenever `append` returns:

* digram uniqueness: no pair of adjacent symbols occurs twice in the grammar (overlapping
  occurrences such as the two `aa` in `aaa` count once);
* rule utility: every rule except the start rule is used at least twice.

The original is recursive (substitute -> check -> match -> substitute ...). Here the digrams
still to check sit on an explicit stack, so neither very repetitive nor deeply nested input can
reach Python's recursion limit; every newly formed adjacency is pushed, so the invariants hold
when the stack is empty.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from workbench.sequitur.symbols import (GUARD, SHIFT, Rule, Separator, Symbol, expand_rule,
                                        format_value)

__all__ = ["Grammar", "Rule", "Separator", "Symbol", "expand_rule", "format_value"]


class Grammar:
    """A Sequitur grammar, grown one symbol at a time; symbols are any hashable values.

    Symbols are compared with == and hash, as dict keys are. Sequences started with
    `start_sequence` are separated by unique Separator terminals, so no rule spans two of them;
    `multi` says whether the grammar holds sequences so started.
    """

    def __init__(self) -> None:
        self._codes: dict[Hashable, int] = {}
        self._next_code = 0
        self._next_number = 0
        self._table: dict[int, Symbol] = {}
        self._rules: dict[int, Rule] = {}  # number -> live rule, in creation order
        self._stack: list[Symbol] = []  # symbols whose right-hand digram must be checked
        self._units: list[Rule] = []  # rules left with a one-symbol body, merged at quiescence
        self._length = 0
        self._n_sequences = 0
        self.multi = False
        self.start = self._new_rule()

    @classmethod
    def from_sequence(cls, sequence: Iterable[Hashable]) -> Grammar:
        """The grammar of one sequence of hashable symbols."""
        g = cls()
        g.extend(sequence)
        return g

    @classmethod
    def from_sequences(cls, sequences: Iterable[Iterable[Hashable]]) -> Grammar:
        """The grammar of several sequences, a unique separator between each two."""
        g = cls()
        g.multi = True
        for i, seq in enumerate(sequences):
            try:
                items = iter(seq)
            except TypeError:
                raise TypeError(f"sequence {i} ({seq!r}) is not iterable; from_sequences takes "
                                "an iterable of sequences") from None
            g.start_sequence()
            try:
                g.extend(items)
            except TypeError as err:
                raise TypeError(f"sequence {i}: {err}") from None
        return g

    @property
    def length(self) -> int:
        """Number of symbols appended (separators not counted)."""
        return self._length

    @property
    def n_sequences(self) -> int:
        """Number of sequences: those started with start_sequence, else 1."""
        return self._n_sequences if self.multi else 1

    @property
    def n_rules(self) -> int:
        """Number of rules, the start rule included."""
        return len(self._rules)

    @property
    def size(self) -> int:
        """Total number of symbols in all rule bodies (the usual measure of a grammar's size)."""
        return sum(len(r) for r in self._rules.values())

    def rules(self) -> list[Rule]:
        """The live rules in creation order; the start rule first."""
        return list(self._rules.values())

    def rule(self, name: str) -> Rule:
        """The live rule called `name` ('r3')."""
        try:
            number = int(name[1:]) if name[:1] == "r" else -1
            return self._rules[number]
        except (KeyError, ValueError):
            raise KeyError(f"no rule named {name!r}; rules are "
                           f"{', '.join(r.name for r in self._rules.values())}") from None

    def start_sequence(self) -> int:
        """Begin a new sequence (after a separator if one came before); returns its index."""
        if not self.multi:
            # Symbols appended before the first call form sequence 0.
            self.multi = True
            self._n_sequences = 1 if self._length else 0
        if self._n_sequences:
            self._push_terminal(Separator(self._n_sequences), self._new_code())
        self._n_sequences += 1
        return self._n_sequences - 1

    def append(self, value: Hashable) -> None:
        """Append one symbol and restore digram uniqueness and rule utility."""
        self.extend((value,))

    def extend(self, values: Iterable[Hashable]) -> None:
        """Append symbols in order (the fast path of `append`, inlined for speed)."""
        codes = self._codes
        table = self._table
        guard = self.start.guard
        stack = self._stack
        first = position = self._length
        if self.multi and not self._n_sequences:  # symbols before any start_sequence: sequence 0
            self._n_sequences = 1
        try:
            for value in values:
                code = codes.get(value)
                if code is None:
                    code = codes[value] = self._next_code
                    self._next_code += 1
                last = guard.prev
                sym = Symbol(value, code, None, last, guard)
                last.next = sym
                guard.prev = sym
                position += 1
                if last.code != GUARD:
                    key = last.code << SHIFT | code
                    other = table.get(key)
                    if other is None:
                        table[key] = last
                    elif other is not last and other.next is not last:
                        stack.append(last)
                        self._drain()
        except TypeError as err:
            if "unhashable" not in str(err):
                raise
            raise TypeError(f"symbol {value!r} (item {position - first} of this sequence) is "
                            "not hashable; Sequitur symbols must be hashable (tuples, not lists)"
                            ) from None
        finally:
            self._length = position

    def expand(self) -> list[Any]:
        """All appended symbols in order, separators included."""
        return expand_rule(self.start)

    def sequences(self) -> list[list[Any]]:
        """The appended symbols split into their sequences (separators dropped)."""
        out: list[list[Any]] = [[]]
        for v in self.expand():
            if isinstance(v, Separator):
                out.append([])
            else:
                out[-1].append(v)
        return out if self.n_sequences else []

    def format(self, sep: str = "\n") -> str:
        """The rules as text, one 'r3 -> a r1 d' per rule in creation order, joined by sep."""
        return sep.join(" ".join([r.name, "->", *(format_value(v) for v in r.body())])
                        for r in self._rules.values())

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return (f"<Grammar: {self.n_rules} rules, {self.size} symbols in bodies, "
                f"{self._length} symbols appended in {self.n_sequences} sequence(s)>")

    # --- the algorithm -------------------------------------------------------------------

    def _new_code(self) -> int:
        code = self._next_code
        self._next_code += 1
        return code

    def _new_rule(self) -> Rule:
        rule = Rule(self._new_code(), self._next_number)
        self._next_number += 1
        self._rules[rule.number] = rule
        return rule

    def _push_terminal(self, value: Any, code: int) -> None:
        """Append a terminal that the caller has already coded (separators)."""
        guard = self.start.guard
        last = guard.prev
        sym = Symbol(value, code, None, last, guard)
        last.next = sym
        guard.prev = sym
        self._stack.append(last)
        self._drain()

    def _drain(self) -> None:
        """Check pending digrams until none is left, then merge any duplicate rules."""
        stack = self._stack
        while True:
            while stack:
                s = stack.pop()
                if s.prev is not None:  # still in the grammar
                    self._check(s)
            if not self._units:
                return
            self._merge_units()

    def _check(self, s: Symbol) -> None:
        """Index the digram starting at s, or, if it occurs elsewhere, replace both."""
        n = s.next
        if s.code == GUARD or n.code == GUARD:
            return
        key = s.code << SHIFT | n.code
        table = self._table
        other = table.get(key)
        if other is None:
            table[key] = s
        elif other is not s and other.next is not s and n is not other:  # not overlapping
            self._match(s, other, key)

    def _match(self, s: Symbol, other: Symbol, key: int) -> None:
        """Replace two non-overlapping occurrences of one digram by a rule (reused or new)."""
        start = self.start
        if _is_whole_body(other) and other.prev.rule is not start:
            rule = other.prev.rule
            if _is_whole_body(s) and s.prev.rule is not start:
                # Two rules with the same body: keep one; the other is left as a unit rule whose
                # uses are redirected once the stack is empty (rare; see _merge_units).
                self._units.append(s.prev.rule)
            self._substitute(s, rule)
        elif _is_whole_body(s) and s.prev.rule is not start:
            rule = s.prev.rule
            self._substitute(other, rule)
        else:
            rule = self._new_rule()
            n = s.next
            a = Symbol(s.value, s.code, s.rule)
            b = Symbol(n.value, n.code, n.rule)
            if a.rule is not None:
                a.rule.count += 1
            if b.rule is not None:
                b.rule.count += 1
            guard = rule.guard
            guard.next, a.prev, a.next, b.prev, b.next, guard.prev = a, guard, b, a, guard, b
            self._substitute(other, rule)
            self._substitute(s, rule)
            self._table[key] = a
        # Only rules referenced by this rule's body lost a use, and the use that remains is here.
        first = rule.guard.next
        if first.rule is not None and first.code != GUARD and first.rule.count == 1:
            self._inline(first)
        last = rule.guard.prev
        if last.rule is not None and last.code != GUARD and last.rule.count == 1:
            self._inline(last)

    def _substitute(self, s: Symbol, rule: Rule) -> None:
        """Replace the digram starting at s by one nonterminal for rule."""
        n = s.next
        q = s.prev
        nn = n.next
        self._unindex(q)
        self._unindex(s)
        self._unindex(n)
        if s.rule is not None:
            s.rule.count -= 1
        if n.rule is not None:
            n.rule.count -= 1
        s.prev = s.next = n.prev = n.next = None
        sym = Symbol(rule, rule.code, rule, q, nn)
        q.next = sym
        nn.prev = sym
        rule.count += 1
        # LIFO: the left digram is checked first, as in the recursive original.
        self._stack.append(sym)
        self._stack.append(q)

    def _inline(self, x: Symbol) -> None:
        """Replace nonterminal x by the body of its rule, which x was the last user of."""
        rule = x.rule
        left = x.prev
        right = x.next
        first = rule.guard.next
        last = rule.guard.prev
        self._unindex(left)
        self._unindex(x)
        left.next = first
        first.prev = left
        last.next = right
        right.prev = last
        x.prev = x.next = None
        rule.count = 0
        rule.guard.prev = rule.guard.next = rule.guard
        del self._rules[rule.number]
        self._stack.append(left)
        self._stack.append(last)

    def _unindex(self, x: Symbol) -> None:
        """Forget the digram starting at x (about to be broken) if x is its indexed occurrence."""
        y = x.next
        if x.code == GUARD or y.code == GUARD:
            return
        key = x.code << SHIFT | y.code
        table = self._table
        if table.get(key) is x:
            del table[key]
            # In a run like `aaa` only one of the overlapping `aa` is indexed; the other must be
            # checked again now that the indexed one goes.
            if x.prev.code == x.code == y.code:
                self._stack.append(x.prev)
            if y.next.code == x.code == y.code:
                self._stack.append(y)

    def _merge_units(self) -> None:
        """Redirect every use of a one-symbol rule to the rule it holds, then delete it."""
        units = {r.number: r for r in self._units if r.number in self._rules}
        self._units.clear()
        for rule in self._rules.values():
            if rule.number in units:
                continue
            for s in list(rule.symbols()):
                unit = s.rule
                if unit is None or unit.number not in units:
                    continue
                target = unit.guard.next.rule
                while target.number in units:  # a unit rule may hold another one
                    target = target.guard.next.rule
                self._unindex(s.prev)
                self._unindex(s)
                sym = Symbol(target, target.code, target, s.prev, s.next)
                s.prev.next = sym
                s.next.prev = sym
                s.prev = s.next = None
                target.count += 1
                self._stack.append(sym.prev)
                self._stack.append(sym)
        for unit in units.values():
            inner = unit.guard.next
            inner.rule.count -= 1
            inner.prev = inner.next = None
            unit.count = 0
            unit.guard.prev = unit.guard.next = unit.guard
            del self._rules[unit.number]


def _is_whole_body(s: Symbol) -> bool:
    """True if the digram starting at s is the entire body of a rule."""
    return s.prev.code == GUARD and s.next.next.code == GUARD
