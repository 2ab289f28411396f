"""CoCo-Tune experiments (issue 5): scaled analogues of the report's Tables 3-5 and Figure 11.

    table3    alpha levels x #nodes: configurations explored, time, model size, speedup of
              CoCo-Tune (block-trained networks) over the baseline (default networks), overhead
    table4    speedup against the size of the promising subspace (nested, close-to-uniform sizes)
    table5    extra speedup of hierarchical (Sequitur) tuning blocks over one block per module,
              on random collections (collection-1) and one-rate-per-stage ones (collection-2)
    figure11  accuracy of every network of the subspace right after assembly, with and without
              block training; accuracies at the end of the budget of the explored ones;
              fine-tuning curves of the network pruned 70% in every module, default vs
              block-trained; steps the block-trained networks need to reach the default's final
              accuracy
    estimate  times a few training steps here and prints the full-mode cost

Quick mode: sklearn digits, a ResNet-14 of widths 8/16/32 at (1, 8, 8), CPU, minutes; writes
results/cocotune/quick/. Full mode: CIFAR-10 (load_cifar10) with ResNet-20 (or -56) at CIFAR
shape; the full model is trained first unless --teacher gives a checkpoint (a state dict of the
registry model: workbench npz or torch .pt). Tables 3-5 use one block per module, as the report
does for its basic measurements; Table 5 compares that with Sequitur's blocks.

Time to target, as in Wootz: every network (block-trained or default) is fine-tuned for up to a
budget (FinetuneConfig.epochs) with validation evaluations evals_per_epoch times per epoch; its
cost for a target is the time (evaluations included) until its first evaluation at or above the
target, or the whole budget if it never gets there (explore.at_target). Each network is trained
once over the whole budget and its curve cached, so one run serves every alpha; the time the
tables report is what explorations that stop at the target would spend. Time is what N nodes
would spend: per-network seconds measured on this machine (one network at a time unless --dask),
summed over batches as the slowest network of each batch; pre-training time counts fully in
CoCo-Tune's time at every N. With --dask N on a machine of G GPUs (--device cuda), the N
workers are pinned to the GPUs round robin and every network a table needs is fine-tuned first,
N at a time (fill); with N <= G no two networks share a GPU, so their measured seconds are what
one network on one GPU takes and the tables read the same as from a one-at-a-time run. Everything is cached in the run directory
(pipeline.Workspace), so an interrupted call resumes and the tables are re-assembled from
finished networks. Command line:

    python -m workbench.experiments.cocotune {table3,table4,table5,figure11,all,estimate,regime}
        [--quick] [--model resnet20] [--workers 1 2 4] [--dask N|tcp://host:port]
        [--device cuda] [--teacher path] [--ft-epochs E] [--out results/cocotune]
        [--run-dir runs/cocotune]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.models.resnet_cifar import ResNetCifar
from workbench.provenance import REPO_ROOT, RESULTS, provenance, write_figure, write_json, write_table
from workbench.train import TrainConfig, resolve_device
from workbench.tune.assemble import FinetuneConfig
from workbench.tune.executor import make_executor
from workbench.tune.explore import Cached, Exploration, explore
from workbench.tune.network import GraphNet, from_module
from workbench.tune.pipeline import (NET_FORMAT, DataSpec, NetTask, Workspace, adopt_teacher,
                                     init_task, load_splits, make_task, pretrain_blockset,
                                     run_init_task, run_net_task, train_teacher)
from workbench.tune.pretrain import PretrainConfig
from workbench.tune.subspace import (Config, placed_blocks, sample_grouped,
                                     sample_subspace, tuning_blocks)

MODULE = "python -m workbench.experiments.cocotune"
QUICK_OUT = RESULTS / "cocotune" / "quick"
FULL_OUT = RESULTS / "cocotune"
RUN_DIR = REPO_ROOT / "runs" / "cocotune"


@dataclass(frozen=True)
class Setup:
    """Everything that fixes an experiment: data, model, budgets, subspaces, alphas, #nodes."""
    quick: bool
    data: DataSpec
    depth: int
    widths: tuple[int, int, int]
    in_channels: int
    input_size: int
    teacher: TrainConfig
    pretrain: PretrainConfig
    finetune: FinetuneConfig           # epochs = the budget cap of every network
    subspace: int                      # Table 3 and Figure 11
    sizes: tuple[int, ...]             # Table 4
    alphas: tuple[float, ...]          # Table 3
    alphas4: tuple[float, ...]         # Table 4
    alphas5: tuple[float, ...]         # Table 5
    workers: tuple[int, ...] = (1, 2, 4)
    collection: int = 8                # Table 5 collection size (the report's N = 8)
    repeats: int = 2                   # Table 5 repeats per collection type
    seed: int = 0
    pretrain_unlabeled: bool = False   # blocks also pre-train on a transfer task's pool

    @property
    def name(self) -> str:
        return f"{self.data.name}-resnet{self.depth}"


