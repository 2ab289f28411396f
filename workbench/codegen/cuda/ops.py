"""CUDA renderers for the layers between convolutions: max / average pooling, global average
pooling, the residual add (its activation fused), activations, and the linear layer.

They are memory-bound, so each is one pass: a thread per output value (pooling, add, act), a
warp per (image, channel) plane (global pooling) or per output feature (linear: each weight
row is read once, with 16-byte loads, for every image of the batch). Every kernel takes its
element counts as literals except the batch size `n`.
"""
from __future__ import annotations

from workbench.codegen.cuda.conv import act_expr
from workbench.codegen.lr import Layer, LRError

THREADS = 256


def _act_any(act: str, v: str) -> str:
    if act == "tanh":
        return f"tanhf({v})"
    if act == "sigmoid":
        return f"1.0f / (1.0f + expf(-{v}))"
    return act_expr(act, v)


def render_act(act: str, per_image: int, name: str = "wb_act") -> str:
    """__global__ name(x, y, n): y = act(x) over n * per_image floats (in place allowed)."""
    return f"""extern "C" __global__ void {name}(const float* x, float* y, int n) {{
  const long total = (long)n * {per_image};
  for (long i = blockIdx.x * (long){THREADS} + threadIdx.x; i < total;
       i += (long)gridDim.x * {THREADS}) {{
    const float v = x[i];
    y[i] = {_act_any(act, "v")};
  }}
}}
"""


def render_add(act: str, per_image: int, name: str = "wb_add") -> str:
    """__global__ name(a, b, y, n): y = act(a + b) over n * per_image floats."""
    return f"""extern "C" __global__ void {name}(const float* __restrict__ a,
    const float* __restrict__ b, float* __restrict__ y, int n) {{
  const long total = (long)n * {per_image};
  for (long i = blockIdx.x * (long){THREADS} + threadIdx.x; i < total;
       i += (long)gridDim.x * {THREADS}) {{
    const float v = __ldg(a + i) + __ldg(b + i);
    y[i] = {act_expr(act, "v")};
  }}
}}
"""


def render_pool(layer: Layer, c: int, h: int, w: int, ho: int, wo: int,
                name: str = "wb_pool") -> str:
    """__global__ name(x, y, n): max or average pooling of (n, c, h, w) to (n, c, ho, wo),
    PyTorch's rules (NaN propagates through max; average divisor per count_include_pad and
    ceil_mode)."""
    a = layer.attrs
    (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
    if layer.op == "maxpool2d":
        init, body, fin = ("__int_as_float(0xff800000)",  # -inf: NVRTC has no math.h macros
                           "m = (v > m || isnan(v)) ? v : m;", "m")
    elif layer.op == "avgpool2d":
        init, body = "0.0f", "m += v;"
        if a["count_include_pad"]:
            fin = (f"m / (float)((min(y0 + {kh}, {h + ph}) - y0) * "
                   f"(min(x0 + {kw}, {w + pw}) - x0))")
        else:
            fin = "m / (float)((ye - ys) * (xe - xs))"
    else:
        raise LRError(f"layer {layer.name!r}: {layer.op} is not pooling")
    return f"""extern "C" __global__ void {name}(const float* __restrict__ x,
    float* __restrict__ y, int n) {{
  const long total = (long)n * {c * ho * wo};
  for (long i = blockIdx.x * (long){THREADS} + threadIdx.x; i < total;
       i += (long)gridDim.x * {THREADS}) {{
    const int ox = i % {wo}, oy = (i / {wo}) % {ho};
    const long plane = i / {ho * wo};
    const int y0 = oy * {sh} - {ph}, x0 = ox * {sw} - {pw};
    const int ys = max(y0, 0), ye = min(y0 + {kh}, {h});
    const int xs = max(x0, 0), xe = min(x0 + {kw}, {w});
    const float* p = x + plane * {h * w};
    float m = {init};
    for (int yy = ys; yy < ye; ++yy)
      for (int xx = xs; xx < xe; ++xx) {{
        const float v = __ldg(p + yy * {w} + xx);
        {body}
      }}
    y[i] = {fin};
  }}
}}
"""


def render_global_avgpool(hw: int, name: str = "wb_gap") -> str:
    """__global__ name(x, y, planes): y[i] = mean of plane i (hw floats); a warp per plane."""
    return f"""extern "C" __global__ void {name}(const float* __restrict__ x,
    float* __restrict__ y, int planes) {{
  const int warp = (blockIdx.x * {THREADS} + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (warp >= planes) return;
  const float* p = x + (long)warp * {hw};
  float s = 0.0f;
  for (int i = lane; i < {hw}; i += 32) s += __ldg(p + i);
  for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) y[warp] = s / {float(hw)!r}f;
}}
"""


def render_linear(c: int, o: int, act: str, name: str = "wb_linear") -> str:
    """__global__ name(x, w, bias, y, n): y (n, o) = act(x (n, c) @ w.T + bias); a warp per
    output feature, every image of the batch from one pass over the weight row."""
    vec = c % 4 == 0
    nb = 8    # images per pass over a weight row (registers of partial sums)
    if vec:
        loop = f"""    for (int i = lane; i < {c // 4}; i += 32) {{
      const float4 wv = __ldg(reinterpret_cast<const float4*>(wr) + i);
      #pragma unroll
      for (int j = 0; j < {nb}; ++j) if (n0 + j < n) {{
        const float4 xv = __ldg(reinterpret_cast<const float4*>(x + (long)(n0 + j) * {c}) + i);
        s[j] += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
      }}
    }}"""
    else:
        loop = f"""    for (int i = lane; i < {c}; i += 32) {{
      const float wv = __ldg(wr + i);
      #pragma unroll
      for (int j = 0; j < {nb}; ++j) if (n0 + j < n) s[j] += wv * __ldg(x + (long)(n0 + j) * {c} + i);
    }}"""
    return f"""extern "C" __global__ void {name}(const float* __restrict__ x,
    const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y, int n) {{
  const int row = (blockIdx.x * {THREADS} + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (row >= {o}) return;
  const float* wr = w + (long)row * {c};
  for (int n0 = 0; n0 < n; n0 += {nb}) {{
    float s[{nb}];
    #pragma unroll
    for (int j = 0; j < {nb}; ++j) s[j] = 0.0f;
{loop}
    #pragma unroll
    for (int j = 0; j < {nb}; ++j) {{
      float v = s[j];
      for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0 && n0 + j < n) {{
        v += __ldg(bias + row);
        y[(long)(n0 + j) * {o} + row] = {act_expr(act, "v")};
      }}
    }}
  }}
}}
"""


def grid_for(total: int, per_block: int = THREADS) -> int:
    """Blocks for a grid-stride loop over total items (capped: the loop covers the rest)."""
    return max(1, min(-(-total // per_block), 65535))
