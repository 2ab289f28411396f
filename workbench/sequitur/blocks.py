"""Tuning blocks (CoCo-Tune, report section 2.2): which runs of pruned layers to pre-train.

The networks of a promising subspace are mined as one Sequitur grammar (a separator between
networks). Each rule is a candidate block: a run of consecutive symbols that recurs. The symbols
are opaque hashables here; tune/ makes them (layer, pruning rate) pairs. Going down the DAG from
the start rule (parents first), a rule that is reached is selected when

1. it appears in at least two networks (a block pre-trained for one network saves nothing), and
2. it appears as often as its most frequently appearing descendant rule; otherwise it is passed
   over and its children are reached in its place (a shorter block that more networks share
   may save more than a longer one that fewer share).

"Appears" counts networks: a rule's frequency is the number of networks whose derivation
contains it. The report defines heuristic 1 this way ("appears in only one network (i.e., its
appearing frequency is one)"), and pre-trained weights are reused across networks, not across
repeats inside one network, so heuristic 2 uses the same count. With the report's symbols, layer
ids with rates, a layer occurs once per network, so this equals the number of occurrences; the
two differ only when one network repeats a run (e.g. symbols naming module kinds), and then a
run repeated inside a single network is not a block.

Precisely: for the rule itself the count is taken over the networks where it occurs outside the
blocks already selected above it (those are the networks that would use it as a block; before
any selection this is its frequency), for the descendants it is their frequency. Since every
network that contains a rule contains its descendants, a rule is selected exactly when it occurs
outside selected blocks in >= 2 networks and no descendant rule occurs in any other network.
Rules reached only through selected rules are not considered (they lie inside a block).

Each network's composite vector records which blocks it uses and where, read off its
derivation, and the symbols that no block covers. `cover` builds the same record for any given
list of blocks (e.g. one block per module), so definitions can be compared on equal terms.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from workbench.sequitur.grammar import Grammar
from workbench.sequitur.mine import RuleStats, mine, rule_stats, topological_order
from workbench.sequitur.symbols import Rule, Separator, expand_rule, format_value


@dataclass(frozen=True)
class Composite:
    """One network assembled from blocks: (position, block index) placements, uncovered symbols."""

    network: int
    length: int
    placements: tuple[tuple[int, int], ...]
    uncovered: tuple[tuple[int, Hashable], ...]

    @property
    def covered(self) -> int:
        """Number of the network's symbols that lie inside a placed block."""
        return self.length - len(self.uncovered)

    def vector(self, n_blocks: int) -> tuple[int, ...]:
        """(n_blocks,) counts: how many times this network uses each block."""
        counts = [0] * n_blocks
        for _, b in self.placements:
            counts[b] += 1
        return tuple(counts)


@dataclass(frozen=True)
class TuningBlocks:
    """A set of tuning blocks (tuples of symbols) and every network's composite.

    rules[i] names the grammar rules that block i came from (empty when made by `cover`).
    """

    blocks: tuple[tuple[Hashable, ...], ...]
    composites: tuple[Composite, ...]
    rules: tuple[tuple[str, ...], ...] = ()

    def networks(self, block: int) -> frozenset[int]:
        """Indices of the networks that use block `block`."""
        return frozenset(c.network for c in self.composites
                         if any(b == block for _, b in c.placements))

    def vectors(self) -> list[tuple[int, ...]]:
        """(networks, blocks) usage counts: each network's composite vector."""
        return [c.vector(len(self.blocks)) for c in self.composites]

    @property
    def cost(self) -> int:
        """Symbols (layers) to pre-train: the summed length of all blocks."""
        return sum(len(b) for b in self.blocks)

    @property
    def coverage(self) -> float:
        """Fraction of all networks' symbols that lie inside blocks (0 when there are none)."""
        total = sum(c.length for c in self.composites)
        return sum(c.covered for c in self.composites) / total if total else 0.0

    def format(self) -> str:
        """Blocks and networks as text: 'B0 = a b (r3; networks 0 2)' and '1: x B0 y'."""
        lines = ["blocks:"]
        for i, block in enumerate(self.blocks):
            src = f"{', '.join(self.rules[i])}; " if self.rules else ""
            nets = " ".join(str(n) for n in sorted(self.networks(i)))
            symbols = " ".join(format_value(v) for v in block)
            lines.append(f"  B{i} = {symbols}   ({src}networks {nets})")
        lines.append("networks:")
        for c in self.composites:
            items = ([(p, f"B{b}") for p, b in c.placements]
                     + [(p, format_value(v)) for p, v in c.uncovered])
            lines.append(f"  {c.network}: {' '.join(text for _, text in sorted(items))}")
        return "\n".join(lines)


