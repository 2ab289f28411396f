"""What pruning beyond the 3x3 convs costs in accuracy (issue 24): the classifier and the 1x1s.

The compiler's fastest builds prune two more kinds of layer than PCONV's 3x3 convs: the fully
connected layers (16-row blocks, `pruning.schemes.Block`; VGG-16-224's classifier is most of its
end-to-end time dense) and the 1x1 convs (input channels dropped for groups of 16 filters, which
the 1x1 GEMM skips; ResNet-50's 1x1s are most of its time once its 3x3s are pruned). This table
says what that costs: for each model, one ADMM run of the 3x3s alone at `rate` and one run per
extra kind with those layers pruned too, in the same ADMM run from the same dense model, same
settings and patterns as the pruning experiments (`experiments.pruning`).

    variants per model (DEFAULT_VARIANTS): VGG-16 "linear" (CIFAR VGG-16's only FC is its class
    layer, pruned here too, where the benchmark's 224 models leave it dense: the same code on a
    smaller classifier), ResNet-50 "pointwise" (its 1x1 convs; ResNet-18 has three, shortcuts).

Runs are cached in results/pruning/runs like every pruning run, so the table is assembled on a
machine without a GPU from runs made on one. Command line:

    python -m workbench.experiments.structured_cost [--quick] [--model vgg16 resnet50]
        [--dense runs/cifar10/vgg16.npz runs/cifar10/resnet50.npz] [--rate 8]
        [--linear-rate 8] [--pointwise-rate 2] [--only base|linear|pointwise] [--cached-only]
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.experiments.pruning import (FULL, QUICK, WORK, Extra, Settings, _dense_for,
                                           _row, _setup, dense_patterns, extra_config,
                                           run_pruning)
from workbench.provenance import provenance, write_table

MODULE = "python -m workbench.experiments.structured_cost"
VARIANTS = ("base", "linear", "pointwise")
# The layers that matter per model: VGG-16's classifier (the 224 model's 411 MB), ResNets' 1x1s
# (their FC layers are a 2048x10 or 512x10 class layer the compiler's builds leave dense).
DEFAULT_VARIANTS = {"vgg16": ("base", "linear"), "resnet50": ("base", "pointwise"),
                    "resnet18": ("base", "pointwise"), "small_cnn": ("base", "linear")}


def variants(model: Any, linear_rate: float, pointwise_rate: float) -> dict[str, Extra]:
    """The runs this model gets: "base" (3x3s alone) and each extra kind it has layers of."""
    out: dict[str, Extra] = {"base": ()}
    for kind, rate in (("linear", linear_rate), ("pointwise", pointwise_rate)):
        try:
            extra_config(model, ((kind, rate),))
        except ValueError:  # the model has no layer of that kind
            continue
        out[kind] = ((kind, rate),)
    return out


def structured_cost(quick: bool = False, out_dir: Path | None = None,
                    models: tuple[str, ...] | None = None, dense: dict[str, str] | None = None,
                    rate: float = 8.0, linear_rate: float = 8.0, pointwise_rate: float = 2.0,
                    only: tuple[str, ...] | None = None, settings: Settings | None = None,
                    data_path: str | None = None, work_dir: Path = WORK,
                    progress: bool = True, cached_only: bool = False) -> pd.DataFrame:
    """Accuracy of each model pruned at `rate` (3x3s), alone and with each extra kind pruned
    (only: these variants, default DEFAULT_VARIANTS of the model)."""
    out, s = _setup(quick, out_dir, settings)
    rows = []
    for name in ("small_cnn",) if quick else (models or ("vgg16", "resnet50")):
        d = _dense_for(quick, name, dense, data_path, work_dir, progress)
        ps = dense_patterns(d, s.num_patterns)
        wanted = only or DEFAULT_VARIANTS.get(name, VARIANTS)
        runs = {v: e for v, e in variants(d.model, linear_rate, pointwise_rate).items()
                if v in wanted}
        base_acc = None
        for variant, extra in runs.items():
            r = run_pruning(d, "admm", "pattern_connectivity", float(rate), s, ps, out, work_dir,
                            progress=progress, cached_only=cached_only, extra=extra)
            row = _row(r)
            if variant == "base":
                base_acc = row["final_acc"]
            kind_rate = dict(extra)
            rows.append({"model": name, "pruned": "3x3 convs" if not extra else
                         f"3x3 convs + {variant} {kind_rate[variant]:g}x",
                         "conv_compression": row["conv_compression"],
                         "extra_compression": r.get("extra_compression", {}).get(variant,
                                                                               float("nan")),
                         "extra_weights": _weights(d.model, extra),
                         "dense_acc": row["dense_acc"], "final_acc": row["final_acc"],
                         "acc_drop": row["acc_drop"],
                         "cost_vs_3x3_only": float("nan") if base_acc is None or not extra
                         else base_acc - row["final_acc"], "run": row["run"]})
    df = pd.DataFrame(rows)
    parts = [MODULE] + (["--quick"] if quick else [])
    if models:
        parts += ["--model", *models]
    if dense:
        parts += ["--dense", *dense.values()]
    parts += ["--rate", f"{rate:g}", "--linear-rate", f"{linear_rate:g}",
              "--pointwise-rate", f"{pointwise_rate:g}"]
    base = QUICK if quick else FULL
    if (s.admm_epochs, s.retrain_epochs) != (base.admm_epochs, base.retrain_epochs):
        parts += ["--admm-epochs", str(s.admm_epochs), "--retrain-epochs", str(s.retrain_epochs)]
    prov = provenance(" ".join(parts), {"settings": asdict(s), "rate": rate,
                                        "linear_rate": linear_rate,
                                        "pointwise_rate": pointwise_rate})
    write_table(df, out / "structured_cost", prov,
                f"Accuracy cost of pruning beyond the 3x3 convs (pattern + connectivity {rate:g}x, "
                "ADMM + masked retraining): FC layers in 16-row blocks, 1x1 convs in 16-filter "
                "groups, in the same run; cost_vs_3x3_only = accuracy of the 3x3-only run minus "
                "this one's")
    return df


def _weights(model: Any, extra: Extra) -> int:
    """Weights in the layers the extra groups prune."""
    params = dict(model.named_parameters())
    return sum(params[g["tensor"]].numel() for g in extra_config(model, extra))


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="digits + SmallCNN on CPU, a minute")
    p.add_argument("--out", default=None, help="output folder (default results/pruning[/quick])")
    p.add_argument("--model", nargs="+", default=None, help="full mode: vgg16 resnet50 resnet18")
    p.add_argument("--dense", nargs="+", default=None,
                   help="dense checkpoint per --model (default runs/cifar10/<model>.npz)")
    p.add_argument("--data-path", default=None, help="CIFAR-10 .npz (default: data folders)")
    p.add_argument("--rate", type=float, default=8.0, help="3x3 convs: weights before / after")
    p.add_argument("--linear-rate", type=float, default=8.0)
    p.add_argument("--pointwise-rate", type=float, default=2.0)
    p.add_argument("--only", nargs="+", default=None, choices=VARIANTS,
                   help="run only these variants (default: the model's DEFAULT_VARIANTS; one "
                   "per process runs them in parallel on one GPU)")
    p.add_argument("--admm-epochs", type=int, default=None, help="override the mode's budget")
    p.add_argument("--retrain-epochs", type=int, default=None, help="override the mode's budget")
    p.add_argument("--work-dir", default=str(WORK), help="checkpoints (resumable)")
    p.add_argument("--cached-only", action="store_true", help="assemble from cached runs only")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    models = tuple(a.model) if a.model else None
    if a.dense and (not models or len(a.dense) != len(models)):
        p.error("--dense needs one path per --model")
    base = QUICK if a.quick else FULL
    settings = replace(base, admm_epochs=a.admm_epochs or base.admm_epochs,
                       retrain_epochs=a.retrain_epochs or base.retrain_epochs)
    structured_cost(a.quick, Path(a.out) if a.out else None, models,
                    dict(zip(models, a.dense)) if a.dense else None, a.rate, a.linear_rate,
                    a.pointwise_rate, tuple(a.only) if a.only else None, settings, a.data_path,
                    Path(a.work_dir), not a.no_progress, a.cached_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
