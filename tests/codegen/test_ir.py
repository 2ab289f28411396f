"""Buffer layouts the conv kernels read: stride phases sized to what the taps touch."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.codegen.ir import conv_src_layout
from workbench.codegen.lr import conv_layer


@pytest.mark.parametrize("hw, row", [(14, 8), (8, 8), (28, 16), (56, 32), (112, 64)])
def test_stride2_phase_planes_are_tight(hw: int, row: int) -> None:
    conv = conv_layer(np.ones((4, 6, 3, 3), np.float32), padding=1, stride=2)
    lay = conv_src_layout(conv, hw, hw, 16)
    wo = (hw - 1) // 2 + 1
    assert (lay.sy, lay.sx) == (2, 2) and lay.row_stride == row
    # every stored output column's taps (plane columns x .. x + 1) lie inside its row
    assert wo + 1 <= lay.row_stride
    # the image fits: padded column w (the right zero border) is the last one a tap reads
    assert -(-(hw + 1) // 2) <= lay.row_stride and lay.plane_rows >= wo + 1
    # at most a row of slack beyond what the taps read, and no whole spare vector
    assert lay.row_stride < max(8, wo + 1 + 16)