def select_blocks(grammar: Grammar) -> TuningBlocks:
    """Tuning blocks of a multi-sequence grammar (one sequence per network) and composites."""
    stats = rule_stats(grammar)
    order = topological_order(grammar)  # parents before children
    best_below: dict[Rule, int] = {}  # highest frequency among a rule's descendants
    for r in reversed(order):
        best_below[r] = max((max(stats[c].frequency, best_below[c]) for c, _ in stats[r].children),
                            default=0)
    # free[r]: networks where r occurs outside every block chosen so far, i.e. the networks
    # that would use r if it became a block. All of r's parents are decided before r.
    free: dict[Rule, set[int]] = {r: set() for r in order}
    network = 0
    for sym in grammar.start.symbols():
        if isinstance(sym.value, Separator):
            network += 1
        elif sym.rule is not None:
            free[sym.rule].add(network)
    chosen: set[Rule] = set()
    for r in order[1:]:
        k = len(free[r])
        if k >= 2 and k >= best_below[r]:
            chosen.add(r)
        elif k:  # passed over: its children are used wherever it would have been
            for c, _ in stats[r].children:
                free[c] |= free[r]
    return _composites_from_derivation(grammar, chosen, stats)


def find_blocks(sequences: Iterable[Iterable[Hashable]]) -> TuningBlocks:
    """Mine the networks (one sequence of symbols each) and select their tuning blocks."""
    return select_blocks(mine(sequences, many=True))


def _composites_from_derivation(grammar: Grammar, chosen: set[Rule],
                                stats: dict[Rule, RuleStats]) -> TuningBlocks:
    """Walk each network's derivation, placing chosen rules as blocks (equal expansions merged)."""
    index_of: dict[tuple[Hashable, ...], int] = {}
    block_of: dict[Rule, int] = {}
    sources: list[list[str]] = []
    placements: list[list[tuple[int, int]]] = [[]]
    uncovered: list[list[tuple[int, Hashable]]] = [[]]
    lengths: list[int] = []
    pos = 0
    stack = [grammar.start.first]
    while stack:
        s = stack.pop()
        while not s.is_guard:
            r = s.rule
            if r is None and isinstance(s.value, Separator):
                lengths.append(pos)
                placements.append([])
                uncovered.append([])
                pos = 0
            elif r is None:
                uncovered[-1].append((pos, s.value))
                pos += 1
            elif r in chosen:
                if r not in block_of:
                    expansion = tuple(expand_rule(r))
                    if expansion not in index_of:
                        index_of[expansion] = len(index_of)
                        sources.append([])
                    block_of[r] = index_of[expansion]
                    sources[block_of[r]].append(r.name)
                placements[-1].append((pos, block_of[r]))
                pos += stats[r].length
            else:
                stack.append(s.next)
                s = r.first
                continue
            s = s.next
    lengths.append(pos)
    composites = tuple(Composite(i, lengths[i], tuple(placements[i]), tuple(uncovered[i]))
                       for i in range(grammar.n_sequences))
    return TuningBlocks(blocks=tuple(index_of), composites=composites,
                        rules=tuple(tuple(s) for s in sources))


def cover(sequences: Iterable[Sequence[Hashable]],
          blocks: Iterable[Sequence[Hashable]]) -> TuningBlocks:
    """Composites for given blocks, placed greedily left to right, longest block first."""
    blocks = tuple(tuple(b) for b in blocks)
    starting: dict[Hashable, list[int]] = {}
    for i, b in enumerate(blocks):
        if not b:
            raise ValueError(f"block {i} is empty; a tuning block holds at least one symbol")
        try:
            starting.setdefault(b[0], []).append(i)
        except TypeError:
            raise TypeError(f"block {i} starts with {b[0]!r}, which is not hashable") from None
    for ids in starting.values():
        ids.sort(key=lambda i: -len(blocks[i]))
    composites = []
    for n, seq in enumerate(sequences):
        seq = tuple(seq)
        placed: list[tuple[int, int]] = []
        left: list[tuple[int, Hashable]] = []
        pos = 0
        while pos < len(seq):
            try:
                candidates = starting.get(seq[pos], ())
            except TypeError:
                raise TypeError(f"symbol {seq[pos]!r} (item {pos} of sequence {n}) "
                                "is not hashable") from None
            for i in candidates:
                if seq[pos:pos + len(blocks[i])] == blocks[i]:
                    placed.append((pos, i))
                    pos += len(blocks[i])
                    break
            else:
                left.append((pos, seq[pos]))
                pos += 1
        composites.append(Composite(n, len(seq), tuple(placed), tuple(left)))
    return TuningBlocks(blocks=blocks, composites=tuple(composites))
