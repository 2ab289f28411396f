"""C emitter for the image-to-image apps' steps: pixel shuffle, nearest upsampling, concat
along channels, broadcast of a feature vector to a map, instance norm (with its fused
activation) and the tanh / sigmoid output activations.

Each is one pass over memory (instance norm: three over one channel plane, which stays in
cache), threads via OpenMP over (image, channel) planes, on one-phase layouts with any zero
border and row padding (the producer writes straight into the padded layout the next conv
reads, so no padding copy is made). Every kernel is `int wb_<op>(inputs..., output,
[constants...], n_img, threads)`.
"""
from __future__ import annotations

from workbench.codegen.c.elementwise import HEADER, _act_expr, _origin
from workbench.codegen.ir import Layout
from workbench.codegen.lr import LRError


def _plane(name: str, lay: Layout, chan: str, const: bool = True) -> str:
    """C declaration of pointer `name` to pixel (0, 0) of channel `chan` of image n."""
    q = "const float *restrict" if const else "float *restrict"
    buf = name + "in" if const else "yout"
    return f"    {q} {name} = {buf} + n * {lay.image} + ({chan}) * {lay.chan} + {_origin(lay)};"


def _jobs(planes: int) -> list[str]:
    return [f"  const long jobs = (long)n_img * {planes};",
            "  #pragma omp parallel for schedule(static) num_threads(threads)",
            "  for (long job = 0; job < jobs; ++job) {",
            f"    const long n = job / {planes}, c = job % {planes};"]


def _check_plain(*lays: Layout) -> None:
    for lay in lays:
        if lay.cb != 1:
            raise LRError(f"render_image_ops: {lay} is channel-blocked")


