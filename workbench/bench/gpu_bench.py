"""The GPU benchmark (issue 26): our CUDA target against PyTorch / cuDNN on the same card.

End to end, batch 1 and 8, fp32: PyTorch eager (cuDNN) with TF32 off and on, cuDNN through
one CUDA graph of the eager model (no launch overhead: the dense baseline to beat), optionally
torch.compile, and ours on dense and on pruned weights (8 patterns + 30% connectivity on the
3x3s, 1x1s at half their input channels per 16 filters: the CPU benchmark's rates,
peers_bench.model_pair), each as one CUDA graph with default and with tuned schedules; the
ideal is the fastest dense fp32 time x the kept fraction of multiply-adds. Per layer: VGG-16's
3x3 convs alone, cuDNN (fp32, TF32) against ours pruned. Every output of ours is checked
against PyTorch fp32 before it is timed. Times are medians of CUDA-event timings after warm-up.

Measuring (on the GPU) appends rows to WORK/rows.jsonl and skips rows already there, so an
interrupted run resumes; reporting (anywhere) turns the rows into results/gpu/:

    python -m workbench bench gpu [--quick] [--work runs/gpu] [--out results/gpu]
    python -m workbench bench gpu --report-only --work runs/gpu
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.provenance import (REPO_ROOT, append_jsonl, current_command, provenance,
                                  read_jsonl)

MODELS = (("vgg16_features", 224), ("vgg16", 224), ("resnet50", 224), ("mobilenet_v2", 224))
TENSORRT_NOTE = ("TensorRT not measured: its wheels (tensorrt-cu13, over 1 GB) are far larger "
                 "than what travels to the GPU machine (64 MiB per call)")


def _rows(work: Path) -> list[dict[str, Any]]:
    return read_jsonl(work / "rows.jsonl")


def _append(work: Path, row: dict[str, Any]) -> None:
    append_jsonl(work / "rows.jsonl", row)


def time_eager(fn: Callable[[], Any], warmup: int = 5, reps: int = 30) -> dict[str, float]:
    """Median, p10, p90 ms of fn() timed call by call with CUDA events."""
    import torch
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return {"ms": float(np.median(ts)), "p10_ms": float(np.percentile(ts, 10)),
            "p90_ms": float(np.percentile(ts, 90))}


def _graph_of(fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn captured in one CUDA graph (after a warm-up on a side stream); returns its replay."""
    import torch
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def _tf32(on: bool) -> None:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def rel_error(y: Any, ref: Any) -> float:
    """max |y - ref| / max |ref| of two tensors."""
    return float((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30))


