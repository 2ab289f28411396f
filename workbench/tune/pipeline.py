"""A CoCo-Tune run directory and the tasks that run in it (in process or on Dask workers).

Layout of a run directory (everything needed to resume; carry it between machines or calls):

    network.json          the GraphNet (modules, layers, channels)
    multiplex.py          the generated multiplexing model
    teacher.ckpt          workbench.train checkpoint of the full model while it trains
    teacher.pt, .json     the trained full model (multiplexing keys) and its accuracy
    blocks/<id>.pt, .json pre-trained tuning blocks of one block set (+ .ckpt while training)
    nets/<key>.json       one finished network: its fine-tuning curve [(step, seconds, accuracy)]
                          over the whole budget, format NET_FORMAT (explore.at_target reads the
                          cost of any target off it)

A NetTask names everything one network's evaluation needs (paths, rates, blocks, budgets) and
pickles, so `run_net_task` can run on any worker that sees the run directory.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.data import ArrayDataset, Splits, load_cifar10, load_digits, transfer_task
from workbench.provenance import atomic_write_text, write_json
from workbench.train import TrainConfig, evaluate, save_checkpoint, train
from workbench.tune.assemble import FinetuneConfig, assemble, finetune
from workbench.tune.multiplex import generate, load_multiplex
from workbench.tune.network import GraphNet, net_from_dict, net_to_dict, state_from_module
from workbench.tune.pretrain import BlockSpec, PretrainConfig, pretrain_blocks

# Version of nets/<key>.json. 1: fixed-budget fine-tuning, curve [(step, accuracy)] (old runs);
# 2: time to target, curve [(step, seconds incl. evaluations, accuracy)]. Part of every task key,
# so results of another format are never read back as this one's.
NET_FORMAT = 2


@dataclass(frozen=True)
class DataSpec:
    """Which data: 'digits' (sklearn, bundled) or 'cifar10' (npz; optional subsets); with
    `classes`, the small target task of data.transfer_task: those classes, per_class labelled
    training images each (split_seed picks them), the rest of the training set unlabelled."""
    name: str = "digits"
    path: str | None = None
    train_subset: int | None = None
    val_size: int = 5000
    classes: tuple[int, ...] | None = None
    per_class: int | None = None
    split_seed: int = 0

    def key(self) -> dict:
        """The fields that name this data in cache digests (the transfer fields only when set,
        so runs made before they existed keep their digests)."""
        d = asdict(self)
        if self.classes is None:
            for k in ("classes", "per_class", "split_seed"):
                d.pop(k)
        return d


@functools.lru_cache(maxsize=4)
def _loaded(name: str, path: str | None, train_subset: int | None, val_size: int) -> Splits:
    if name == "digits":
        return load_digits()
    if name == "cifar10":
        return load_cifar10(path, val_size=val_size, train_subset=train_subset)
    raise ValueError(f"unknown data set {name!r}; 'digits' or 'cifar10'")


@functools.lru_cache(maxsize=8)
def _task(spec: DataSpec) -> tuple[Splits, ArrayDataset | None]:
    full = _loaded(spec.name, spec.path, spec.train_subset, spec.val_size)
    if spec.classes is None:
        return full, None
    return transfer_task(full, spec.classes, spec.per_class, spec.split_seed)


def load_splits(spec: DataSpec) -> Splits:
    """The data set of `spec` (its target task when spec.classes is set), loaded once per
    process."""
    return _task(spec)[0]


def load_unlabeled(spec: DataSpec) -> ArrayDataset:
    """The unlabelled pool of a transfer spec (every training image not in its target task,
    labels dropped): what teacher-student pre-training may add to the target images."""
    pool = _task(spec)[1]
    if pool is None:
        raise ValueError(f"{spec} names no target task (classes=None): it has no unlabelled pool")
    return pool


def digest(obj: object, n: int = 10) -> str:
    """A short stable hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class Workspace:
    """Paths and files of one run directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def prepare(self, net: GraphNet) -> None:
        """Write network.json and multiplex.py; an existing run must describe the same network."""
        spec = net_to_dict(net)
        path = self.root / "network.json"
        if path.exists() and json.loads(path.read_text()) != json.loads(json.dumps(spec)):
            raise ValueError(f"{self.root} holds a run of another network; use another run dir")
        write_json(spec, path)
        source = generate(net)
        mux = self.root / "multiplex.py"
        if not mux.exists() or mux.read_text() != source:
            atomic_write_text(mux, source)

    def net(self) -> GraphNet:
        """The run's GraphNet."""
        return net_from_dict(json.loads((self.root / "network.json").read_text()))

    def mux(self):
        """The run's generated multiplexing-model module."""
        return load_multiplex(self.root / "multiplex.py")

    @property
    def teacher_file(self) -> Path:
        return self.root / "teacher.pt"

    def teacher(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The trained full model's state dict (multiplexing keys) and its record."""
        state = torch.load(self.teacher_file, map_location="cpu", weights_only=True)
        return state, json.loads(self.teacher_file.with_suffix(".json").read_text())

    def save_teacher(self, state: dict[str, torch.Tensor], info: dict) -> None:
        """Store the full model (atomically) and its record."""
        save_checkpoint(self.teacher_file, state)
        write_json(info, self.teacher_file.with_suffix(".json"))

    def block_file(self, blockset: str) -> Path:
        return self.root / "blocks" / f"{blockset}.pt"

    def blocks(self, blockset: str) -> tuple[list[dict[str, torch.Tensor]], dict]:
        """Pre-trained block states of a block set and its record (specs, seconds, losses)."""
        states = torch.load(self.block_file(blockset), map_location="cpu", weights_only=True)
        return states["states"], json.loads(self.block_file(blockset).with_suffix(".json").read_text())

    @property
    def nets(self) -> Path:
        return self.root / "nets"

    def stale_results(self) -> list[Path]:
        """Finished-network files of another format than NET_FORMAT (never read back)."""
        stale = []
        for p in sorted(self.nets.glob("*.json")) if self.nets.exists() else []:
            if json.loads(p.read_text()).get("format", 1) != NET_FORMAT:
                stale.append(p)
        return stale


def train_teacher(ws: Workspace, model: nn.Module, net: GraphNet, data: Splits,
                  cfg: TrainConfig, progress: bool = False) -> dict:
    """Train the full model (resumable through teacher.ckpt) unless teacher.pt exists; returns
    its record {val_acc, seconds, config}."""
    if ws.teacher_file.exists():
        return ws.teacher()[1]
    history = train(model, data.train, data.val, cfg, checkpoint=ws.root / "teacher.ckpt",
                    progress=progress, desc="teacher")
    acc = evaluate(model, data.val, cfg.device)["accuracy"]
    info = {"val_acc": acc, "seconds": sum(h["seconds"] for h in history),
            "epochs": cfg.epochs, "config": asdict(cfg), "params": net.param_count()}
    ws.save_teacher(state_from_module(net, model.cpu()), info)
    return info


def adopt_teacher(ws: Workspace, model: nn.Module, net: GraphNet, data: Splits,
                  device: str = "auto") -> dict:
    """Use an already trained `model` as the teacher (evaluated on data.val here)."""
    acc = evaluate(model, data.val, device)["accuracy"]
    info = {"val_acc": acc, "seconds": 0.0, "epochs": 0, "config": "given",
            "params": net.param_count()}
    ws.save_teacher(state_from_module(net, model.cpu()), info)
    return info


def blockset_id(ws: Workspace, specs: list[BlockSpec], cfg: PretrainConfig, data: DataSpec,
                unlabeled: bool = False) -> str:
    """The id of a block set: a hash of its specs, the budget, the data and the teacher (and,
    when set, that the unlabelled pool joined the pre-training images)."""
    teacher = json.loads(ws.teacher_file.with_suffix(".json").read_text())
    key = [[list(s) for s in specs], asdict(cfg), data.key(), teacher]
    return "bs" + digest(key + [{"unlabeled": True}] if unlabeled else key)


def pretrain_blockset(ws: Workspace, specs: list[BlockSpec], cfg: PretrainConfig,
                      data: DataSpec, unlabeled: bool = False) -> tuple[str, dict]:
    """Pre-train `specs` together once (resumable); returns (block set id, record).

    Teacher-student pre-training reads no labels, so with unlabeled=True (a transfer spec
    only) the blocks also learn from the data set's unlabelled pool (load_unlabeled)."""
    bid = blockset_id(ws, specs, cfg, data, unlabeled)
    path = ws.block_file(bid)
    if path.exists():
        return bid, ws.blocks(bid)[1]
    teacher, _ = ws.teacher()
    images = load_splits(data).train
    if unlabeled:
        images = images.concat(load_unlabeled(data))
    states, info = pretrain_blocks(ws.mux(), ws.net(), teacher, list(specs), images, cfg,
                                   checkpoint=path.with_suffix(".ckpt"))
    info = {**info, "images": len(images), "unlabeled": unlabeled}
    save_checkpoint(path, {"states": states})
    write_json(info, path.with_suffix(".json"))
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    return bid, info


@dataclass(frozen=True)
class NetTask:
    """One network to assemble (from blocks, or none: the default network) and fine-tune."""
    key: str
    run_dir: str
    config: tuple[float, ...]
    size: int
    blockset: str | None
    blocks: tuple[int, ...]   # indices into the block set's specs that this network uses
    data: DataSpec
    finetune: FinetuneConfig


def make_task(ws: Workspace, config: tuple[float, ...], blockset: str | None,
              blocks: tuple[int, ...], data: DataSpec, ft: FinetuneConfig) -> NetTask:
    """A NetTask whose key names everything its result depends on."""
    net = ws.net()
    rates = dict(zip(net.modules, config))
    teacher = json.loads(ws.teacher_file.with_suffix(".json").read_text())
    tag = digest([list(config), blockset, list(blocks), data.key(), asdict(ft), teacher,
                  NET_FORMAT])
    name = "-".join(f"{r:g}" for r in config).replace(".", "")
    key = f"{'block' if blockset else 'default'}-{name}-{tag}"
    return NetTask(key, str(ws.root), tuple(config), net.param_count(rates), blockset,
                   tuple(blocks), data, ft)


@functools.lru_cache(maxsize=8)
def _context(run_dir: str, blockset: str | None):
    ws = Workspace(run_dir)
    teacher, _ = ws.teacher()
    blocks = ws.blocks(blockset) if blockset else ([], {"blocks": []})
    return ws.mux(), ws.net(), teacher, blocks


def run_net_task(task: NetTask) -> dict:
    """Assemble and fine-tune one network for its whole budget; {accuracy (final), init_acc,
    seconds (whole budget), curve [(step, seconds, accuracy)], steps, size, format, ...}."""
    mux, net, teacher, (states, info) = _context(task.run_dir, task.blockset)
    rates = dict(zip(net.modules, task.config))
    specs = [tuple((m, float(r)) for m, r in s) for s in info["blocks"]]
    placed = [(specs[b], states[b]) for b in task.blocks]
    model = assemble(mux, net, teacher, rates, placed)
    data = load_splits(task.data)
    rec = finetune(model, data.train, data.val, task.finetune)
    return {"accuracy": rec["final_acc"], "init_acc": rec["init_acc"], "seconds": rec["seconds"],
            "train_seconds": rec["train_seconds"], "eval_seconds": rec["eval_seconds"],
            "curve": [list(p) for p in rec["curve"]], "steps": rec["steps"],
            "steps_per_epoch": rec["steps_per_epoch"], "size": task.size,
            "config": list(task.config), "blockset": task.blockset, "blocks": list(task.blocks),
            "format": NET_FORMAT}


@dataclass(frozen=True)
class InitTask:
    """Accuracy of one network right after assembly (no fine-tuning), for Figure 11."""
    key: str
    net: NetTask


def init_task(task: NetTask) -> InitTask:
    """The assembly-only evaluation of `task`'s network."""
    return InitTask("init-" + task.key, task)


def run_init_task(task: InitTask) -> dict:
    """Assemble the network and evaluate it on the validation set; {accuracy, seconds, size}."""
    import time

    t = task.net
    mux, net, teacher, (states, info) = _context(t.run_dir, t.blockset)
    specs = [tuple((m, float(r)) for m, r in s) for s in info["blocks"]]
    model = assemble(mux, net, teacher, dict(zip(net.modules, t.config)),
                     [(specs[b], states[b]) for b in t.blocks])
    data = load_splits(t.data)
    t0 = time.perf_counter()
    acc = evaluate(model, data.val, t.finetune.device, t.finetune.eval_batch_size,
                   t.finetune.amp)["accuracy"]
    return {"accuracy": acc, "seconds": time.perf_counter() - t0, "size": t.size,
            "config": list(t.config), "blockset": t.blockset}
