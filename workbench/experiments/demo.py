"""The end-to-end demo on sklearn digits: train, pattern-prune, retrain, generate kernels, check, time.

`python -m workbench demo` (what `make demo` runs) calls run_demo(); notebooks/00_tour.ipynb calls
the step functions one by one. Everything runs on the bundled digits, offline, in a few minutes on
two cores. The numbers are what this machine measures: on 8x8 inputs the layers are tiny, so a
call's fixed cost weighs heavily on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.bench.timing import measure, threads
from workbench.data import Splits, load_digits
from workbench.models import build_model
from workbench.provenance import current_command, provenance, write_figure, write_table
from workbench.pruning import (MaskedRetraining, PatternSet, compression, conv_config, coverage,
                               prune_model, select_patterns)
from workbench.train import TrainConfig, evaluate, train


@dataclass
class DemoConfig:
    """Knobs of the demo: epochs, pattern count, connectivity keep fraction, threads, seed."""
    epochs: int = 15
    retrain_epochs: int = 15
    num_patterns: int = 8
    keep_kernels: float = 0.3     # connectivity: keep 30% of kernels -> 4/9 * 0.3 = 13.3% of weights
    threads: int = 2
    seed: int = 0
    batch_size: int = 64
    lr: float = 0.05


@dataclass
class DemoResult:
    """What the demo measured: accuracies per phase, the pattern set, per-layer kernel rows."""
    accuracy: dict[str, float]
    patterns: PatternSet
    coverage: float
    compression: float
    layers: pd.DataFrame
    masks: dict[str, torch.Tensor] = field(repr=False)
    model: nn.Module = field(repr=False)


def train_dense(splits: Splits, cfg: DemoConfig, progress: bool = True) -> nn.Module:
    """Train the small CNN on the digits; returns it in eval mode."""
    torch.manual_seed(cfg.seed)
    c, h, _ = splits.input_shape
    model = build_model("small_cnn", splits.num_classes, input_size=h, in_channels=c)
    train(model, splits.train, splits.val,
          TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                      device="cpu"),
          progress=progress, desc="train dense")
    return model.eval()


def pruned_layer_names(model: nn.Module) -> list[str]:
    """Weight names of the 3x3 convolutions the demo prunes: all but the first.

    The first layer sees one input channel (32 kernels, under 1% of the conv weights) and is
    the most sensitive, so it stays dense, as in PatDNN.
    """
    return [g["tensor"] for g in conv_config(model)][1:]


def prune_one_shot(model: nn.Module, cfg: DemoConfig) -> tuple[PatternSet, dict[str, torch.Tensor], float]:
    """Pick the cfg.num_patterns most frequent best-fit patterns, project in place; masks too.

    Returns (pattern set with connectivity, {weight name: bool mask}, coverage of the patterns).
    """
    names = pruned_layer_names(model)
    params = dict(model.named_parameters())
    weights = [params[n].detach() for n in names]
    patterns = select_patterns(weights, cfg.num_patterns, keep_kernels=cfg.keep_kernels)
    cov = coverage(weights, patterns)
    masks = prune_model(model, [{"tensor": n, "scheme": patterns} for n in names])
    return patterns, masks, cov


def retrain_masked(model: nn.Module, masks: dict[str, torch.Tensor], splits: Splits,
                   cfg: DemoConfig, progress: bool = True) -> nn.Module:
    """Retrain with the masks fixed (pruned weights and their gradients stay zero)."""
    rcfg = TrainConfig(epochs=cfg.retrain_epochs, batch_size=cfg.batch_size, lr=cfg.lr / 2,
                       seed=cfg.seed + 1, device="cpu")
    with MaskedRetraining(model, masks) as keep:
        train(model, splits.train, splits.val, rcfg, after_step=keep, progress=progress,
              desc="retrain masked")
    return model.eval()


def layer_inputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input activation each named conv weight's module sees when model runs on x."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for n in names:
        mod = modules[n.removesuffix(".weight")]
        hooks.append(mod.register_forward_pre_hook(
            lambda m, args, n=n: captured.__setitem__(n, args[0].detach().clone())))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


def compile_and_measure(model: nn.Module, masks: dict[str, torch.Tensor], x: torch.Tensor,
                        n_threads: int = 2, repeats: int = 200) -> tuple[pd.DataFrame, dict]:
    """Generate a Numba kernel per pruned conv, check it against conv2d, time it against dense.

    x: a batch of model inputs; each layer is checked and timed on its real activation.
    Returns (one row per layer, {weight name: CompiledLayer}).
    """
    from workbench.codegen import compile_layer

    modules = dict(model.named_modules())
    inputs = layer_inputs(model, list(masks), x)
    rows, kernels = [], {}
    for name, mask in masks.items():
        conv = modules[name.removesuffix(".weight")]
        kernel = compile_layer(conv, emitter="numba")
        kernels[name] = kernel
        xin = inputs[name]
        w = (conv.weight.detach() * mask).float()
        b = None if conv.bias is None else conv.bias.detach()
        ref = torch.nn.functional.conv2d(xin, w, b, conv.stride, conv.padding).numpy()
        xin_np = np.ascontiguousarray(xin.numpy())
        got = kernel(xin_np)
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
        with threads(n_threads), torch.no_grad():
            dense = measure(lambda: torch.nn.functional.conv2d(xin, w, b, conv.stride, conv.padding),
                            warmup=20, repeats=repeats)
            ours = measure(lambda: kernel(xin_np), warmup=20, repeats=repeats)
        rows.append({
            "layer": name.removesuffix(".weight"),
            "shape": "x".join(map(str, conv.weight.shape)),
            "input": "x".join(map(str, xin.shape)),
            "patterns": kernel.num_patterns,
            "kernels_kept": f"{kernel.kept_kernels}/{kernel.total_kernels}",
            "weights_kept": float(mask.float().mean()),
            "max_rel_error": err,
            "dense_us": dense.median * 1e6,
            "pattern_us": ours.median * 1e6,
            "speedup": dense.median / ours.median,
        })
    return pd.DataFrame(rows), kernels


def plot_summary(result: DemoResult) -> Any:
    """Two panels: accuracy per phase, and per-layer time of dense conv vs the generated kernel."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    phases = list(result.accuracy)
    vals = [100 * result.accuracy[p] for p in phases]
    a1.bar(phases, vals, color=["#4C72B0", "#DD8452", "#55A868"])
    for i, v in enumerate(vals):
        a1.text(i, v + 0.5, f"{v:.1f}", ha="center")
    a1.set_ylim(0, 105)
    a1.set_ylabel("test accuracy (%)")
    a1.set_title(f"digits, {result.compression:.1f}x fewer pruned-conv weights")
    df = result.layers
    pos = np.arange(len(df))
    a2.bar(pos - 0.2, df["dense_us"], 0.4, label="PyTorch dense conv2d")
    a2.bar(pos + 0.2, df["pattern_us"], 0.4, label="generated pattern kernel (Numba)")
    a2.set_xticks(pos, [f"{r.layer}\n{r.speedup:.2f}x" for r in df.itertuples()])
    a2.set_ylabel("median time per call (us)")
    a2.set_title("per layer, batch 1")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def summary_markdown(result: DemoResult, cfg: DemoConfig) -> str:
    """The printed summary: accuracies, weights kept, and the per-layer table."""
    a = result.accuracy
    lines = [
        f"accuracy (test): dense {100 * a['dense']:.2f}%, pruned {100 * a['pruned']:.2f}%, "
        f"retrained {100 * a['retrained']:.2f}%",
        f"pattern set: {result.patterns.num_patterns} patterns of {result.patterns.entries} taps, "
        f"coverage {100 * result.coverage:.1f}% of the free best-4 magnitude; connectivity keeps "
        f"{100 * cfg.keep_kernels:.0f}% of kernels",
        f"weights kept in pruned convs: {100 / result.compression:.1f}% ({result.compression:.2f}x "
        f"fewer); kernels timed at batch 1 with {cfg.threads} threads, medians after warm-up",
    ]
    return "\n".join(lines)