def measure_model(name: str, size: int, batches: tuple[int, ...], work: Path, compile_mode: str,
                  trials: int, log: Callable[[str], None] = print) -> None:
    """Every runtime on (name, size) at each batch size, rows appended to work/rows.jsonl."""
    import torch
    from workbench.bench.peers_bench import mac_counts, model_pair
    from workbench.codegen.cuda.network import CudaNetwork
    from workbench.codegen.cuda.tune import GpuTuningLog, tune_network
    from workbench.codegen.frontend import to_lr
    done = {(r["model"], r["batch"], r["runtime"], r["weights"]) for r in _rows(work)
            if r.get("runtime")}
    label = f"{name}-{size}"
    dense, pruned, note, _ = model_pair(name, size)
    xs = torch.randn(1, 3, size, size)
    macs, kept = mac_counts(pruned, xs)
    kept_frac = kept / macs
    tlog = GpuTuningLog(work / "gpu_tuning.jsonl")
    for n in batches:
        x = torch.randn(n, 3, size, size, device="cuda")
        dmod, pmod = dense.cuda().eval(), pruned.cuda().eval()
        _tf32(False)
        with torch.no_grad():
            ref_d, ref_p = dmod(x), pmod(x)

        def row(runtime: str, weights: str, t: dict[str, float], **extra: Any) -> None:
            r = {"model": label, "batch": n, "runtime": runtime, "weights": weights, **t,
                 "kept_macs": kept_frac if weights == "pruned" else 1.0,
                 "pruned_weights": note, **extra}
            _append(work, r)
            log(f"{label} n={n} {runtime}: {t.get('ms', float('nan')):.4f} ms")

        with torch.no_grad():
            for tf32 in (False, True):
                rt = f"torch_eager_{'tf32' if tf32 else 'fp32'}"
                if (label, n, rt, "dense") not in done:
                    _tf32(tf32)
                    row(rt, "dense", time_eager(lambda: dmod(x)))
                rt = f"cudnn_graph_{'tf32' if tf32 else 'fp32'}"
                if (label, n, rt, "dense") not in done:
                    _tf32(tf32)
                    row(rt, "dense", time_eager(_graph_of(lambda: dmod(x))))
            _tf32(False)
            rt = f"torch_compile_{compile_mode}"
            if compile_mode != "off" and (label, n, rt, "dense") not in done:
                torch._dynamo.reset()
                cm = torch.compile(dmod, mode=compile_mode)
                err = rel_error(cm(x), ref_d)
                row(rt, "dense", time_eager(lambda: cm(x)), rel_err=err)
        for weights, model, ref in (("dense", dense, ref_d), ("pruned", pruned, ref_p)):
            for tuned in (False, True):
                rt = f"ours_{'tuned' if tuned else 'default'}"
                if (label, n, rt, weights) in done or (tuned and (weights == "dense" or
                                                                  trials == 0)):
                    continue    # the tuner's space is for pruned layers; dense rows show the default
                lr = to_lr(model.cpu().eval(), (3, size, size))
                scheds = tune_network(lr, n, trials, tlog) if tuned else None
                net = CudaNetwork(lr, scheds)
                err = rel_error(net(x), ref)
                if err > 1e-4:
                    raise RuntimeError(f"{label} n={n} ours {weights}: rel error {err:.2e} against "
                                       f"PyTorch fp32 (at most 1e-4): not timed")
                replay = lambda net=net: net.graph(x)   # noqa: E731
                row(rt, weights, time_eager(replay), rel_err=err,
                    weights_mb=net.weights_bytes() / 2**20)
                if n == 1 and weights == "pruned" and (tuned or trials == 0):
                    for p in layer_profile(net, x):
                        _append(work, {"kind": "profile", "model": label, "batch": n, **p})
        model.cpu()
        dense.cpu()
        pruned.cpu()


def layer_profile(net: Any, x: Any) -> list[dict[str, Any]]:
    """Per layer of our network: its kernels alone in a CUDA graph (CudaNetwork.layer_times)
    and, for a conv, cuDNN's dense conv of the same geometry (fp32, TF32 off, bias, no
    activation) timed the same way: where ours wins and where it loses."""
    import torch
    import torch.nn.functional as F
    from workbench.codegen.cuda.driver import time_graph
    _tf32(False)
    rows = net.layer_times(x)
    steps = {layer.name: st for layer, st in net.steps if st is not None}
    for r in rows:
        g = steps[r["layer"]].geometry
        r["cudnn_conv_fp32_ms"] = float("nan")
        if g is None:
            continue
        xi = torch.randn(x.shape[0], g.c, g.h, g.w, device="cuda")
        w = torch.randn(g.o, g.cg, g.kh, g.kw, device="cuda")
        b = torch.randn(g.o, device="cuda")
        with torch.no_grad():
            r["cudnn_conv_fp32_ms"] = time_graph(lambda: F.conv2d(
                xi, w, b, (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw), g.groups))
        r["geometry"] = (f"{g.c}x{g.h}x{g.w}->{g.o} k{g.kh}x{g.kw} s{g.sh}"
                         f"{' dw' if g.groups == g.c and g.groups > 1 else ''}")
    return rows


