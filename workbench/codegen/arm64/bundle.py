"""A phone bundle: one static ARM64 executable and its weights file, runnable with no Python.

    bundle = build_bundle(model, "out/vgg", input_shape=(3, 32, 32))
    y, times = bundle.run_emulated(x)            # under qemu-aarch64: checks, never timings

The folder holds `wb_bundle` (the executable: generated kernels + render_main's main),
`weights.bin` (weights_file's layout) and `bundle.json` (what it computes: shapes, steps,
vector width, compiler, fingerprint). Pushing it to a phone and running it there is
workbench.phone's part; the command line is the same.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.codegen.arm64.program import Program, export_plan
from workbench.codegen.arm64.render_main import linked_name, render_main
from workbench.codegen.arm64.toolchain import compile_object, cross_compiler, link, qemu
from workbench.codegen.arm64.weights_file import write_weights
from workbench.codegen.build import cache_dir
from workbench.codegen.inputs import float32_input, is_torch

EXECUTABLE, WEIGHTS, DESCRIPTION = "wb_bundle", "weights.bin", "bundle.json"


class BundleRunError(RuntimeError):
    """The bundle exited non-zero; the message has its exit status and stderr."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle folder and what it computes."""
    folder: Path
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    steps: tuple[str, ...]

    @property
    def executable(self) -> Path:
        return self.folder / EXECUTABLE

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    @classmethod
    def load(cls, folder: Path | str) -> "Bundle":
        """The bundle in folder (its bundle.json)."""
        folder = Path(folder)
        d = json.loads((folder / DESCRIPTION).read_text())
        return cls(folder, tuple(d["input_shape"]), tuple(d["output_shape"]), tuple(d["steps"]))

    def command(self, input_path: str, output_path: str, reps: int, threads: int,
                folder: str | None = None) -> list[str]:
        """The argument list running the bundle (folder: where it lies, default here)."""
        root = folder if folder is not None else str(self.folder)
        return [f"{root}/{EXECUTABLE}", f"{root}/{WEIGHTS}", input_path, output_path,
                str(int(reps)), str(int(threads))]

    def __call__(self, x: Any) -> Any:
        """The output for x (N, C, H, W), run under qemu-aarch64 (run_emulated)."""
        return self.run_emulated(x)[0]

    def run_emulated(self, x: Any, reps: int = 1, threads: int = 1
                     ) -> tuple[Any, dict[str, Any]]:
        """Run the bundle under qemu-aarch64 on x (N, C, H, W): (output, same kind as x, and
        the bundle's JSON line). Emulated times say nothing about a phone's speed."""
        xa = float32_input(x, "bundle")
        if tuple(xa.shape) != self.input_shape:
            raise ValueError(f"the bundle takes input {self.input_shape}, got {xa.shape}")
        with tempfile.TemporaryDirectory(prefix="wb_bundle_") as tmp:
            inp, out = Path(tmp) / "input.bin", Path(tmp) / "output.bin"
            inp.write_bytes(xa.astype("<f4").tobytes())
            res = subprocess.run([qemu(), *self.command(str(inp), str(out), reps, threads)],
                                 capture_output=True, text=True, timeout=1800)
            if res.returncode != 0:
                raise BundleRunError(f"{EXECUTABLE} exited {res.returncode}: "
                                     f"{res.stderr.strip()[-2000:]}")
            y = np.fromfile(out, "<f4").reshape(self.output_shape)
        times = json.loads(res.stdout.strip().splitlines()[-1])
        if is_torch(x):
            import torch
            return torch.from_numpy(y), times
        return y, times


def write_bundle(prog: Program, folder: Path | str) -> Bundle:
    """Compile prog for ARM64 into folder: every kernel as its own object (renamed), main,
    linked; the weights file; bundle.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(src, {sym: linked_name(k, sym)}) for k, (sym, src) in enumerate(prog.kernels)]
    jobs.append((render_main(prog), {}))
    # one compiler process per core: ResNet-50's 60-odd kernels took 37 s one after another
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = list(pool.map(lambda job: compile_object(*job), jobs))
    link(objects, folder / EXECUTABLE)
    write_weights(folder / WEIGHTS, prog.consts, prog.fingerprint())
    desc = {"input_shape": list(prog.input_shape), "output_shape": list(prog.output_shape),
            "steps": [n for n, _, _ in prog.steps], "vector": prog.vector,
            "kernels": len(prog.kernels), "calls": len(prog.calls),
            "weights_bytes": int(sum(c.nbytes for c in prog.consts)),
            "activation_bytes": int(sum(prog.buffer_bytes)),
            "fingerprint": f"{prog.fingerprint():016x}", "compiler": cross_compiler()[0],
            "usage": f"{EXECUTABLE} {WEIGHTS} INPUT OUTPUT [REPS [THREADS]]"}
    tmp = folder / (DESCRIPTION + ".tmp")
    tmp.write_text(json.dumps(desc, indent=1) + "\n")
    tmp.replace(folder / DESCRIPTION)
    return Bundle(folder, prog.input_shape, prog.output_shape, tuple(desc["steps"]))


def build_bundle(model_or_lr: Any, folder: Path | str,
                 input_shape: tuple[int, int, int] | None = None, batch: int = 1,
                 schedules: dict[str, Any] | None = None) -> Bundle:
    """The model's C plan for NEON (4-float vectors) as a bundle in folder."""
    return write_bundle(export_plan(model_or_lr, input_shape, batch, 4, schedules), folder)


def build_cached_bundle(model_or_lr: Any, input_shape: tuple[int, int, int] | None = None,
                        schedules: dict[str, Any] | None = None, batch: int = 1) -> Bundle:
    """build_bundle into the cache ($WORKBENCH_CACHE/bundles/<fingerprint>), where a bundle
    of the same program and weights is reused."""
    prog = export_plan(model_or_lr, input_shape, batch, 4, schedules)
    from workbench.codegen.arm64.weights_file import checksum, encode_weights
    key = f"{prog.fingerprint():016x}-{checksum(encode_weights(prog.consts, 0)):016x}"
    folder = cache_dir("bundles") / key
    if (folder / DESCRIPTION).exists() and (folder / EXECUTABLE).exists():
        return Bundle.load(folder)
    return write_bundle(prog, folder)
