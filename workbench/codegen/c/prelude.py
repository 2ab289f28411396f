"""The C renderers' shared prelude: vector types, loads, stores and activations.

Vectors are GCC/Clang vector extensions (`vector_size`), so one source serves AVX-512 (16
floats), AVX2 (8) and NEON (4): the compiler maps each vector op to one instruction, and
`a += w * x` becomes a fused multiply-add under -ffp-contract=fast. Every shape, stride,
layout offset and pattern tap is a literal in the source; only the packed weights, the
buffers and the batch size are arguments. Names from models never reach the source.
"""
from __future__ import annotations

from workbench.codegen.ir import ConvIR, Layout

PRELUDE = r"""#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VW {vw}
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
static inline vf vld(const float *p) {{ vf v; memcpy(&v, p, sizeof v); return v; }}
static inline void vst(float *p, vf v) {{ memcpy(p, &v, sizeof v); }}
static inline vf vdup(float x) {{ vf v = {dup}; return v; }}
/* NaN fails every ordered compare: clearing the lanes where v < 0 keeps a NaN (PyTorch's relu
   does), where keeping the lanes with v > 0 would zero it; one compare and one and-not either
   way. Lanes over 6 become 6: a NaN stays, as in PyTorch's hardtanh. */
static inline vf vrelu(vf v) {{ vi m = v < (vf){{0}}; return (vf)((vi)v & ~m); }}
static inline vf vrelu6(vf v) {{
  v = vrelu(v); vi m = v > vdup(6.0f);
  return (vf)(((vi)v & ~m) | ((vi)vdup(6.0f) & m));
}}
static inline vf vkeep(vf v, int n) {{  /* zero lanes n.. (keeps a buffer's border zero) */
  vi lane = {lanes}; vi m = lane < (vi){{0}} + n; return (vf)((vi)v & m);
}}
"""


def _lanes(vw: int) -> str:
    return "{" + ", ".join(str(i) for i in range(vw)) + "}"


def _shift(vw: int, lo: str, hi: str, k: int) -> str:
    """Lanes k .. k + VW - 1 of the concatenation lo:hi (one valignd / vperm2 on x86)."""
    idx = ", ".join(str(k + i) for i in range(vw))
    return f"__builtin_shufflevector({lo}, {hi}, {idx})"


def _act(act: str, v: str) -> str:
    return {"relu": f"vrelu({v})", "relu6": f"vrelu6({v})"}.get(act, v)


def _store_lines(dst: Layout, wo: int, vw: int, act: str, th: int, tw: int, indent: str,
                 col0: str, row0: str, acc: str = "a") -> list[str]:
    """Store the th x tw accumulator tile at output (row0 + t, col0 + VW * j) of dst."""
    L = []
    row_room = dst.row_stride - dst.left  # floats from column 0 of a row to its end
    for t in range(th):
        L.append(f"{indent}{{ float *yr = yo + (size_t)({row0} + {t + dst.top}) * {dst.row_stride}"
                 f" + {dst.left} + {col0};")
        for j in range(tw):
            v = _act(act, f"{acc}{t}_{j}")
            # Columns col0 + VW*j .. are valid while < wo: a partial last vector is masked
            # (if the row has room, keeping the zero border) or written lane by lane.
            L.append(f"{indent}  if ({col0} + {vw * (j + 1)} <= {wo}) vst(yr + {vw * j}, {v});")
            if row_room >= -(-wo // vw) * vw:
                L.append(f"{indent}  else vst(yr + {vw * j}, vkeep({v}, {wo} - {col0} - {vw * j}));")
            else:
                L.append(f"{indent}  else {{ vf tv = {v}; for (int l = 0; l < {wo} - {col0} - "
                         f"{vw * j}; ++l) yr[{vw * j} + l] = tv[l]; }}")
        L.append(f"{indent}}}")
    return L


def _steps(ir: ConvIR) -> tuple[int, int]:
    """(row step, column step) between neighbouring outputs in the input buffer: the stride
    when a strided conv reads a plain (not phase-split) buffer, else 1."""
    if ir.src.phases == 1:
        return ir.stride
    return 1, 1


def _even(vw: int, a: str, b: str) -> str:
    """Lanes 0, 2, 4, .. of the concatenation a:b (a stride-2 gather of 2 * VW floats)."""
    return f"__builtin_shufflevector({a}, {b}, {', '.join(str(2 * i) for i in range(vw))})"


def even_split(n: int, t: int) -> tuple[int, int, int, int]:
    """n vectors in ceil(n / t) tiles as even as possible: (wide, n_wide, narrow, n_narrow),
    wide = narrow + 1; e.g. 7 by 3 -> 3, 2, 2 rather than 3, 3, 1 (a one-vector tile has too
    few accumulators to hide the FMA latency)."""
    k = -(-n // t)
    base, extra = divmod(n, k)
    return base + 1, extra, base, k - extra