def make_setup(quick: bool, device: str = "auto", depth: int = 20,
               workers: tuple[int, ...] = (1, 2, 4), data_path: str | None = None,
               ft_epochs: int | None = None) -> Setup:
    """Quick: digits + ResNet-14 (8/16/32) on CPU. Full: CIFAR-10 + ResNet-depth (16/32/64).

    ft_epochs replaces the mode's fine-tuning budget (quick 3 epochs, full 6; 4 evaluations each).
    """
    if quick:
        return Setup(quick=True, data=DataSpec("digits"), depth=14, widths=(8, 16, 32),
                     in_channels=1, input_size=8,
                     teacher=TrainConfig(epochs=15, batch_size=64, lr=0.05, device="cpu", seed=0),
                     pretrain=PretrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu"),
                     finetune=FinetuneConfig(epochs=ft_epochs or 3, batch_size=64, lr=0.02,
                                             device="cpu", evals_per_epoch=4,
                                             eval_batch_size=500),
                     subspace=16, sizes=(4, 8, 16), alphas=(0.0, 0.02, 0.04),
                     alphas4=(0.0, 0.02), alphas5=(0.0, 0.02, 0.04), workers=workers,
                     collection=8, repeats=2)
    return Setup(quick=False, data=DataSpec("cifar10", data_path), depth=depth,
                 widths=(16, 32, 64), in_channels=3, input_size=32,
                 teacher=TrainConfig(epochs=40, batch_size=256, lr=0.1, device=device, seed=0),
                 pretrain=PretrainConfig(epochs=2, batch_size=256, lr=2e-3, device=device),
                 finetune=FinetuneConfig(epochs=ft_epochs or 6, batch_size=256, lr=0.02,
                                         device=device, evals_per_epoch=4, eval_batch_size=2500),
                 subspace=64, sizes=(4, 16, 64), alphas=(0.0, 0.01, 0.02, 0.04),
                 alphas4=(0.0, 0.02), alphas5=(0.0, 0.02, 0.04), workers=workers,
                 collection=8, repeats=2)


@dataclass
class Context:
    """A prepared run: setup, workspace, network, teacher record, the executor's spec."""
    setup: Setup
    ws: Workspace
    net: GraphNet
    teacher: dict
    dask: str | None = None
    gpus: int = 0                      # GPUs the Dask workers are pinned to (0: none)
    _executor: object = field(default=None, repr=False)

    @property
    def full_acc(self) -> float:
        return float(self.teacher["val_acc"])

    @property
    def full_size(self) -> int:
        return self.net.param_count()

    def executor(self):
        if self._executor is None:
            self._executor = make_executor(self.dask, self.gpus)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def source_model(s: Setup) -> ResNetCifar:
    """The full model before training (seeded): as many outputs as the data's classes."""
    torch.manual_seed(s.seed)
    classes = len(s.data.classes) if s.data.classes else 10
    return ResNetCifar(s.depth, classes, in_channels=s.in_channels, widths=s.widths)


