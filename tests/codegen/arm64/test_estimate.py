"""llvm-mca estimates of ARM64 kernels: the hot loop found, its flops counted exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.codegen.arm64.estimate import (PEAK_FLOPS_PER_CYCLE, estimate_kernel,
    estimate_program, flops)
from workbench.codegen.arm64.program import export_plan
from workbench.codegen.arm64.toolchain import missing_tools

from ..host.test_network import _pattern_prune

pytestmark = [pytest.mark.needs_cc, pytest.mark.needs_arm64,
              pytest.mark.skipif("llvm-mca" in missing_tools(),
                                 reason=missing_tools().get("llvm-mca", ""))]


def _fma_loop(n: int) -> str:
    """C source of wb_fma: a loop of n independent vector multiply-adds (n fmla .4s)."""
    acc = "".join(f"  vf a{j} = acc[{j}], b{j} = acc[{n + j}];\n" for j in range(n))
    body = "".join(f"    a{j} += x[i] * b{j};\n" for j in range(n))
    out = "".join(f"  acc[{j}] = a{j};\n" for j in range(n))
    return ("typedef float vf __attribute__((vector_size(16)));\n"
            "void wb_fma(vf *restrict acc, const vf *restrict x, int len) {\n"
            f"{acc}  for (int i = 0; i < len; ++i) {{\n{body}  }}\n{out}}}\n")


def test_pattern_conv_row() -> None:
    torch.manual_seed(0)
    model = _pattern_prune(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()))
    rows = estimate_program(export_plan(model, (16, 16, 16)))
    (conv,) = [r for r in rows if r["symbol"] == "wb_conv"]
    assert conv["kind"] == "estimate (llvm-mca)"
    assert conv["steps"] == ["_0"]
    assert conv["flops_per_iteration"] > 0 and conv["flops_per_iteration"] % 8 == 0
    assert conv["cycles_per_iteration"] > 0
    assert 0 < conv["fraction_of_peak"] <= 1
    assert "llvm-mca estimate for cortex-a76" in conv["label"]


@pytest.mark.parametrize("n", [4, 8])
def test_fmla_loop_flops_exact(n: int) -> None:
    est = estimate_kernel("wb_fma", _fma_loop(n))
    assert est.flops_per_iteration == 8 * n
    assert est.cycles_per_iteration > 0
    assert est.flops_per_cycle == pytest.approx(8 * n / est.cycles_per_iteration)
    assert est.peak_flops_per_cycle == PEAK_FLOPS_PER_CYCLE["cortex-a76"]
    assert est.label.startswith("llvm-mca estimate for cortex-a76")


def test_flop_count_per_form() -> None:
    assert flops(["fmla\tv0.4s, v1.4s, v2.s[0]", "fmla\tv3.2s, v1.2s, v2.2s",
                  "fmadd\ts0, s1, s2, s3", "fmul\tv4.4s, v5.4s, v6.4s", "fadd\ts1, s2, s3",
                  "ldr\tq0, [x1]", "ext\tv1.16b, v2.16b, v3.16b, #4"]) == 8 + 4 + 2 + 4 + 1


def test_unknown_cpu() -> None:
    with pytest.raises(ValueError, match="cortex-a76"):
        estimate_kernel("wb_fma", _fma_loop(2), cpu="pentium-4")
