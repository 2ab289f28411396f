"""Pictures of pruning schemes on a real weight: kernels tiled into one image, one panel per scheme."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from workbench.pruning.patterns import Weight
from workbench.pruning.schemes import Scheme


def kernel_grid(w: Weight, filters: int = 8, channels: int = 8, gap: int = 1) -> np.ndarray:
    """|W[:filters, :channels]| (O, I, kh, kw) tiled as rows=filters, cols=input channels; NaN gaps."""
    a = w.detach().cpu().float().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, float)
    if a.ndim != 4:
        raise ValueError(f"kernel_grid takes a conv weight (O, I, kh, kw), got shape {a.shape}")
    a = np.abs(a[:filters, :channels])
    o, i, kh, kw = a.shape
    img = np.full((o * (kh + gap) - gap, i * (kw + gap) - gap), np.nan)
    for r in range(o):
        for c in range(i):
            img[r * (kh + gap): r * (kh + gap) + kh, c * (kw + gap): c * (kw + gap) + kw] = a[r, c]
    return img


def draw_schemes(w: Weight, schemes: Mapping[str, Scheme], filters: int = 8, channels: int = 8,
                 ncols: int = 4, size: float = 2.4) -> Any:
    """The dense |W| and each scheme's projection of the whole layer, on its first kernels; a Figure."""
    import matplotlib.pyplot as plt

    t = torch.as_tensor(w).detach().float()
    panels = {"dense": t, **{name: s.project(t)[0] for name, s in schemes.items()}}
    vmax = float(t[:filters, :channels].abs().max())
    ncols = min(ncols, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 1.1 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (name, p) in zip(axes.flat, panels.items()):
        kept = float((p != 0).float().mean()) * 100
        cmap = plt.get_cmap("viridis").with_extremes(bad="white")
        img = kernel_grid(p, filters, channels)
        # Pruned weights (exact zeros) drawn white, so the structure of each scheme stands out.
        ax.imshow(np.where(img == 0, np.nan, img), cmap=cmap, vmin=0, vmax=vmax)
        ax.set_title(f"{name}\n{kept:.0f}% kept", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].set_ylabel("filters (output ch.)")
    axes[0][0].set_xlabel("input channels")
    fig.tight_layout()
    return fig