def prepare(s: Setup, run_dir: str | Path, teacher: str | Path | None = None,
            dask: str | None = None, progress: bool = False) -> Context:
    """Describe the model, write the multiplexing model, get the trained teacher."""
    model = source_model(s)
    net = from_module(model, model.block_names(), (s.in_channels, s.input_size, s.input_size),
                      s.name)
    ws = Workspace(Path(run_dir) / s.name)
    ws.prepare(net)
    stale = ws.stale_results()
    if stale:
        print(f"note: {ws.nets} holds {len(stale)} network result(s) of an older format (fixed "
              f"fine-tuning budget, not format {NET_FORMAT}); they are ignored and those networks "
              f"are fine-tuned again (time to target)", file=sys.stderr)
    data = load_splits(s.data)
    if teacher is not None and not ws.teacher_file.exists():
        path = Path(teacher)
        if path.suffix == ".npz":
            from workbench.weights import load_state
            state = load_state(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
        info = adopt_teacher(ws, model, net, data, s.teacher.device)
    else:
        info = train_teacher(ws, model, net, data, s.teacher, progress=progress)
    gpus = 0
    if dask is not None and str(dask).isdigit() and resolve_device(s.finetune.device).type == "cuda":
        gpus = torch.cuda.device_count()
        if int(dask) > gpus:
            print(f"note: {dask} Dask workers share {gpus} GPU(s): networks on one GPU slow each "
                  f"other down, so their measured seconds overstate one network's time",
                  file=sys.stderr)
    return Context(s, ws, net, info, dask, gpus)


# ---- comparisons -----------------------------------------------------------------------------

@dataclass
class Arms:
    """The baseline and CoCo-Tune tasks of one subspace, with the block set's record."""
    configs: list[Config]
    base: list[NetTask]
    comp: list[NetTask]
    blockset: str
    pretrain_s: float
    n_blocks: int
    blocks_layers: int


def arms(ctx: Context, configs: list[Config], method: str = "per_module",
         finetune: FinetuneConfig | None = None) -> Arms:
    """Pre-train the subspace's tuning blocks (cached) and make both arms' tasks."""
    s = ctx.setup
    ft = finetune or s.finetune
    tb = tuning_blocks(ctx.net, configs, method)
    bid, info = pretrain_blockset(ctx.ws, list(tb.blocks), s.pretrain, s.data,
                                  s.pretrain_unlabeled)
    comp = [make_task(ctx.ws, c, bid, tuple(placed_blocks(tb, i)), s.data, ft)
            for i, c in enumerate(configs)]
    base = [make_task(ctx.ws, c, None, (), s.data, ft) for c in configs]
    return Arms(list(configs), base, comp, bid, float(info["seconds"]), len(tb.blocks), tb.cost)


def fill(ctx: Context, tasks: list[NetTask], desc: str = "networks") -> int:
    """On a Dask cluster, fine-tune every unfinished task first, all workers busy (results land in
    the run directory, where the explorations read them back); in-process, do nothing (the
    explorations train what they visit). Returns the number of networks trained."""
    if ctx.dask is None:
        return 0
    from tqdm.auto import tqdm

    from workbench.tune.explore import ResultStore
    store = ResultStore(ctx.ws.nets)
    todo = [t for t in dict.fromkeys(tasks) if store.get(t.key) is None]
    ex = ctx.executor()
    n = max(1, ex.workers)
    fn = Cached(run_net_task, str(ctx.ws.nets))
    # batches of a few per worker: progress shows while the workers stay busy
    for start in tqdm(range(0, len(todo), 2 * n), desc=f"fine-tuning {len(todo)} {desc} on {n} "
                      f"worker(s)", unit="batch", disable=not todo):
        ex.map(fn, todo[start:start + 2 * n])
    return len(todo)


def run(ctx: Context, tasks: list[NetTask], target: float, workers: int) -> Exploration:
    """Explore `tasks` smallest first with `workers` at a time (results cached in the run dir)."""
    return explore(tasks, Cached(run_net_task, str(ctx.ws.nets)), target, workers, ctx.executor())


def compare(ctx: Context, a: Arms, alpha: float, workers: int) -> dict:
    """One row: baseline against CoCo-Tune at accuracy drop alpha with `workers` nodes."""
    target = ctx.full_acc * (1 - alpha)
    eb = run(ctx, a.base, target, workers)
    ec = run(ctx, a.comp, target, workers)
    t_comp = a.pretrain_s + ec.time_s
    size = lambda e: (e.chosen["size"] if e.met else ctx.full_size) / ctx.full_size  # noqa: E731
    return {"alpha": alpha, "nodes": workers, "thr_acc": target,
            "configs_base": eb.configs, "configs_comp": ec.configs,
            "time_base_s": eb.time_s, "time_comp_s": t_comp,
            "size_base": size(eb), "size_comp": size(ec),
            "acc_base": eb.chosen["accuracy"] if eb.met else float("nan"),
            "acc_comp": ec.chosen["accuracy"] if ec.met else float("nan"),
            "met_base": eb.met, "met_comp": ec.met,
            "speedup": eb.time_s / t_comp if t_comp > 0 else float("nan"),
            "overhead": a.pretrain_s / t_comp if t_comp > 0 else float("nan")}


def table3(ctx: Context) -> pd.DataFrame:
    """Table 3 analogue on the main subspace: every alpha x every #nodes."""
    s = ctx.setup
    a = arms(ctx, sample_subspace(ctx.net, s.subspace, seed=s.seed))
    fill(ctx, a.base + a.comp, "table 3 networks")
    rows = [compare(ctx, a, alpha, n) for alpha in s.alphas for n in s.workers]
    df = pd.DataFrame(rows)
    df.insert(0, "subspace", len(a.configs))
    df["blocks"] = a.n_blocks
    df["pretrain_s"] = a.pretrain_s
    return df


def nested(configs: list[Config], k: int) -> list[Config]:
    """k of the (size-sorted) configs at evenly spaced ranks: still close-to-uniform sizes."""
    idx = np.unique(np.round(np.linspace(0, len(configs) - 1, k)).astype(int))
    return [configs[i] for i in idx]


def table4(ctx: Context) -> pd.DataFrame:
    """Table 4 analogue: speedup against subspace size, one node."""
    s = ctx.setup
    main = sample_subspace(ctx.net, max(s.sizes), seed=s.seed)
    rows = []
    for k in s.sizes:
        a = arms(ctx, nested(main, k))
        fill(ctx, a.base + a.comp, f"table 4 networks (subspace {k})")
        for alpha in s.alphas4:
            r = compare(ctx, a, alpha, 1)
            rows.append({"subspace": len(a.configs), "alpha": alpha, "thr_acc": r["thr_acc"],
                         "blocks": a.n_blocks, "pretrain_s": a.pretrain_s,
                         "configs_base": r["configs_base"], "configs_comp": r["configs_comp"],
                         "time_base_s": r["time_base_s"], "time_comp_s": r["time_comp_s"],
                         "speedup": r["speedup"]})
    return pd.DataFrame(rows)


def stages(net: GraphNet) -> list[list[str]]:
    """Modules grouped by ResNet stage ('layer1.0', 'layer1.1' -> 'layer1')."""
    groups: dict[str, list[str]] = {}
    for m in net.modules:
        groups.setdefault(m.split(".")[0], []).append(m)
    return list(groups.values())


def table5(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 5 analogue: time with one block per module over time with Sequitur's blocks."""
    s = ctx.setup
    rows = []
    for kind in ("collection-1", "collection-2"):
        for rep in range(s.repeats):
            seed = 1000 + rep
            configs = (sample_subspace(ctx.net, s.collection, seed=seed) if kind == "collection-1"
                       else sample_grouped(ctx.net, s.collection, stages(ctx.net), seed=seed))
            per = arms(ctx, configs, "per_module")
            seq = arms(ctx, configs, "sequitur")
            fill(ctx, per.comp + seq.comp, f"table 5 networks ({kind}, repeat {rep})")
            for alpha in s.alphas5:
                target = ctx.full_acc * (1 - alpha)
                ep, es = run(ctx, per.comp, target, 1), run(ctx, seq.comp, target, 1)
                tp, ts = per.pretrain_s + ep.time_s, seq.pretrain_s + es.time_s
                rows.append({"collection": kind, "repeat": rep, "alpha": alpha, "thr_acc": target,
                             "blocks_per_module": per.n_blocks, "blocks_sequitur": seq.n_blocks,
                             "block_layers_per_module": per.blocks_layers,
                             "block_layers_sequitur": seq.blocks_layers,
                             "configs_per_module": ep.configs, "configs_sequitur": es.configs,
                             "time_per_module_s": tp, "time_sequitur_s": ts,
                             "extra_speedup": tp / ts if ts > 0 else float("nan")})
    df = pd.DataFrame(rows)
    summary = (df.groupby(["collection", "alpha"])["extra_speedup"]
               .apply(lambda v: float(np.exp(np.log(v).mean()))).reset_index()
               .rename(columns={"extra_speedup": "geomean_extra_speedup"}))
    return df, summary


def step_saving(default_curve: list, block_curve: list) -> dict:
    """Steps and seconds the block-trained network needs to reach the default network's final
    accuracy (first curve point at or above it), against the default's whole budget."""
    level = float(default_curve[-1][2])
    hit = next((p for p in block_curve if p[2] >= level), None)
    steps, secs = int(default_curve[-1][0]), float(default_curve[-1][1])
    return {"default_final_acc": level, "default_steps": steps, "default_seconds": secs,
            "block_steps": int(hit[0]) if hit else None,
            "block_seconds": float(hit[1]) if hit else None,
            "step_saving": 1 - hit[0] / steps if hit and steps else None,
            "time_saving": 1 - hit[1] / secs if hit and secs else None}


def figure11(ctx: Context, out: Path, prov: dict) -> dict:
    """Figure 11 analogue; returns the key numbers (also written as figure11.json)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = ctx.setup
    configs = sample_subspace(ctx.net, s.subspace, seed=s.seed)
    a = arms(ctx, configs)
    init = Cached(run_init_task, str(ctx.ws.root / "init"))
    ex = ctx.executor()
    init_b = ex.map(init, [init_task(t) for t in a.base])
    init_c = ex.map(init, [init_task(t) for t in a.comp])
    # final accuracies of the networks the explorations fine-tuned (read back, never recomputed)
    from workbench.tune.explore import ResultStore
    store = ResultStore(ctx.ws.nets)
    fin_b = [r for r in (store.get(t.key) for t in a.base) if r is not None]
    fin_c = [r for r in (store.get(t.key) for t in a.comp) if r is not None]
    # step saving of every network both explorations fine-tuned (each curve spans the budget)
    by_config = {tuple(r["config"]): r for r in fin_c}
    pairs = [step_saving(r["curve"], by_config[tuple(r["config"])]["curve"])
             for r in fin_b if tuple(r["config"]) in by_config]
    # curves: the network pruned 70% in every module, default vs block-trained
    all7 = tuple(0.7 for _ in ctx.net.modules)
    ca = arms(ctx, configs + ([all7] if all7 not in configs else []))
    i7 = ca.configs.index(all7)
    fill(ctx, [ca.base[i7], ca.comp[i7]], "figure 11 curves")
    cb = Cached(run_net_task, str(ctx.ws.nets))(ca.base[i7])
    cc = Cached(run_net_task, str(ctx.ws.nets))(ca.comp[i7])
    saving7 = step_saving(cb["curve"], cc["curve"])
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    full = ctx.full_size
    for res, label, mk in ((init_b, "default (L1-pruned)", "o"), (init_c, "block-trained", "^")):
        ax[0].scatter([r["size"] / full for r in res], [r["accuracy"] for r in res], label=label,
                      marker=mk, alpha=0.7)
    for res, label, mk in ((fin_b, "default", "o"), (fin_c, "block-trained", "^")):
        if res:
            ax[1].scatter([r["size"] / full for r in res], [r["accuracy"] for r in res],
                          label=f"{label} ({len(res)} fine-tuned)", marker=mk, alpha=0.7)
    for axis, title in ((ax[0], "(a) right after assembly"),
                        (ax[1], f"(b) after the whole budget ({s.finetune.epochs} epochs)")):
        axis.axhline(ctx.full_acc, color="k", ls="--", lw=1, label="full model")
        axis.set_xlabel("model size (fraction of full)")
        axis.set_ylabel("validation accuracy")
        axis.set_title(title)
        axis.legend(fontsize=8)
    for rec, label in ((cb, "default"), (cc, "block-trained")):
        st, _, acc = zip(*rec["curve"])
        ax[2].plot(st, acc, marker=".", label=label)
    ax[2].axhline(saving7["default_final_acc"], color="grey", ls=":", lw=1,
                  label="default's final accuracy")
    ax[2].axhline(ctx.full_acc, color="k", ls="--", lw=1, label="full model")
    ax[2].set_xlabel("fine-tuning step")
    ax[2].set_ylabel("validation accuracy")
    ax[2].set_title("(c) all modules pruned 70%")
    ax[2].legend(fontsize=8)
    fig.suptitle(f"CoCo-Tune, {s.name}: {len(configs)} networks")
    fig.tight_layout()
    write_figure(fig, out / "figure11.png", prov)
    plt.close(fig)
    mean = lambda rs: float(np.mean([r["accuracy"] for r in rs])) if rs else float("nan")  # noqa: E731
    # a block-trained network that never reaches the default's final accuracy saves nothing
    savings = [p["step_saving"] if p["step_saving"] is not None else 0.0 for p in pairs]
    summary = {"full_acc": ctx.full_acc, "networks": len(configs),
               "budget_epochs": s.finetune.epochs, "evals_per_epoch": s.finetune.evals_per_epoch,
               "init_acc_mean_default": mean(init_b), "init_acc_mean_block": mean(init_c),
               "final_acc_mean_default": mean(fin_b), "final_acc_mean_block": mean(fin_c),
               "finetuned_default": len(fin_b), "finetuned_block": len(fin_c),
               "curve_default": cb["curve"], "curve_block": cc["curve"],
               "curve_steps": saving7["default_steps"],
               "default_final_acc": saving7["default_final_acc"],
               "block_steps_to_default_final": saving7["block_steps"],
               "block_seconds_to_default_final": saving7["block_seconds"],
               "step_saving": saving7["step_saving"], "time_saving": saving7["time_saving"],
               "pairs": len(pairs),
               "pairs_block_reaches_default_final": sum(p["step_saving"] is not None
                                                        for p in pairs),
               "step_saving_median": float(np.median(savings)) if savings else None,
               "step_saving_mean": float(np.mean(savings)) if savings else None}
    write_json({"provenance": prov, **summary}, out / "figure11.json")
    return summary


def estimate(s: Setup, steps: int = 20) -> dict:
    """Time `steps` training steps of the full model here; extrapolate the full-mode cost (s)."""
    dev = resolve_device(s.finetune.device)
    model = source_model(s).to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(s.finetune.batch_size, s.in_channels, s.input_size, s.input_size, device=dev)
    y = torch.randint(0, 10, (len(x),), device=dev)

    def step() -> None:
        with torch.autocast("cuda", torch.bfloat16, enabled=dev.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - t0) / steps
    splits = load_splits(s.data)
    ft = s.finetune
    epoch = per_step * math.ceil(len(splits.train) / ft.batch_size)
    # an evaluation is forward passes only: about a third of a training step per image
    eval_s = per_step / 3 * len(splits.val) / ft.batch_size
    # every network is fine-tuned over its whole budget once (its curve serves every alpha);
    # table 4's largest subspace is table 3's, its smaller ones share table 3's default networks
    nets = {"table3": 2 * s.subspace,
            "table4": sum(k for k in s.sizes if k != s.subspace),
            "table5": 2 * s.repeats * 2 * s.collection,
            "figure11": 2}
    cost = {"step_s": per_step, "epoch_s": epoch, "eval_s": eval_s,
            "teacher_s": epoch * s.teacher.epochs,
            # pre-training runs the teacher and every block: about 3 model passes per step
            "pretrain_per_blockset_s": 3 * epoch * s.pretrain.epochs,
            "blocksets": 1 + sum(k != s.subspace for k in s.sizes) + 2 * 2 * s.repeats,
            "budget_epochs": ft.epochs, "evals_per_network": ft.epochs * ft.evals_per_epoch + 1,
            "network_s": epoch * ft.epochs + (ft.epochs * ft.evals_per_epoch + 1) * eval_s}
    for k, n in nets.items():
        cost[f"networks_{k}"] = n
        cost[f"{k}_networks_s"] = n * cost["network_s"]
    cost["networks_s"] = sum(nets.values()) * cost["network_s"]
    cost["total_s"] = (cost["teacher_s"] + cost["blocksets"] * cost["pretrain_per_blockset_s"]
                       + cost["networks_s"])
    return cost


def run_all(what: str, quick: bool, out: Path | None = None, run_dir: Path | None = None,
            device: str = "auto", workers: tuple[int, ...] = (1, 2, 4), dask: str | None = None,
            teacher: str | None = None, depth: int = 20, data_path: str | None = None,
            progress: bool = False, command: str | None = None, setup: Setup | None = None,
            ft_epochs: int | None = None) -> dict:
    """Run `what` (table3, table4, table5, figure11, all) and write the results; returns them.

    `setup` replaces the mode's settings (tests use a smaller one)."""
    s = setup or make_setup(quick, device, depth, workers, data_path, ft_epochs)
    out = Path(out) if out is not None else (QUICK_OUT if quick else FULL_OUT)
    run_dir = Path(run_dir) if run_dir is not None else RUN_DIR / ("quick" if quick else "full")
    cfg = {k: v for k, v in asdict(s).items()}
    prov = provenance(command or f"{MODULE} {what}{' --quick' if quick else ''}", cfg)
    ctx = prepare(s, run_dir, teacher, dask, progress)
    done: dict = {"teacher": ctx.teacher}
    try:
        if what in ("table3", "all"):
            df = table3(ctx)
            write_table(df, out / "table3", prov, f"CoCo-Tune Table 3 analogue ({s.name}, "
                        f"full accuracy {ctx.full_acc:.4f})")
            done["table3"] = df
        if what in ("table4", "all"):
            df = table4(ctx)
            write_table(df, out / "table4", prov, f"CoCo-Tune Table 4 analogue ({s.name})")
            done["table4"] = df
        if what in ("table5", "all"):
            df, summary = table5(ctx)
            write_table(df, out / "table5", prov, f"CoCo-Tune Table 5 analogue ({s.name})")
            write_table(summary, out / "table5_summary", prov,
                        "Extra speedup of Sequitur blocks over one block per module (geometric mean)")
            done["table5"], done["table5_summary"] = df, summary
        if what in ("figure11", "all"):
            done["figure11"] = figure11(ctx, out, prov)
        write_json({"provenance": prov, "teacher": ctx.teacher,
                    "full_size": ctx.full_size}, out / "teacher.json")
    finally:
        ctx.close()
    return done


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["table3", "table4", "table5", "figure11", "all", "estimate",
                                    "regime"],
                   help="regime: the small-data transfer regime (experiments.cocotune_regime)")
    p.add_argument("--sizes", nargs="+", type=int, default=None,
                   help="regime: labelled images per target class (default quick 10 40 120, "
                        "full 20 100 500 4500)")
    p.add_argument("--figure-n", type=int, default=None,
                   help="regime: the N whose Figure 11 is drawn (default the smallest)")
    p.add_argument("--quick", action="store_true", help="digits + ResNet-14 on CPU, minutes")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4], help="#nodes column")
    p.add_argument("--dask", default=None,
                   help="run networks on Dask: a worker count (LocalCluster) or a scheduler address")
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="resnet20", choices=["resnet20", "resnet56"])
    p.add_argument("--teacher", default=None, help="trained full model (state dict .npz/.pt)")
    p.add_argument("--ft-epochs", type=int, default=None,
                   help="fine-tuning budget per network in epochs (default: quick 3, full 6)")
    p.add_argument("--data-path", default=None, help="CIFAR-10 .npz (default: data folders)")
    p.add_argument("--out", default=None, help="default results/cocotune[/quick]")
    p.add_argument("--run-dir", default=None, help="default runs/cocotune/{quick,full}")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    depth = int(args.model.removeprefix("resnet"))
    if args.what == "estimate":
        cost = estimate(make_setup(args.quick, args.device, depth, tuple(args.workers),
                                   args.data_path, args.ft_epochs))
        for k, v in cost.items():
            print(f"{k:>26}: {v:.4g}" if isinstance(v, float) else f"{k:>26}: {v}")
        return 0
    command = " ".join([MODULE, *(argv if argv is not None else sys.argv[1:])])
    if args.what == "regime":
        from workbench.experiments.cocotune_regime import run as run_regime
        df = run_regime(args.quick, args.out, args.run_dir, args.device,
                        tuple(args.sizes) if args.sizes else None, tuple(args.workers),
                        args.dask, args.data_path, command, figure_n=args.figure_n)
        print(df.to_string(index=False))
        return 0
    done = run_all(args.what, args.quick, args.out, args.run_dir, args.device,
                   tuple(args.workers), args.dask, args.teacher, depth, args.data_path,
                   args.progress, command, ft_epochs=args.ft_epochs)
    for k, v in done.items():
        print(f"== {k}")
        print(v.to_string(index=False) if isinstance(v, pd.DataFrame) else
              {a: b for a, b in v.items() if not str(a).startswith("curve")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
