"""CoCo-Gen benchmarks on the host CPU: per-layer and end-to-end times against PyTorch, the
FMA peak, the load-redundancy and reorder ablations, and the weight-storage table.

Every timing is a median after warm-up, taken with the process pinned to as many cores as
threads (workbench.bench.pinning), ours and the peer in the same run. Weights are random,
projected PatDNN-style (8 four-tap patterns with the centre kept, then the strongest 30% of
kernels of each 3x3 layer kept: 13.3% of 3x3 weights), since no trained weights are used;
dense 1x1 convs keep half their input channels per group of 16 filters (ResNet-50's
bottlenecks; not in models with depthwise convs), linear layers but the last 1/8 of their weights in 16-row blocks (VGG-16's
classifier).

    python -m workbench.bench.codegen_bench [--quick] [--out results/codegen]
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.bench.pinning import pinned
from workbench.bench.timing import measure
from workbench.codegen.frontend_torch import from_torch
from workbench.codegen.host.build import build_c, host_vector_width, register_width
from workbench.codegen.host.kernel import CompiledLayer
from workbench.codegen.host.tune import TuningLog, tune_layer, tune_network
from workbench.codegen.lr import LR, Layer
from workbench.codegen.reorder import reorder_layer
from workbench.codegen.storage import storage_row
from workbench.codegen.targets import compile as compile_network

# the 8 four-tap patterns (centre kept) of the pattern library, as 3x3 tap indices
PATTERNS8 = ((1, 3, 4, 5), (1, 4, 5, 7), (3, 4, 5, 7), (1, 3, 4, 7),
             (0, 1, 3, 4), (1, 2, 4, 5), (3, 4, 6, 7), (4, 5, 7, 8))


def project_patdnn(w: np.ndarray, keep: float = 0.3) -> np.ndarray:
    """Euclidean projection of W (O, C, 3, 3) onto 8 patterns + connectivity: each kernel keeps
    the pattern holding most of its energy, then the `keep` fraction of kernels with the most
    energy left survive."""
    o, c = w.shape[:2]
    flat = w.reshape(o * c, 9)
    masks = np.zeros((len(PATTERNS8), 9), bool)
    for i, p in enumerate(PATTERNS8):
        masks[i, list(p)] = True
    energy = (flat ** 2) @ masks.T.astype(w.dtype)             # (O*C, 8)
    best = energy.argmax(axis=1)
    out = flat * masks[best]
    kept_energy = energy[np.arange(len(best)), best]
    n_keep = max(1, int(round(keep * o * c)))
    cut = np.partition(kept_energy, -n_keep)[-n_keep]
    out[kept_energy < cut] = 0.0
    return out.reshape(w.shape).astype(np.float32)


def prune_model(model: nn.Module, keep: float = 0.3, linear_keep: float = 0.125,
                pointwise_keep: float = 0.5) -> nn.Module:
    """Every dense 3x3 conv (groups 1) of model projected PatDNN-style; every dense 1x1 conv to
    pointwise_keep of its input channels per group of 16 filters (pruning.pointwise_config:
    ResNet-50's bottlenecks); every linear layer but the last (the class scores) to
    linear_keep of its weights in 16-row blocks (VGG-16's classifier, as PatDNN prunes it).
    In place; keep 1.0 leaves a kind of layer dense. MobileNet-V2's 1x1s are pruned like the
    rest: its blocked GEMMs and fused expansion / projection kernels skip pruned channels."""
    from workbench.pruning.schemes import Block
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
                m.weight.copy_(torch.from_numpy(project_patdnn(m.weight.numpy(), keep)))
            elif isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 and \
                    pointwise_keep < 1.0:
                m.weight.copy_(Block(pointwise_keep, 16, 1).project(m.weight)[0])
        for m in linears:
            if linear_keep < 1.0:
                m.weight.copy_(Block(linear_keep, 16, 1).project(m.weight)[0])
    return model


def fma_peak(seconds: float = 0.5) -> float:
    """GFLOP/s of one core running only independent vector FMAs (generated C, this machine):
    the best of the widths our kernels run here (a 16-float host also runs 8-float kernels,
    and Zen 4 splits each 16-float FMA in two, so there both widths run at one rate)."""
    # a vector wider than the registers runs as several register-wide FMAs (and an asm
    # operand cannot hold it: "impossible constraint"), so probe at most the register width
    vw = min(host_vector_width(), register_width())
    return max(_fma_rate(v, seconds) for v in ((vw, 8) if vw == 16 else (vw,)))


def fma_probe_source(vw: int) -> tuple[str, int]:
    """(C source of wb_peak(n): n rounds of independent FMAs on vw-float vectors, its
    accumulator count)."""
    accs = 12 if vw == 8 else 24
    body = "\n".join(f"    a{i} = a{i} * m + c;" for i in range(accs))
    # an empty asm that claims to change the accumulators keeps the FMAs from being folded;
    # GCC allows 30 operands per asm and "+v" counts twice, so 8 accumulators per statement.
    # "v", not "x": "x" names only the 16 registers of SSE, so 24 accumulators spilled and the
    # probe read 132 GFLOP/s for 16 floats on a Zen 5 core that does 277
    fences = "\n".join('    __asm__ volatile("" : ' +
                       ", ".join(f'"+v"(a{i})' for i in range(g, min(g + 8, accs))) + ");"
                       for g in range(0, accs, 8))
    src = f"""#include <stdint.h>
typedef float vf __attribute__((vector_size({vw * 4})));
double wb_peak(long n) {{
  vf m = (vf){{0}} + 0.9999f, c = (vf){{0}} + 0.0001f;
  {"; ".join(f"vf a{i} = (vf){{0}} + {i}.0f" for i in range(accs))};
  for (long i = 0; i < n; ++i) {{
{body}
{fences}
  }}
  vf s = {" + ".join(f"a{i}" for i in range(accs))};
  return s[0];
}}
"""
    return src, accs


def _fma_rate(vw: int, seconds: float) -> float:
    """GFLOP/s of one core running independent FMAs on vw-float vectors."""
    src, accs = fma_probe_source(vw)
    fn = build_c(src).wb_peak
    fn.argtypes, fn.restype = [ctypes.c_long], ctypes.c_double
    n = 1_000_000
    fn(n)
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    n = max(n, int(n * seconds / max(dt, 1e-6)))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return 2 * vw * accs * n / best / 1e9


def _torch_conv_time(layer: Layer, in_shape: tuple[int, ...], channels_last: bool) -> float:
    a = layer.attrs
    w = torch.from_numpy(layer.params["weight"])
    x = torch.randn(1, *in_shape)
    if channels_last:
        w, x = w.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        return min(measure(lambda: F.conv2d(x, w, None, a["stride"], a["padding"], a["dilation"],
                                            a["groups"]), warmup=2, repeats=7).median
                   for _ in range(2))


def _ours_time(layer: Layer, in_shape: tuple[int, ...], sched: Any) -> float:
    from workbench.codegen.host.tune import _time_kernel
    kern = CompiledLayer(layer, "c", sched, in_shape)
    return min(_time_kernel(kern, in_shape, 9) for _ in range(2))


def conv_layer_table(lr: LR, threads: int, trials: int, log: TuningLog, peak: float,
                     only_3x3: bool = True) -> list[dict[str, Any]]:
    """Per conv layer: ours (C, tuned) vs torch dense direct (NCHW and channels-last)."""
    shapes = lr.shapes()
    rows = []
    with pinned(threads):
        for layer in lr.layers:
            if layer.op != "conv2d" or (only_3x3 and tuple(layer.attrs["kernel"]) != (3, 3)):
                continue
            in_shape = tuple(shapes[layer.inputs[0]])
            sched = tune_layer(layer, in_shape, "c", trials, log=log, threads=threads)
            ours = _ours_time(layer, in_shape, sched)
            t_nchw = _torch_conv_time(layer, in_shape, False)
            t_cl = _torch_conv_time(layer, in_shape, True)
            out = shapes[layer.name]
            kp = layer.kernel_patterns
            useful = 2 * kp.kept_weights * out[1] * out[2]
            dense = 2 * kp.total_kernels * 9 * out[1] * out[2]
            rows.append({"layer": layer.attrs.get("source", layer.name), "threads": threads,
                         "in": "x".join(map(str, in_shape)), "out_ch": out[0],
                         "kept": round(kp.kept_weights / (kp.total_kernels * 9), 4),
                         "ours_ms": ours * 1e3, "torch_nchw_ms": t_nchw * 1e3,
                         "torch_cl_ms": t_cl * 1e3,
                         "speedup_vs_best_torch": min(t_nchw, t_cl) / ours,
                         # the ideal: the best dense time scaled by the fraction of work kept
                         "ideal_ms": min(t_nchw, t_cl) * useful / dense * 1e3,
                         "useful_gflops": useful / ours / 1e9,
                         "pct_of_peak": 100 * useful / ours / 1e9 / (peak * threads),
                         "torch_dense_gflops": dense / min(t_nchw, t_cl) / 1e9})
    return rows


def lre_ablation(lr: LR, threads: int, peak: float, names: list[str] | None = None) -> list[dict]:
    """Load redundancy elimination off (0), rows shared (1), rows shared + register shifts (2),
    each at its best tile among a few, on selected 3x3 layers."""
    shapes = lr.shapes()
    rows = []
    from workbench.codegen.schedule import Schedule
    with pinned(threads):
        for layer in lr.layers:
            if layer.op != "conv2d" or tuple(layer.attrs["kernel"]) != (3, 3) or \
                    layer.attrs["groups"] != 1 or (names and layer.name not in names):
                continue
            in_shape = tuple(shapes[layer.inputs[0]])
            out = shapes[layer.name]
            useful = 2 * layer.kernel_patterns.kept_weights * out[1] * out[2]
            row = {"layer": layer.attrs.get("source", layer.name), "threads": threads,
                   "in": "x".join(map(str, in_shape))}
            for lre in (0, 1, 2):
                t = min(_ours_time(layer, in_shape, Schedule(lre=lre, tile_h=th, tile_w=tw))
                        for th, tw in ((4, 2), (4, 1), (3, 3)))
                row[f"lre{lre}_ms"] = t * 1e3
                row[f"lre{lre}_gflops"] = useful / t / 1e9
            row["lre1_speedup"] = row["lre0_ms"] / row["lre1_ms"]
            rows.append(row)
    return rows


def reorder_ablation(lr: LR, threads: int, names: list[str] | None = None) -> list[dict]:
    """Filter kernel reorder on / off (same schedule), parallel split by rows and by filters."""
    shapes = lr.shapes()
    rows = []
    from workbench.codegen.schedule import Schedule
    with pinned(threads):
        for layer in lr.layers:
            if layer.op != "conv2d" or tuple(layer.attrs["kernel"]) != (3, 3) or \
                    layer.attrs["groups"] != 1 or (names and layer.name not in names):
                continue
            in_shape = tuple(shapes[layer.inputs[0]])
            plain = Layer(layer.name, layer.op, layer.inputs, layer.attrs,
                          {k: v for k, v in layer.params.items() if k != "filter_order"})
            ordered = reorder_layer(plain)
            row = {"layer": layer.attrs.get("source", layer.name), "threads": threads}
            for par in ("rows", "filters"):
                s = Schedule(parallel=par)
                row[f"{par}_original_ms"] = _ours_time(plain, in_shape, s) * 1e3
                row[f"{par}_reordered_ms"] = _ours_time(ordered, in_shape, s) * 1e3
            rows.append(row)
    return rows


def storage_table(lrs: dict[str, LR]) -> list[dict[str, Any]]:
    """Bytes of every pruned 3x3 weight dense / CSR / FKW, one total row per model."""
    rows = []
    for model, lr in lrs.items():
        tot = {"dense_bytes": 0, "csr_bytes": 0, "csr16_bytes": 0, "fkw_bytes": 0}
        for layer in lr.layers:
            if layer.op != "conv2d" or tuple(layer.attrs["kernel"]) != (3, 3) or \
                    layer.attrs["groups"] != 1:
                continue
            r = storage_row(layer.attrs.get("source", layer.name), layer.params["weight"],
                            layer.kernel_patterns, layer.params.get("filter_order"))
            for k in tot:
                tot[k] += r[k]
        rows.append({"model": model, **tot, "dense_over_fkw": tot["dense_bytes"] / tot["fkw_bytes"],
                     "csr_over_fkw": tot["csr_bytes"] / tot["fkw_bytes"]})
    return rows


def end_to_end(models: list[tuple[str, int]], threads: int, trials: int,
               log: TuningLog) -> list[dict[str, Any]]:
    """Whole networks: ours (C, tuned) on pruned and on dense weights vs PyTorch eager."""
    from workbench.models import build_model
    rows = []
    for name, size in models:
        torch.manual_seed(0)
        dense = build_model(name, 1000 if size >= 64 else 10, size).eval()
        pruned = prune_model(copy.deepcopy(dense))
        x = torch.randn(1, 3, size, size)
        row: dict[str, Any] = {"model": f"{name}-{size}", "threads": threads}
        with pinned(threads), torch.no_grad():
            for tag, model in (("pruned", pruned), ("dense", dense)):
                lr = tune_network(from_torch(model, (3, size, size)), "c", trials, log,
                                  threads=threads)
                net = compile_network(lr, emitter="c")
                y = net(x)
                ref = model(x)
                row[f"ours_{tag}_err"] = float((torch.as_tensor(y) - ref).abs().max() /
                                               ref.abs().max())
                row[f"ours_{tag}_ms"] = float(min(measure(lambda: net(x), warmup=2,
                                                          repeats=9).median
                                                  for _ in range(2))) * 1e3
            row["torch_eager_ms"] = min(measure(lambda: dense(x), warmup=2, repeats=7).median
                                        for _ in range(2)) * 1e3
        rows.append(row)
    return rows


def machine_info() -> dict[str, Any]:
    """CPU, cores, vector width, compiler and library versions of this run."""
    import subprocess

    import numba

    from workbench.codegen.host.build import c_compiler, cpu_id
    from workbench.provenance import cpu_name
    cc = c_compiler()
    return {"cpu": cpu_name(), "cpu_id": cpu_id(), "machine": platform.machine(),
            "vector_floats": host_vector_width(),
            "cc": subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
            .splitlines()[0], "torch": torch.__version__, "numba": numba.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run(quick: bool = False, out_dir: Path | str = "results/codegen") -> dict[str, list]:
    """All codegen tables; quick = CIFAR-shape VGG only, few tuning trials."""
    import pandas as pd

    from workbench.models import build_model
    from workbench.provenance import provenance, write_json, write_table
    out = Path(out_dir)
    trials = 4 if quick else 12
    log = TuningLog(out / "tuning.jsonl")
    peak = fma_peak()
    size = 32 if quick else 224
    torch.manual_seed(0)
    vgg = prune_model(build_model("vgg16", 1000 if size == 224 else 10, size).eval())
    lr = from_torch(vgg, (3, size, size))
    tables: dict[str, list] = {}
    tables["vgg16_layers"] = [r for t in (1, 2) for r in conv_layer_table(lr, t, trials, log, peak)]
    convs = [l.name for l in lr.layers if l.op == "conv2d"]
    names = convs[1:4] if quick else [convs[i] for i in (1, 3, 5, 8, 11)]
    tables["lre_ablation"] = [r for t in (1,) for r in lre_ablation(lr, t, peak, names)]
    tables["reorder_ablation"] = reorder_ablation(lr, 2, names)
    lrs = {}
    for name in ("vgg16", "resnet50", "mobilenet_v2"):
        m = prune_model(build_model(name, 10, 32).eval())
        lrs[f"{name}"] = from_torch(m, (3, 32, 32))
    tables["storage"] = storage_table(lrs)
    models = [("vgg16", 32), ("mobilenet_v2", 32)] if quick else \
        [(n, s) for s in (224, 32) for n in ("vgg16", "resnet50", "mobilenet_v2")]
    tables["end_to_end"] = [r for t in (1, 2) for r in end_to_end(models, t, trials, log)]
    config = {"quick": quick, "trials": trials, "fma_peak_gflops_per_core": peak,
              "machine": machine_info(), "pruning": "random weights projected PatDNN-style: "
              "8 patterns of 4 taps + 30% of 3x3 kernels kept (13.3% of 3x3 weights); 1x1 convs: "
              "half the input channels per 16 filters; linear layers but the last: 1/8 of "
              "the weights kept in 16-row blocks"}
    cmd = f"python -m workbench.bench.codegen_bench {'--quick ' if quick else ''}--out {out_dir}"
    prov = provenance(cmd, config)
    for name, rows in tables.items():
        write_table(pd.DataFrame(rows), out / name, prov, title=name.replace("_", " "))
    write_json({"provenance": prov, "tables": tables}, out / "codegen_bench.json")
    return tables


def pointwise_layers(name: str, size: int) -> list[tuple[Layer, tuple[int, int, int]]]:
    """The distinct 1x1 conv layers of a model (by tuning signature) with their input shapes,
    largest work first; the model is pruned as in run() (1x1 weights stay dense)."""
    from workbench.codegen.host.tune import layer_signature
    from workbench.codegen.ir import is_pointwise_layer
    from workbench.models import build_model
    torch.manual_seed(0)
    lr = from_torch(prune_model(build_model(name, 1000 if size >= 64 else 10, size).eval()),
                    (3, size, size))
    shapes = lr.shapes()
    seen: dict[str, tuple[Layer, tuple[int, int, int]]] = {}
    for layer in lr.layers:
        if layer.op == "conv2d" and is_pointwise_layer(layer):
            in_shape = tuple(shapes[layer.inputs[0]])
            seen.setdefault(layer_signature(layer, in_shape), (layer, in_shape))
    return list(seen.values())


def pointwise_table(models: list[tuple[str, int]], threads: int, trials: int, log: TuningLog,
                    peak: float, only: set[tuple[int, int, int]] | None = None
                    ) -> list[dict[str, Any]]:
    """Per distinct 1x1 layer (C -> O at H x W, input (C, H, W) in `only` if given): ours (C,
    tuned) in ms and useful GFLOP/s (kept weights x output pixels x 2 / time), vs the peak."""
    rows = []
    with pinned(threads):
        for model, size in models:
            for layer, in_shape in pointwise_layers(model, size):
                if only is not None and in_shape not in only:
                    continue
                sched = tune_layer(layer, in_shape, "c", trials, log=log, threads=threads)
                t = _ours_time(layer, in_shape, sched.with_(threads=threads))
                kern = CompiledLayer(layer, "c", sched, in_shape)
                ho, wo = kern.output_shape(1, in_shape[1], in_shape[2])[2:]
                useful = 2 * layer.kernel_patterns.kept_weights * ho * wo
                a = layer.attrs
                rows.append({"model": f"{model}-{size}", "threads": threads,
                             "layer": f"{a['in_channels']}->{a['out_channels']}",
                             "in": "x".join(map(str, in_shape)), "stride": a["stride"][0],
                             "ms": t * 1e3, "useful_gflops": useful / t / 1e9,
                             "pct_of_peak": 100 * useful / t / 1e9 / (peak * threads),
                             "schedule": {k: v for k, v in sched.to_dict().items()
                                          if v != getattr(type(sched)(), k)}})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m workbench.bench.codegen_bench [--quick] [--out DIR]."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="results/codegen")
    p.add_argument("--pointwise", action="store_true",
                   help="only print per-layer useful GFLOP/s of ResNet-50 and MobileNet-V2 1x1 "
                        "layers at 1 and 2 threads (tuning into --log); writes no results")
    p.add_argument("--models", default="resnet50:224,mobilenet_v2:224",
                   help="with --pointwise: model:size,...")
    p.add_argument("--log", default=None, help="with --pointwise: tuning log (default: a "
                   "fresh temporary one, so every layer is tuned by this code)")
    p.add_argument("--trials", type=int, default=12)
    args = p.parse_args(argv)
    if args.pointwise:
        import tempfile

        import pandas as pd

        from workbench.provenance import markdown_table
        models = [(m.split(":")[0], int(m.split(":")[1])) for m in args.models.split(",")]
        peak = fma_peak()
        with tempfile.TemporaryDirectory() as tmp:
            log = TuningLog(Path(args.log) if args.log else Path(tmp) / "tuning.jsonl")
            rows = [r for t in (1, 2) for r in pointwise_table(models, t, args.trials, log, peak)]
        print(f"FMA peak {peak:.1f} GFLOP/s per core")
        print(markdown_table(pd.DataFrame(rows), ".4g"))
        return 0
    run(args.quick, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