def measure_layers(work: Path, log: Callable[[str], None] = print) -> None:
    """VGG-16-224's 3x3 convs one by one: cuDNN fp32 / TF32 (dense) against ours pruned."""
    import torch
    import torch.nn.functional as F
    from workbench.bench.peers_bench import model_pair
    from workbench.codegen.cuda.network import CudaNetwork
    from workbench.codegen.cuda.driver import time_graph
    from workbench.codegen.cuda.tune import GpuTuningLog, tune_layer
    from workbench.codegen.frontend import to_lr
    if any(r.get("kind") == "layer" for r in _rows(work)):
        return
    dense, pruned, _, _ = model_pair("vgg16_features", 224)
    lr = to_lr(pruned.eval(), (3, 224, 224))
    net = CudaNetwork(lr)
    shapes = net.shapes
    dconvs = [m for m in dense.modules() if isinstance(m, torch.nn.Conv2d)]
    layers = [layer for layer, _ in net.steps if layer.op == "conv2d"]
    tlog = GpuTuningLog(work / "gpu_tuning.jsonl")
    for layer, dconv in zip(layers, dconvs):
        in_shape = shapes[layer.inputs[0]]
        x = torch.randn(1, *in_shape, device="cuda")
        w, b = dconv.weight.detach().cuda(), dconv.bias.detach().cuda()
        out = {}
        for tf32 in (False, True):
            _tf32(tf32)
            out["cudnn_tf32_ms" if tf32 else "cudnn_fp32_ms"] = time_graph(
                lambda: F.conv2d(x, w, b, 1, 1))
        _tf32(False)
        sched = tune_layer(layer, in_shape, 1, 24, tlog)
        one = CudaNetwork(type(lr)({layer.inputs[0]: list(in_shape)}, [layer], [layer.name]),
                          {layer.name: sched})
        one._prepare()
        out["ours_ms"] = time_graph(lambda: one._run(x))
        kp = layer.kernel_patterns
        kept = kp.kept_weights / (kp.total_kernels * 9)
        fmas = kp.kept_weights * shapes[layer.name][1] * shapes[layer.name][2]
        _append(work, {"kind": "layer", "layer": layer.attrs.get("source", layer.name),
                       "in": "x".join(map(str, in_shape)), "out_ch": shapes[layer.name][0],
                       "kept": kept, **out, "schedule": sched.to_dict(),
                       "ours_useful_tflops": 2 * fmas / (out["ours_ms"] * 1e9)})
        log(f"{layer.name}: cudnn {out['cudnn_fp32_ms']:.4f} ours {out['ours_ms']:.4f} ms")


