"""render_c(ir, schedule) -> C source of one conv layer: picks the kernel the schedule names.

The kernels live one per module (pattern, taps, pblock, column, depthwise/direct, pointwise,
gemm); this module only chooses among them, so imports run one way: render -> kernels ->
prelude.
"""
from __future__ import annotations

from workbench.codegen.c.column import column_supported, render_column, uses_column
from workbench.codegen.c.depthwise import (direct_supported, is_depthwise_ir, render_depthwise,
    render_direct)
from workbench.codegen.c.gemm import render_pointwise_gemm, uses_gemm
from workbench.codegen.c.pattern import render_conv
from workbench.codegen.c.pointwise import render_pointwise
from workbench.codegen.c.taps import render_taps, uses_taps
from workbench.codegen.ir import ConvIR, is_column_pruned, is_pointwise_layer
from workbench.codegen.lr import LRError
from workbench.codegen.schedule import Schedule


def render_c(ir: ConvIR, sched: Schedule) -> str:
    """C source for one conv layer under sched: a GEMM for 1x1 convolutions, the kernel
    sched.kernel names where it applies (kernel_kind), else the pattern kernel (which also
    runs dense 3x3, depthwise and strided convolutions)."""
    if uses_gemm(ir, sched):
        return render_pointwise_gemm(ir, sched)
    if ir.res is not None:
        raise LRError(f"layer {ir.layer.name!r}: a residual add is fused only into the GEMM "
                      f"kernel (Schedule.kernel 'gemm'), not {sched.kernel!r}")
    if is_pointwise_layer(ir.layer):
        return render_pointwise(ir, sched)
    kind = kernel_kind(ir, sched)   # Schedule.kernel "depthwise" / "direct" where they apply
    if kind in ("depthwise", "direct"):
        return render_depthwise(ir, sched) if kind == "depthwise" else render_direct(ir, sched)
    if uses_taps(ir, sched):
        return render_taps(ir, sched)
    if uses_column(ir, sched):
        return render_column(ir, sched)
    from workbench.codegen.c.pblock import render_pblock, uses_pblock
    if uses_pblock(ir, sched):
        return render_pblock(ir, sched)
    return render_conv(ir, sched)


def kernel_kind(ir: ConvIR, sched: Schedule) -> str:
    """Which C kernel render_c emits for ir under sched: "pointwise", "depthwise", "direct",
    "taps", "column", "pblock" or "pattern" (a kernel asked for where it does not apply falls
    back to pattern)."""
    if is_pointwise_layer(ir.layer):
        return "pointwise"
    if sched.kernel == "depthwise" and is_depthwise_ir(ir):
        return "depthwise"
    if sched.kernel == "direct" and direct_supported(ir):
        return "direct"
    if uses_taps(ir, sched):
        return "taps"
    if uses_column(ir, sched):
        return "column"
    if sched.kernel == "pblock" and not is_pointwise_layer(ir.layer):
        return "pblock"
    return "pattern"


def default_kernel(ir: ConvIR) -> str | None:
    """The kernel an untuned schedule should use where the pattern kernel is a poor fit:
    "depthwise" for depthwise layers, "direct" for dense convs with at most 4 input channels
    and kernels of 5x5 or more (the stem), "column" for column-pruned layers (is_column_shaped
    with some column removed: ir.is_column_pruned) it can read, else None (the C default)."""
    if is_pointwise_layer(ir.layer):
        return None
    if is_depthwise_ir(ir):
        return "depthwise"
    if direct_supported(ir) and ir.cg <= 4 and ir.kernel[0] * ir.kernel[1] >= 25:
        return "direct"
    if is_column_pruned(ir.layer) and column_supported(ir):
        # 2-3x the pattern kernel's speed on column-pruned layers (c.column)
        return "column"
    return None
