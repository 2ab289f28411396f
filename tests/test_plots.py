"""Drawing helpers."""
import matplotlib
import numpy as np
import pytest

from workbench.plots import draw_masks

matplotlib.use("Agg")


def test_draw_masks_one_axis_per_mask():
    fig = draw_masks(np.eye(3, dtype=bool)[None].repeat(5, 0), titles=list("abcde"), ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(fig.axes) == 6 and len(visible) == 5


def test_draw_masks_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(P, kh, kw\)"):
        draw_masks(np.ones((3, 3), bool))
