"""Filter kernel reorder: group filters by kept-kernel count and pattern signature.

Inside a filter, kernels are already grouped by pattern (storage.pack). Across filters, the
reorder puts filters with the same number of kept kernels and the same kernels-per-pattern
counts next to each other, so consecutive filters run the same pattern loops with the same
trip counts (fewer mispredicted branches), and a split of neighbouring filters over threads
gives each thread the same work. For 1x1 layers, filters that keep the same input channels
become neighbours, so a block of them visits fewer channels.
"""
from __future__ import annotations

import numpy as np

from workbench.codegen.lr import LR, Layer
from workbench.codegen.patterns import KernelPatterns


def pattern_signature(kp: KernelPatterns) -> np.ndarray:
    """(O, P) int: kept kernels of each pattern in each filter."""
    o = kp.kernel_pattern.shape[0]
    sig = np.zeros((o, max(kp.num_patterns, 1)), np.int64)
    for p in range(kp.num_patterns):
        sig[:, p] = (kp.kernel_pattern == p).sum(axis=1)
    return sig


def filter_order(kp: KernelPatterns) -> np.ndarray:
    """(O,) int32: filters by decreasing kept-kernel count, then by pattern signature."""
    sig = pattern_signature(kp)
    kept = sig.sum(axis=1)
    # np.lexsort sorts by the last key first: kept count (descending) is the primary key
    keys = [sig[:, p] for p in reversed(range(sig.shape[1]))] + [-kept]
    return np.lexsort(keys).astype(np.int32)


def channel_order(weight: np.ndarray) -> np.ndarray:
    """(O,) int32: 1x1 filters sorted by (kept channel count, kept channel set)."""
    mask = (np.asarray(weight).reshape(weight.shape[0], -1) != 0)
    packed = np.packbits(mask, axis=1)
    keys = [packed[:, i] for i in reversed(range(packed.shape[1]))] + [-mask.sum(axis=1)]
    return np.lexsort(keys).astype(np.int32)


def reorder_layer(layer: Layer) -> Layer:
    """The conv layer with params['filter_order'] set (other layers unchanged)."""
    if layer.op != "conv2d":
        return layer
    a = layer.attrs
    if tuple(a["kernel"]) == (1, 1) and a["groups"] == 1:
        order = channel_order(layer.params["weight"])
    else:
        order = filter_order(layer.kernel_patterns)
    return Layer(layer.name, layer.op, layer.inputs, layer.attrs,
                 {**layer.params, "filter_order": order}, layer.schedule)


def reorder(lr: LR) -> LR:
    """Filter kernel reorder on every conv layer of lr."""
    return LR(dict(lr.inputs), [reorder_layer(layer) for layer in lr.layers], list(lr.outputs),
              dict(lr.meta), lr.version)


def branch_changes(kp: KernelPatterns, order: np.ndarray) -> int:
    """How often the per-pattern trip counts change between consecutive filters in `order`
    (each change is a chance for the pattern loops' branches to mispredict)."""
    sig = pattern_signature(kp)[order]
    return int((sig[1:] != sig[:-1]).sum())
