"""Pruning: schemes as projections, kernel pattern sets, one-shot and ADMM pruning, masks.

    patterns.py    candidate_patterns, PatternSet (pattern / pattern+connectivity scheme),
                   select_patterns (distillation by best-fit frequency), coverage
    schemes.py     Irregular, Filter, Channel, Column, Connectivity, Block; make_scheme by name
                   and rate
    sparsifier.py  config of per-layer groups over defaults; Sparsifier.prepare/step/finalize,
                   prune_model (one-shot), conv_config, rate_config, linear_config,
                   pointwise_config
    masks.py       MaskedRetraining (train's after_step), mask statistics, save/load pruned models
    admm.py        ADMM (Z-step = the scheme's projection), residuals, rho schedule
    pipeline.py    ADMM and one-shot pruning with retraining, phase checkpoints, resume
    figures.py     kernel_grid / draw_schemes: each scheme drawn on a real weight
"""
from workbench.pruning.admm import ADMM, plot_residuals
from workbench.pruning.masks import (MaskedRetraining, apply_masks, compression, load_pruned,
                                     load_pruned_model, mask_stats, save_pruned)
from workbench.pruning.patterns import (PatternFitError, PatternSet, candidate_patterns, coverage,
                                        pattern_frequency, select_patterns)
from workbench.pruning.pipeline import PruneResult, admm_prune, oneshot_prune
from workbench.pruning.schemes import (SCHEMES, Block, Channel, Column, Connectivity, Filter,
                                       Irregular, Kernel, Scheme, make_scheme, pattern_connectivity)
from workbench.pruning.sparsifier import (Sparsifier, conv_config, linear_config,
                                          pointwise_config, prune_model, rate_config)

__all__ = [
    "MaskedRetraining", "apply_masks", "compression", "load_pruned", "load_pruned_model",
    "mask_stats", "save_pruned",
    "PatternFitError", "PatternSet", "candidate_patterns", "coverage", "pattern_frequency",
    "select_patterns",
    "SCHEMES", "Block", "Channel", "Column", "Connectivity", "Filter", "Irregular", "Kernel", "Scheme",
    "make_scheme", "pattern_connectivity",
    "Sparsifier", "conv_config", "linear_config", "pointwise_config", "prune_model",
    "rate_config",
    "ADMM", "plot_residuals", "PruneResult", "admm_prune", "oneshot_prune",
]
