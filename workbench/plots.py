"""Small drawing helpers shared by notebooks and experiments (matplotlib, no global state)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def draw_masks(masks: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.1, axes: Any = None) -> Any:
    """Draw (P, kh, kw) bool masks as small grids (kept entries dark); returns the Figure."""
    import matplotlib.pyplot as plt

    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (P, kh, kw), got shape {masks.shape}")
    p = len(masks)
    ncols = max(1, min(ncols, p))
    nrows = -(-p // ncols)
    if axes is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * (titles is not None)),
                                 squeeze=False)
    else:
        axes = np.atleast_2d(axes)
        fig = axes.flat[0].figure
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= p:
            ax.axis("off")
            continue
        ax.imshow(masks[i], cmap="Greys", vmin=0, vmax=1.4)
        kh, kw = masks[i].shape
        ax.set_xticks(np.arange(-0.5, kw), minor=True)
        ax.set_yticks(np.arange(-0.5, kh), minor=True)
        ax.grid(which="minor", color="#999", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return fig
