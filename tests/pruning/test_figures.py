"""Scheme pictures: kernels land where the grid says, one panel per scheme."""
import matplotlib
import numpy as np
import pytest
import torch

from workbench.pruning.figures import draw_schemes, kernel_grid
from workbench.pruning.schemes import Filter, Irregular

matplotlib.use("Agg")


def test_kernel_grid_places_kernels_with_gaps():
    w = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3) * -1
    img = kernel_grid(w, filters=2, channels=2)
    assert img.shape == (7, 7) and np.isnan(img[3]).all() and np.isnan(img[:, 3]).all()
    np.testing.assert_array_equal(img[4:, 4:], np.abs(w[1, 1].numpy()))
    with pytest.raises(ValueError, match="conv weight"):
        kernel_grid(torch.ones(3, 3))


def test_draw_schemes_has_a_panel_per_scheme():
    fig = draw_schemes(torch.randn(8, 8, 3, 3), {"irregular": Irregular(0.25), "filter": Filter(0.25)})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["dense\n100% kept", "irregular\n25% kept", "filter\n25% kept"]
    fig = draw_schemes(torch.randn(8, 8, 3, 3), {str(k): Irregular(0.5) for k in range(4)}, ncols=3)
    assert len(fig.axes) == 6 and not fig.axes[-1].axison