def run_demo(out_dir: Path = Path("results/demo"), epochs: int = 15, threads: int = 2,
             seed: int = 0, progress: bool = True) -> DemoResult:
    """The whole demo; prints the summary and writes summary.md/.csv and summary.png to out_dir."""
    cfg = DemoConfig(epochs=epochs, retrain_epochs=epochs, threads=threads, seed=seed)
    splits = load_digits(seed=seed)
    print("1/4 training the small CNN on digits")
    model = train_dense(splits, cfg, progress)
    acc = {"dense": evaluate(model, splits.test, "cpu")["accuracy"]}
    print("2/4 pattern + connectivity pruning, one-shot")
    patterns, masks, cov = prune_one_shot(model, cfg)
    acc["pruned"] = evaluate(model, splits.test, "cpu")["accuracy"]
    print("3/4 retraining with the masks fixed")
    retrain_masked(model, masks, splits, cfg, progress)
    acc["retrained"] = evaluate(model, splits.test, "cpu")["accuracy"]
    print("4/4 generating, checking and timing a Numba kernel per pruned convolution")
    x = splits.test[0][0].unsqueeze(0)
    layers, _ = compile_and_measure(model, masks, x, threads)
    result = DemoResult(acc, patterns, cov, compression(masks), layers, masks, model)

    prov = provenance(current_command(), {**cfg.__dict__, "data": "sklearn digits"})
    text = summary_markdown(result, cfg)
    write_table(layers, out_dir / "summary", prov, title="CoCoPIE workbench demo (digits)\n\n" +
                text.replace("\n", "  \n"), floatfmt=".3g")
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    fig = plot_summary(result)
    write_figure(fig, out_dir / "summary.png", prov)
    plt.close(fig)
    print()
    print(text)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(layers.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwritten: {out_dir / 'summary.md'}, {out_dir / 'summary.csv'}, {out_dir / 'summary.png'}")
    return result