def report(work: Path, out: Path, config: dict[str, Any]) -> None:
    """results/gpu/: end_to_end, layers, targets (CSV + Markdown), figure, tuning log."""
    import pandas as pd
    from workbench.provenance import write_json, write_table
    rows = _rows(work)
    e2e = pd.DataFrame([r for r in rows if r.get("runtime")])
    meta = next((r for r in rows if r.get("kind") == "machine"), {})
    prov = provenance(current_command(), {**config, "gpu_machine": meta, "tensorrt": TENSORRT_NOTE})
    out.mkdir(parents=True, exist_ok=True)
    if e2e.empty:
        raise SystemExit(f"no measured rows in {work}/rows.jsonl: run the benchmark on a GPU first")
    write_table(e2e.drop(columns=["pruned_weights"]), out / "end_to_end", prov,
                "GPU end to end, fp32 unless the runtime says tf32 (ms, CUDA events)")
    layers = pd.DataFrame([r for r in rows if r.get("kind") == "layer"])
    if not layers.empty:
        layers["speedup_vs_cudnn_fp32"] = layers["cudnn_fp32_ms"] / layers["ours_ms"]
        layers["speedup_vs_cudnn_tf32"] = layers["cudnn_tf32_ms"] / layers["ours_ms"]
        write_table(layers.drop(columns=["schedule"]), out / "layers", prov,
                    "VGG-16-224 3x3 layers at batch 1: ours pruned vs cuDNN dense (ms)")
    prof = pd.DataFrame([r for r in rows if r.get("kind") == "profile"])
    if not prof.empty:
        prof = prof.drop(columns=["kind", "schedule"])
        if "cudnn_conv_fp32_ms" in prof:
            prof["ours_vs_cudnn_conv"] = prof["cudnn_conv_fp32_ms"] / prof["ms"]
        write_table(prof, out / "profile", prov,
                    "ours pruned at batch 1, per layer: each layer's kernels alone in a CUDA "
                    "graph (ms), beside cuDNN's dense conv of the same geometry (fp32, no "
                    "activation)")
        write_table(profile_summary(prof), out / "profile_summary", prov,
                    "where the time of ours pruned goes at batch 1: per model and kind of layer, "
                    "the sum of the per-layer times (ms) and cuDNN's dense convs of the same "
                    "geometry")
    tgt = targets(e2e)
    write_table(tgt, out / "targets", prov, "Issue 26 targets, measured in this run")
    if (work / "gpu_tuning.jsonl").exists():
        (out / "gpu_tuning.jsonl").write_text((work / "gpu_tuning.jsonl").read_text())
    write_json({"config": config, "gpu_machine": meta}, out / "gpu.json")
    plot(e2e, out / "end_to_end.png", prov)


def layer_kind(row: Any) -> str:
    """A profile row's kind: conv3x3, depthwise, conv1x1, convKxK, or the op."""
    geo = row.get("geometry")
    if row["op"] != "conv2d" or not isinstance(geo, str):
        return row["op"]
    k = geo.split(" k")[1].split(" ")[0]
    return "depthwise" if geo.endswith(" dw") else f"conv{k}"


def profile_summary(prof: Any) -> Any:
    """Per (model, kind of layer): layers, ours ms summed, cuDNN conv ms summed, their ratio."""
    prof = prof.assign(kind=[layer_kind(r) for r in prof.to_dict("records")])
    out = prof.groupby(["model", "kind"], as_index=False).agg(
        layers=("layer", "count"), ours_ms=("ms", "sum"),
        cudnn_conv_fp32_ms=("cudnn_conv_fp32_ms", lambda v: v.sum(min_count=1)))
    out["cudnn_over_ours"] = out["cudnn_conv_fp32_ms"] / out["ours_ms"]
    return out.sort_values(["model", "ours_ms"], ascending=[True, False])


def targets(e2e: Any) -> Any:
    """One row per (model, batch): ours pruned (tuned) against the fastest dense fp32 peer."""
    import pandas as pd
    req = {"vgg16_features-224": 2.0, "resnet50-224": 1.0, "mobilenet_v2-224": 1.0,
           "vgg16-224": None}
    out = []
    for (model, n), grp in e2e.groupby(["model", "batch"]):
        peers = grp[(grp.weights == "dense") & grp.runtime.str.contains("fp32|compile")
                    & ~grp.runtime.str.startswith("ours")]
        tf32 = grp[grp.runtime.str.contains("tf32")]
        ours = grp[(grp.weights == "pruned") & grp.runtime.str.startswith("ours")]
        if peers.empty or ours.empty:
            continue
        best, mine = peers.loc[peers.ms.idxmin()], ours.loc[ours.ms.idxmin()]
        ratio = best.ms / mine.ms
        need = req.get(model)
        out.append({"model": model, "batch": n, "ours_ms": mine.ms, "ours": mine.runtime,
                    "fastest_dense_fp32": best.runtime, "peer_ms": best.ms, "ratio": ratio,
                    "fastest_tf32_ms": tf32.ms.min() if not tf32.empty else float("nan"),
                    "ratio_vs_tf32": (tf32.ms.min() / mine.ms) if not tf32.empty else float("nan"),
                    "ideal_ms": best.ms * mine.kept_macs,
                    "ours_p90_over_p10": mine.p90_ms / mine.p10_ms,
                    "required": need if need is not None else float("nan"),
                    "met": bool(ratio >= need) if need is not None and n == 1 else "",
                    })
    return pd.DataFrame(out)


