"""Sequitur grammars over opaque hashable symbols, tuning blocks read off them, and their DAG.

Pure Python (networkx and matplotlib only for the DAG); it knows nothing of neural networks.
"""
from workbench.sequitur.blocks import Composite, TuningBlocks, cover, find_blocks, select_blocks
from workbench.sequitur.grammar import Grammar
from workbench.sequitur.mine import RuleStats, expand, mine, rule_stats
from workbench.sequitur.symbols import Rule, Separator, Symbol

__all__ = ["Composite", "Grammar", "Rule", "RuleStats", "Separator", "Symbol", "TuningBlocks",
           "cover", "expand", "find_blocks", "mine", "rule_stats", "select_blocks"]
