"""CoCo-Tune in the report's regime (issue 27): a network trained on a large source set, pruned
for a small target set, fine-tuned on few labelled images, explored smallest-first.

The stand-in for ImageNet -> Flowers102 / CUB200: the source network is trained on classes 0-4
of a data set (CIFAR-10 in full mode, sklearn digits in quick mode) with all their images. Each
target task is classes 5-9 with N labelled training images per class (`sizes`). The target's
full model is the source network with a fresh classifier, fine-tuned on those N per class, as
the report adapts ImageNet models to each target set. Every pruned network is fine-tuned on the
same N per class and scored on all validation images of the target classes. The tuning blocks
are pre-trained teacher-student, which reads no labels: on the target images alone, or (the
`unlabeled` column) on those plus the rest of the training set with its labels dropped.

Where it differs from the report:
- the target classes come from the same data set as the source (CIFAR-10's other five
  classes), not from another domain;
- images are 32x32 and the source set is 25,000 images, against 1.28 M;
- networks are ResNets of the CIFAR family.
So a pruned network has less to relearn here, and the benefit is a lower bound of the report's.

Table 3 (configurations tried, time, network size, speedup, overhead) is written per N, alpha,
#nodes and pre-training data to results/cocotune/regime/table3, with the speedup against N,
and Figure 11 (accuracies right after assembly and after fine-tuning, the curves of one
network) for one N (`figure_n`, default the smallest) per pre-training data.
Everything resumes from the run directory (each N is a CoCo-Tune workspace of its own):

    python -m workbench.experiments.cocotune regime [--quick] [--sizes 20 100 500 5000]
        [--device cuda] [--dask N] [--workers 1 4] [--figure-n 20]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from workbench.experiments.cocotune import (RUN_DIR, Setup, figure11, make_setup, prepare,
                                            source_model, table3)
from workbench.provenance import RESULTS, provenance, write_figure, write_table
from workbench.train import TrainConfig, evaluate, train
from workbench.tune.pipeline import DataSpec, load_splits

OUT = RESULTS / "cocotune" / "regime"
SOURCE = (0, 1, 2, 3, 4)
TARGET = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Regime:
    """The transfer experiment: the CoCo-Tune setup of each target task, the classes, the
    target sizes (labelled images per class), the adaptation budget, the pre-training data."""
    setup: Setup
    sizes: tuple[int, ...]
    adapt: TrainConfig
    source: tuple[int, ...] = SOURCE
    target: tuple[int, ...] = TARGET
    unlabeled: tuple[bool, ...] = (False, True)
    figure_n: int | None = None    # the N whose Figure 11 curves are drawn (None: the smallest)

    def spec(self, classes: tuple[int, ...], per_class: int | None) -> DataSpec:
        """The DataSpec of `classes` with per_class labelled training images (None: all)."""
        d = self.setup.data
        return DataSpec(d.name, d.path, d.train_subset, d.val_size, classes, per_class,
                        self.setup.seed)


def make_regime(quick: bool, device: str = "auto", sizes: tuple[int, ...] | None = None,
                workers: tuple[int, ...] = (1, 4), data_path: str | None = None) -> Regime:
    """Quick: digits (about 125 training images a class) with N in (10, 40, 120), CPU, minutes.
    Full: CIFAR-10 with N in (20, 100, 500, 4500): 4500 is every training image a class
    has once the validation split is out."""
    s = make_setup(quick, device, workers=workers, data_path=data_path)
    if quick:
        return Regime(s, sizes or (10, 40, 120),
                      TrainConfig(epochs=10, batch_size=32, lr=0.02, device="cpu", seed=0))
    return Regime(s, sizes or (20, 100, 500, 4500),
                  TrainConfig(epochs=30, batch_size=128, lr=0.02, device=device, seed=0))


def train_source(r: Regime, run_dir: Path) -> Path:
    """The source network trained on every image of the source classes (resumable); the path
    of its state dict."""
    path = run_dir / "source.pt"
    if path.exists():
        return path
    s = replace(r.setup, data=r.spec(r.source, None))
    model = source_model(s)
    data = load_splits(s.data)
    train(model, data.train, data.val, s.teacher, checkpoint=run_dir / "source.ckpt",
          progress=False, desc="source")
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.cpu().state_dict(), tmp)
    tmp.replace(path)
    return path


def adapt_to_target(r: Regime, n: int, source: Path, run_dir: Path) -> Path:
    """The target task's full model: the source network, a fresh classifier, fine-tuned on n
    labelled images per target class (resumable); the path of its state dict."""
    path = run_dir / f"n{n}" / "adapted.pt"
    if path.exists():
        return path
    s = replace(r.setup, data=r.spec(r.target, n))
    model = source_model(s)
    state = torch.load(source, map_location="cpu", weights_only=True)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")} |
                          {k: own[k] for k in own if k.startswith("fc.")})
    data = load_splits(s.data)
    path.parent.mkdir(parents=True, exist_ok=True)
    train(model, data.train, data.val, r.adapt, checkpoint=path.with_suffix(".ckpt"),
          progress=False, desc=f"adapt n={n}")
    tmp = path.with_suffix(".tmp")
    torch.save(model.cpu().state_dict(), tmp)
    tmp.replace(path)
    return path


def figure_dir(n: int, unlabeled: bool) -> str:
    """Where the Figure 11 of target size n and pre-training data goes, under the output."""
    return f"figure11_n{n}_{'pool' if unlabeled else 'target'}"


def regime_table3(r: Regime, run_dir: Path, dask: str | None = None,
                  figures: tuple[Path, dict] | None = None) -> pd.DataFrame:
    """Table 3 for every target size and pre-training data, one frame; with figures=(out,
    provenance), also Figure 11 (initial and final accuracies, the curves of the network
    pruned 70% in every module) of target size r.figure_n for each pre-training data, in
    out/figure11_n{N}_{target,pool}/."""
    fig_n = r.figure_n if r.figure_n is not None else min(r.sizes)
    if fig_n not in r.sizes:
        raise ValueError(f"figure_n {fig_n} is not one of the target sizes {r.sizes}")
    source = train_source(r, run_dir)
    frames = []
    for n in r.sizes:
        teacher = adapt_to_target(r, n, source, run_dir)
        for unl in r.unlabeled:
            s = replace(r.setup, data=r.spec(r.target, n), pretrain_unlabeled=unl)
            ctx = prepare(s, run_dir / f"n{n}", teacher, dask)
            try:
                df = table3(ctx)
                if figures is not None and n == fig_n:
                    figure11(ctx, figures[0] / figure_dir(n, unl), figures[1])
            finally:
                ctx.close()
            df.insert(0, "unlabeled", unl)
            df.insert(0, "full_acc", ctx.full_acc)
            df.insert(0, "per_class", n)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def speedup_figure(df: pd.DataFrame):
    """Speedup of CoCo-Tune over the default networks against N (one node), per alpha and
    pre-training data."""
    import matplotlib.pyplot as plt
    one = df[df.nodes == df.nodes.min()]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (alpha, unl), g in one.groupby(["alpha", "unlabeled"]):
        ax.plot(g.per_class, g.speedup, marker="o", ls="-" if unl else "--",
                label=f"alpha {alpha:g}, blocks on {'target + pool' if unl else 'target'}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images per target class (N)")
    ax.set_ylabel("speedup (default / CoCo-Tune)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run(quick: bool = False, out: Path | None = None, run_dir: Path | None = None,
        device: str = "auto", sizes: tuple[int, ...] | None = None,
        workers: tuple[int, ...] = (1, 4), dask: str | None = None,
        data_path: str | None = None, command: str | None = None,
        regime: Regime | None = None, figure_n: int | None = None) -> pd.DataFrame:
    """Measure the regime and write results/cocotune/regime[/quick]; returns Table 3.

    `regime` replaces the mode's settings (tests use a smaller one)."""
    import matplotlib.pyplot as plt
    r = regime or make_regime(quick, device, sizes, workers, data_path)
    if figure_n is not None:
        r = replace(r, figure_n=figure_n)
    out = Path(out) if out is not None else (OUT / "quick" if quick else OUT)
    run_dir = Path(run_dir) if run_dir is not None else \
        RUN_DIR / ("regime-quick" if quick else "regime")
    prov = provenance(command or f"python -m workbench.experiments.cocotune regime"
                      f"{' --quick' if quick else ''}", {**asdict(r)})
    df = regime_table3(r, run_dir, dask, figures=(out, prov))
    write_table(df, out / "table3", prov,
                f"CoCo-Tune in the small-data regime: source classes {list(r.source)}, target "
                f"classes {list(r.target)} with N labelled images per class")
    fig = speedup_figure(df)
    write_figure(fig, out / "speedup_vs_n.png", prov)
    plt.close(fig)
    return df


def evaluate_adapted(r: Regime, n: int, run_dir: Path) -> float:
    """Validation accuracy of the adapted full model of target size n (for checks)."""
    s = replace(r.setup, data=r.spec(r.target, n))
    model = source_model(s)
    model.load_state_dict(torch.load(run_dir / f"n{n}" / "adapted.pt", weights_only=True))
    return float(evaluate(model, load_splits(s.data).val, "cpu")["accuracy"])
