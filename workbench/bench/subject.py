"""What every peer runtime runs and the interface it runs it through (workbench.bench.peers).

A Subject is a torch model, an example input (N, C, H, W) and a folder for the files it is
exported to (ONNX once, shared by every peer, also across processes); a Peer builds a Runner of
it at a thread count; a Runner maps a float32 numpy input to the output and times itself.
`build_module` makes an untrained module from a JSON spec, so a Subject moves between
processes by disk (spec, weights .npz, input .npy) with nothing unpickled.
"""
from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.bench.timing import Timing, measure

ONNX_OPSET = 17


class PeerUnavailable(RuntimeError):
    """The peer cannot run this subject here; the message says why."""


def rel_error(y: np.ndarray, ref: np.ndarray) -> float:
    """max |y - ref| / max |ref| over the whole output (shapes must hold the same values)."""
    y = np.asarray(y, np.float64).reshape(ref.shape)
    return float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))


def build_module(spec: dict[str, Any]) -> nn.Module:
    """An untrained module from a JSON spec: {"zoo": {"name", "num_classes", "input_size"}} (the
    model zoo; with "prefix": k, its first k blocks, model_blocks.prefix; with "part":
    "features", its `features` alone: VGG's conv stack) or {"sequential": [[torch.nn class
    name, kwargs], ...]}."""
    if "zoo" in spec:
        from workbench.models import build_model
        z = spec["zoo"]
        model = build_model(z["name"], int(z["num_classes"]), int(z["input_size"]))
        if spec.get("part") == "features":
            return model.features.eval()
        if "part" in spec:
            raise ValueError(f"unknown model part {spec['part']!r} (only 'features')")
        if "prefix" in spec:
            from workbench.bench.model_blocks import prefix
            return prefix(model, int(spec["prefix"]))
        return model
    if "app" in spec:
        from workbench.models.image_to_image import build_app_model
        kwargs = dict(spec["app"])
        return build_app_model(kwargs.pop("name"), **kwargs).eval()
    if "sequential" in spec:
        layers = []
        for cls_name, kwargs in spec["sequential"]:
            cls = getattr(nn, cls_name, None)
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise ValueError(f"not a torch.nn module class: {cls_name!r}")
            layers.append(cls(**kwargs))
        return nn.Sequential(*layers)
    raise ValueError(f"unknown module spec (want 'zoo' or 'sequential'): {sorted(spec)}")


@dataclass
class Subject:
    """What peers run: model (eval), x (N, C, H, W) float32 example input, and `work`, a folder
    for the model's exported files, each made once (`file`) and shared by the peers (also
    across processes). `spec` (see build_module) lets `save`/`load` move it between processes."""
    model: nn.Module
    x: torch.Tensor
    work: Path
    spec: dict[str, Any] | None = None
    _files: dict[str, Path] = field(default_factory=dict, repr=False)
    _ref: np.ndarray | None = field(default=None, repr=False)

    def file(self, key: str, make: Callable[[Path], None]) -> Path:
        """work/key made by make(path) on first use, then reused (by any process: a marker file
        says it was completed); a failed make is repeated."""
        if key not in self._files:
            self.work.mkdir(parents=True, exist_ok=True)
            path, done = self.work / key, self.work / f".{key}.done"
            if not done.exists():
                make(path)
                done.touch()
            self._files[key] = path
        return self._files[key]

    def save(self) -> Path:
        """Write spec (subject.json), weights (weights.npz) and x (x.npy) into work, once."""
        if self.spec is None:
            raise ValueError("a Subject without a spec cannot be saved (see build_module)")

        def make(path: Path) -> None:
            state = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
            np.savez(self.work / "weights.npz", **state)
            np.save(self.work / "x.npy", self.x.numpy())
            path.write_text(json.dumps({"spec": self.spec}))
        return self.file("subject.json", make).parent

    @classmethod
    def load(cls, work: Path) -> "Subject":
        """The Subject saved in folder work (JSON + npz + npy; nothing unpickled), in eval mode."""
        spec = json.loads((work / "subject.json").read_text())["spec"]
        model = build_module(spec)
        with np.load(work / "weights.npz", allow_pickle=False) as w:
            model.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
        x = torch.from_numpy(np.load(work / "x.npy", allow_pickle=False))
        return cls(model.eval(), x, work, spec)

    def onnx(self) -> Path:
        """The model as ONNX (opset 17, TorchScript exporter, constants folded), input 'x'."""
        def make(path: Path) -> None:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(self.model, (self.x,), str(path), dynamo=False,
                                  opset_version=ONNX_OPSET, input_names=["x"], output_names=["y"],
                                  do_constant_folding=True)
        return self.file("model.onnx", make)

    def reference(self) -> np.ndarray:
        """PyTorch eager output on x (float32 numpy), what every peer is checked against."""
        if self._ref is None:
            with torch.no_grad():
                self._ref = self.model(self.x).numpy()
        return self._ref

    def cleanup(self) -> None:
        """Delete the exported files."""
        shutil.rmtree(self.work, ignore_errors=True)
        self._files.clear()


@dataclass
class Runner:
    """A built peer: runner(x) -> y (numpy); time() times calls in this process unless the peer
    times itself (a worker process); close() frees it."""
    fn: Callable[[np.ndarray], np.ndarray]
    version: str
    timer: Callable[[np.ndarray, int, int], Timing] | None = None
    closer: Callable[[], None] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(x))

    def time(self, x: np.ndarray, warmup: int = 2, repeats: int = 5) -> Timing:
        """Median of `repeats` calls on x after `warmup` calls."""
        if self.timer is not None:
            return self.timer(x, warmup, repeats)
        return measure(lambda: self.fn(x), warmup=warmup, repeats=repeats)

    def close(self) -> None:
        """Free the runtime's resources (a worker process, sessions)."""
        if self.closer is not None:
            self.closer()
            self.closer = None


class Peer:
    """One runtime: name (id), label (for tables), missing() says why it cannot run here."""
    name = ""
    label = ""
    layers = True      # can run single-layer models cheaply (per-layer tables)

    def missing(self) -> str | None:
        """None if the peer can run here, else the reason (package absent, ...)."""
        return None

    def version(self) -> str:
        """Version string of what runs."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON) that rebuild this peer in another process."""
        return {}

    def prepare(self, subject: Subject) -> None:
        """Make, in the benchmark's own process, files that build() needs and that are cheaper
        made there (none by default; no runtime of the peer is loaded)."""

    def build(self, subject: Subject, threads: int) -> Runner:
        """A runner of subject's model at `threads` threads (call inside pinned(threads))."""
        raise NotImplementedError