def render_pixel_shuffle(src: Layout, dst: Layout, r: int) -> str:
    """C source of `int wb_shuffle(x, y, n, threads)`: y[c, r h + i, r w + j] =
    x[c r^2 + i r + j, h, w] (PyTorch's pixel_shuffle); one job per output channel."""
    _check_plain(src, dst)
    if (src.c, src.h * r, src.w * r) != (dst.c * r * r, dst.h, dst.w):
        raise LRError(f"render_pixel_shuffle: {src} by {r} is not {dst}")
    L = [HEADER.format(what=f"pixel shuffle by {r} into {dst.c}x{dst.h}x{dst.w}"),
         "int wb_shuffle(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
         *_jobs(dst.c),
         _plane("y", dst, "c", const=False),
         f"    for (int h = 0; h < {src.h}; ++h)",
         f"      for (int i = 0; i < {r}; ++i) {{",
         f"        float *yr = y + (size_t)(h * {r} + i) * {dst.row_stride};"]
    for j in range(r):
        L += [f"        {{ const float *xr = xin + n * {src.image} + (c * {r * r} + i * {r} + {j})"
              f" * {src.chan} + {_origin(src)} + (size_t)h * {src.row_stride};",
              f"          for (int w = 0; w < {src.w}; ++w) yr[w * {r} + {j}] = xr[w]; }}"]
    L += ["      }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_upsample(src: Layout, dst: Layout, sh: int, sw: int) -> str:
    """C source of `int wb_upsample(x, y, n, threads)`: nearest upsampling, y[c, y, x] =
    x[c, y // sh, x // sw]; each output row is made once and copied to the sh - 1 below."""
    _check_plain(src, dst)
    if (src.c, src.h * sh, src.w * sw) != (dst.c, dst.h, dst.w):
        raise LRError(f"render_upsample: {src} by {sh}x{sw} is not {dst}")
    L = [HEADER.format(what=f"nearest upsampling by {sh}x{sw} into {dst.c}x{dst.h}x{dst.w}"),
         "#include <string.h>",
         "int wb_upsample(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
         *_jobs(dst.c),
         _plane("x", src, "c"),
         _plane("y", dst, "c", const=False),
         f"    for (int h = 0; h < {src.h}; ++h) {{",
         f"      const float *xr = x + (size_t)h * {src.row_stride};",
         f"      float *yr = y + (size_t)h * {sh * dst.row_stride};",
         f"      for (int w = 0; w < {src.w}; ++w)",
         f"        for (int j = 0; j < {sw}; ++j) yr[w * {sw} + j] = xr[w];",
         f"      for (int i = 1; i < {sh}; ++i) memcpy(yr + (size_t)i * {dst.row_stride}, yr, "
         f"{4 * dst.w});",
         "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_concat(srcs: list[Layout], dst: Layout) -> str:
    """C source of `int wb_concat(x0, .., x{k-1}, y, n, threads)`: the inputs' channels one
    after another (torch.cat along dim 1); one job per output channel."""
    _check_plain(dst, *srcs)
    if sum(s.c for s in srcs) != dst.c or any((s.h, s.w) != (dst.h, dst.w) for s in srcs):
        raise LRError(f"render_concat: {srcs} do not make {dst}")
    args = ", ".join(f"const float *restrict x{i}in" for i in range(len(srcs)))
    L = [HEADER.format(what=f"concat of {len(srcs)} into {dst.c}x{dst.h}x{dst.w}"),
         "#include <string.h>",
         f"int wb_concat({args}, float *restrict yout, int n_img, int threads) {{",
         *_jobs(dst.c),
         _plane("y", dst, "c", const=False),
         "    const float *x; long rs;"]
    first = 0
    for i, s in enumerate(srcs):
        cond = "if" if i == 0 else "else if"
        L += [f"    {cond} (c < {first + s.c}) {{ x = x{i}in + n * {s.image} + (c - {first}) * "
              f"{s.chan} + {_origin(s)}; rs = {s.row_stride}; }}"]
        first += s.c
    L += ["    else continue;",
          f"    for (int h = 0; h < {dst.h}; ++h) memcpy(y + (size_t)h * {dst.row_stride}, "
          f"x + (size_t)h * rs, {4 * dst.w});",
          "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_broadcast(src: Layout, dst: Layout) -> str:
    """C source of `int wb_broadcast(x, y, n, threads)`: y[c, :, :] = x[c] for an input of
    one pixel per channel (a (C,) or (C, 1, 1) value) (ColorNet's global feature)."""
    _check_plain(src, dst)
    if src.c != dst.c or (src.h, src.w) != (1, 1):
        raise LRError(f"render_broadcast: {src} is not one pixel per channel of {dst}")
    L = [HEADER.format(what=f"broadcast {src.c} values to {dst.c}x{dst.h}x{dst.w}"),
         "int wb_broadcast(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
         *_jobs(dst.c),
         _plane("x", src, "c"),
         _plane("y", dst, "c", const=False),
         "    const float v = x[0];",
         f"    for (int h = 0; h < {dst.h}; ++h)",
         f"      for (int w = 0; w < {dst.w}; ++w) y[(size_t)h * {dst.row_stride} + w] = v;",
         "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def render_instance_norm(src: Layout, dst: Layout, eps: float, act: str) -> str:
    """C source of `int wb_inorm(x, y, gamma, beta, n, threads)`: per image and channel,
    y = act(gamma (x - mean) / sqrt(var + eps) + beta) with the plane's mean and biased
    variance (PyTorch's InstanceNorm2d); the variance from a second pass over the
    centred values (no cancellation), both summed per row in float and across rows in double."""
    _check_plain(src, dst)
    if (src.c, src.h, src.w) != (dst.c, dst.h, dst.w):
        raise LRError(f"render_instance_norm: shapes differ: {src}, {dst}")
    count = src.h * src.w
    rows = lambda body: [f"    for (int h = 0; h < {src.h}; ++h) {{",  # noqa: E731
                         f"      const float *xr = x + (size_t)h * {src.row_stride};", *body,
                         "    }"]
    L = [HEADER.format(what=f"instance norm of {src.c}x{src.h}x{src.w}, act {act}"),
         "#include <math.h>",
         "int wb_inorm(const float *restrict xin, float *restrict yout, const float *restrict gamma,",
         "             const float *restrict beta, int n_img, int threads) {",
         *_jobs(src.c),
         _plane("x", src, "c"),
         _plane("y", dst, "c", const=False),
         "    double s = 0.0, q = 0.0;",
         *rows(["      float rs = 0.0f;",
                "      #pragma omp simd reduction(+:rs)",
                f"      for (int w = 0; w < {src.w}; ++w) rs += xr[w];",
                "      s += rs;"]),
         f"    const float mean = (float)(s / {count});",
         *rows(["      float rq = 0.0f;",
                "      #pragma omp simd reduction(+:rq)",
                f"      for (int w = 0; w < {src.w}; ++w) {{ float d = xr[w] - mean; rq += d * d; }}",
                "      q += rq;"]),
         f"    const float scale = gamma[c] / sqrtf((float)(q / {count}) + {float(eps)!r}f);",
         "    const float shift = beta[c];",
         *rows([f"      float *yr = y + (size_t)h * {dst.row_stride};",
                f"      for (int w = 0; w < {src.w}; ++w) {{ float v = (xr[w] - mean) * scale + "
                f"shift; yr[w] = {_act_expr(act, 'v')}; }}"]),
         "  }", "  return 0;", "}", ""]
    return "\n".join(L)


def _unary_expr(act: str, v: str) -> str:
    """C expression of an activation with no fused form; the conv's fused ones otherwise."""
    if act == "tanh":
        return f"tanhf({v})"
    if act == "sigmoid":
        # 1 / (1 + e^-v): e^-v overflows to inf for v < -88, giving 0 as PyTorch does
        return f"(1.0f / (1.0f + expf(-{v})))"
    return _act_expr(act, v)


def render_unary(src: Layout, dst: Layout, act: str) -> str:
    """C source of `int wb_unary(x, y, n, threads)`: y = act(x) elementwise (act: tanh,
    sigmoid, or one of the fused activations)."""
    _check_plain(src, dst)
    if (src.c, src.h, src.w) != (dst.c, dst.h, dst.w):
        raise LRError(f"render_unary: shapes differ: {src}, {dst}")
    L = [HEADER.format(what=f"{act} of {src.c}x{src.h}x{src.w}"),
         "#include <math.h>",
         "int wb_unary(const float *restrict xin, float *restrict yout, int n_img, int threads) {",
         *_jobs(src.c),
         _plane("x", src, "c"),
         _plane("y", dst, "c", const=False),
         f"    for (int h = 0; h < {src.h}; ++h) {{",
         f"      const float *xr = x + (size_t)h * {src.row_stride};",
         f"      float *yr = y + (size_t)h * {dst.row_stride};",
         f"      for (int w = 0; w < {src.w}; ++w) yr[w] = {_unary_expr(act, 'xr[w]')};",
         "    }", "  }", "  return 0;", "}", ""]
    return "\n".join(L)