def figure(e2e: Any) -> Any:
    """Bars: each runtime's ms per (model, batch), log scale; ours pruned in red."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    e2e = e2e.assign(label=e2e.runtime + ":" + e2e.weights)
    groups = list(e2e.groupby(["model", "batch"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 4), squeeze=False)
    for ax, ((model, n), g) in zip(axes[0], groups):
        g = g.sort_values("ms")
        colors = ["tab:red" if s.startswith("ours") and w == "pruned" else
                  ("tab:orange" if s.startswith("ours") else "tab:gray")
                  for s, w in zip(g.runtime, g.weights)]
        ax.barh(g.label, g.ms, color=colors)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())     # minor labels of a log axis overlap
        ax.xaxis.set_major_formatter(ScalarFormatter())
        for v, ms in enumerate(g.ms):
            ax.text(ms, v, f" {ms:.2f}", va="center", fontsize=7)
        ax.set_title(f"{model}, batch {n}", fontsize=9)
        ax.set_xlabel("ms (log)")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def plot(e2e: Any, path: Path, prov: dict[str, Any]) -> None:
    """figure(e2e) written to path (PNG, provenance in its metadata)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from workbench.provenance import write_figure
    fig = figure(e2e)
    write_figure(fig, path, prov)
    plt.close(fig)


def plot_results(results: str | Path) -> Any:
    """figure() of the end_to_end.csv in a results folder (for the notebook)."""
    import pandas as pd
    return figure(pd.read_csv(Path(results) / "end_to_end.csv", comment="#"))


def main(argv: list[str] | None = None) -> int:
    """python -m workbench bench gpu ..."""
    p = argparse.ArgumentParser(prog="python -m workbench bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(REPO_ROOT / "runs" / "gpu"))
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "gpu"))
    p.add_argument("--models", nargs="*", default=[f"{m}-{s}" for m, s in MODELS])
    p.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    p.add_argument("--compile", default="max-autotune",
                   help="torch.compile mode for the compile peer, or 'off'")
    p.add_argument("--trials", type=int, default=24, help="schedules the tuner times per layer")
    p.add_argument("--no-tune", nargs="*", default=[],
                   help="models timed with default schedules only (no ours_tuned row)")
    p.add_argument("--quick", action="store_true", help="VGG-16 conv stack at batch 1 only")
    p.add_argument("--no-layers", action="store_true")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    work, out = Path(a.work), Path(a.out)
    models = ["vgg16_features-224"] if a.quick else a.models
    batches = [1] if a.quick else a.batches
    config = {"models": models, "batches": batches, "compile": a.compile, "trials": a.trials,
              "untuned": a.no_tune}
    if not a.report_only:
        import torch
        from workbench.codegen.cuda.driver import gpu_missing
        why = gpu_missing()
        if why:
            raise SystemExit(f"bench gpu measures on a CUDA GPU: {why}; --report-only makes "
                             f"the tables from rows measured elsewhere")
        if not any(r.get("kind") == "machine" for r in _rows(work)):
            from workbench.codegen.cuda.nvrtc import nvrtc_version
            _append(work, {"kind": "machine", "command": current_command(),
                           "gpu": torch.cuda.get_device_name(),
                           "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version(), "nvrtc": nvrtc_version()})
        for n in batches:      # every model at batch 1 before any at 8: a cut run has batch 1
            for label in models:
                name, size = label.rsplit("-", 1)
                measure_model(name, int(size), (n,), work, a.compile,
                              0 if label in a.no_tune else a.trials)
        if not a.no_layers:
            measure_layers(work)
    report(work, out, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
