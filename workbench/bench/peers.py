"""Peers: the CPU runtimes a user would run instead of ours, behind one interface.

A Peer takes a Subject (a torch model, an example input and a folder for the files it is
exported to) and a thread count, and returns a Runner: call it on an input (N, C, H, W) float32
numpy array for the output, `time(x, warmup, repeats)` for a Timing, `version` for what ran.
Exported files (ONNX, MNN, ncnn, TFLite) are made once per Subject and shared by every peer
and thread count. Runners are built and called inside `workbench.bench.pinning.pinned(threads)`,
so every runtime's thread pool is confined to as many cores as threads. The interface (Subject,
Runner, Peer) is `workbench.bench.subject`, the CSR baseline `workbench.bench.csr_baseline`;
both are re-exported here, where the registry (PEERS) lists every runtime.

Two peers need packages that cannot live beside torch 2.14 / numpy 2 in the main venv; they run
through `worker.py` in a venv of their own (a path given by an environment variable):
    DeepSparse 1.8.0 (numpy < 2):   $WORKBENCH_DEEPSPARSE_PYTHON, default .cache/venv-deepsparse
        python3.11 -m venv .cache/venv-deepsparse && .cache/venv-deepsparse/bin/pip install
        deepsparse==1.8.0
    litert-torch (the PyTorch -> TFLite converter; pins typing-extensions 4.12): the converter
        runs in $WORKBENCH_LITERT_PYTHON, default .cache/venv-litert, a venv layered over the
        main one (a .pth file puts .venv's site-packages last, so torch is shared):
        python3.11 -m venv .cache/venv-litert && echo $PWD/.venv/lib/python3.11/site-packages
        > .cache/venv-litert/lib/python3.11/site-packages/zz_main.pth &&
        .cache/venv-litert/bin/pip install litert-torch==0.10.0
    The TFLite interpreter itself (ai-edge-litert) runs in the main venv.

Isolation: workbench.bench.isolation measures every peer in a fresh process of its own (the
benchmark never loads two runtimes into one process), because a runtime's worker pool left
spinning or polling on the same cores, or a second OpenMP runtime, takes CPU from whatever
runs after it. A Subject therefore travels by disk: `save()` writes its architecture (`spec`,
JSON), weights (.npz) and input (.npy), `Subject.load` rebuilds it without pickle, and the
exported files are shared through its folder. Each runtime keeps its own best configuration
(ONNX Runtime's spinning intra-op threads stay on, as do OpenVINO's and MNN's pools): alone in
its process, spinning costs no other runtime anything.
"""
from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.bench.csr_baseline import CSRBaseline, csr_model
from workbench.bench.subject import Peer, PeerUnavailable, Runner, Subject, build_module, rel_error
from workbench.bench.timing import Timing
from workbench.provenance import REPO_ROOT

# re-exported: the interface (bench.subject) and the CSR baseline are reached through here
__all__ = ["PEERS", "CSRBaseline", "Peer", "PeerUnavailable", "Runner", "Subject",
           "all_peers", "build_module", "csr_model", "peer_by_name", "rel_error"]

WORKER = Path(__file__).with_name("worker.py")
DEEPSPARSE_PYTHON = REPO_ROOT / ".cache" / "venv-deepsparse" / "bin" / "python"
LITERT_PYTHON = REPO_ROOT / ".cache" / "venv-litert" / "bin" / "python"


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class TorchEager(Peer):
    name, label = "torch_eager", "PyTorch eager"

    def version(self) -> str:
        return f"torch {torch.__version__}"

    def build(self, subject: Subject, threads: int) -> Runner:
        model = subject.model

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        return Runner(run, self.version())


class TorchCompile(Peer):
    """torch.compile (inductor, default mode, static shapes). Inductor bakes the thread count
    into its generated loops, and dynamo stops compiling (runs eager) after 8 recompiles of one
    function, so compiled code is dropped whenever the thread count or the model's shapes
    change; a runner built before that recompiles if called again."""
    name, label = "torch_compile", "torch.compile"
    _key: tuple | None = None

    def version(self) -> str:
        return f"torch {torch.__version__} inductor"

    def build(self, subject: Subject, threads: int) -> Runner:
        key = (threads, type(subject.model).__name__, tuple(subject.x.shape),
               tuple(tuple(p.shape) for p in subject.model.parameters()))
        if TorchCompile._key != key:
            torch._dynamo.reset()
            TorchCompile._key = key
        compiled = torch.compile(subject.model, dynamic=False)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return compiled(torch.from_numpy(x)).numpy()
        return Runner(run, self.version())


class OnnxRuntime(Peer):
    name, label = "onnxruntime", "ONNX Runtime"

    def missing(self) -> str | None:
        return None if _has("onnxruntime") else "onnxruntime not installed (pip install onnxruntime)"

    def version(self) -> str:
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"

    def build(self, subject: Subject, threads: int) -> Runner:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(subject.onnx()), so, providers=["CPUExecutionProvider"])
        return Runner(lambda x: sess.run(None, {"x": x})[0], self.version())


class OpenVINO(Peer):
    """OpenVINO CPU plugin with the f32 inference precision hint (it would pick bf16 or fp16
    where the CPU has them), latency mode, one stream, `threads` inference threads."""
    name, label = "openvino", "OpenVINO (f32)"

    def missing(self) -> str | None:
        return None if _has("openvino") else "openvino not installed (pip install openvino)"

    def version(self) -> str:
        import openvino
        return f"openvino {openvino.get_version().split('-')[0]}"

    def build(self, subject: Subject, threads: int) -> Runner:
        import openvino as ov
        cm = ov.Core().compile_model(str(subject.onnx()), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        req, out = cm.create_infer_request(), cm.output(0)
        return Runner(lambda x: req.infer({0: x})[out], self.version())


def mnn_convert(onnx: Path, out: Path) -> None:
    """ONNX -> MNN through the converter's Python entry point, with --detectSparseSpeedUp (MNN
    stores sparse weights where it expects a gain). MNN.tools' usage logger is kept from
    loading: on import it pip-installs a package with the first `pip` on PATH (downgrading that
    environment's protobuf) and it would send usage logs out."""
    sys.modules.setdefault("MNN.tools.utils.log", None)   # type: ignore[arg-type]
    from MNN.tools import mnnconvert
    if mnnconvert.mnn_logger is not None:
        raise PeerUnavailable("MNN's usage logger was loaded before conversion; refusing to run it")
    mnnconvert.convert(["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx), "--MNNModel",
                        str(out), "--bizCode", "workbench", "--detectSparseSpeedUp"])
    if not out.exists():
        raise PeerUnavailable(f"MNN converter wrote no model for {onnx.name}")


class MNNPeer(Peer):
    name, label = "mnn", "MNN"

    def missing(self) -> str | None:
        return None if _has("MNN") else "MNN not installed (pip install MNN)"

    def version(self) -> str:
        import MNN
        return f"MNN {MNN.version()}"

    def build(self, subject: Subject, threads: int) -> Runner:
        import MNN
        path = subject.file("model.mnn", lambda p: mnn_convert(subject.onnx(), p))
        rt = MNN.nn.create_runtime_manager(({"backend": "CPU", "precision": "high",
                                             "numThread": threads},))
        net = MNN.nn.load_module_from_file(str(path), ["x"], ["y"], runtime_manager=rt)

        def run(x: np.ndarray) -> np.ndarray:
            xi = MNN.expr.const(x, list(x.shape), MNN.expr.NCHW)
            y = net.forward([xi])[0]
            return np.array(MNN.expr.convert(y, MNN.expr.NCHW).read())
        return Runner(run, self.version())


def pnnx_convert(onnx: Path, shape: tuple[int, ...], out_param: Path) -> None:
    """ONNX -> ncnn .param/.bin with pnnx, weights kept fp32 (pnnx defaults to fp16)."""
    import pnnx
    work = out_param.parent
    stem = out_param.name.removesuffix(".param")
    cmd = [pnnx.EXEC_PATH, str(onnx), f"inputshape=[{','.join(map(str, shape))}]f32", "fp16=0",
           "device=cpu", f"pnnxparam={work / 'pnnx.param'}", f"pnnxbin={work / 'pnnx.bin'}",
           f"pnnxpy={work / 'pnnx.py'}", f"pnnxonnx={work / 'pnnx.onnx'}",
           f"ncnnparam={out_param}", f"ncnnbin={work / (stem + '.bin')}",
           f"ncnnpy={work / 'ncnn.py'}"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    for junk in ("pnnx.param", "pnnx.bin", "pnnx.py", "pnnx.onnx", "ncnn.py"):
        (work / junk).unlink(missing_ok=True)
    if r.returncode != 0 or not out_param.exists():
        raise PeerUnavailable(f"pnnx failed ({r.returncode}): {r.stderr[-300:]}")


class NCNN(Peer):
    """ncnn from a pnnx conversion; fp16 and bf16 storage, packing and arithmetic off (fp32)."""
    name, label = "ncnn", "ncnn"

    def missing(self) -> str | None:
        if not _has("ncnn"):
            return "ncnn not installed (pip install ncnn)"
        return None if _has("pnnx") else "pnnx (ncnn's converter) not installed (pip install pnnx)"

    def version(self) -> str:
        import ncnn
        return f"ncnn {ncnn.__version__}, pnnx {_dist_version('pnnx')}"

    def build(self, subject: Subject, threads: int) -> Runner:
        import ncnn
        param = subject.file("ncnn.param", lambda p: pnnx_convert(subject.onnx(),
                                                                  tuple(subject.x.shape), p))
        net = ncnn.Net()
        opt = net.opt
        for k in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                  "use_bf16_storage", "use_bf16_packed"):
            if hasattr(opt, k):
                setattr(opt, k, False)
        opt.num_threads = threads
        net.load_param(str(param))
        net.load_model(str(param.with_suffix(".bin")))

        def run(x: np.ndarray) -> np.ndarray:
            # ncnn's Mat holds one image; batch 1 is what the benchmarks run
            ys = []
            for xi in x:
                with net.create_extractor() as ex:
                    ex.input("in0", ncnn.Mat(np.ascontiguousarray(xi)).clone())
                    _, y = ex.extract("out0")
                    ys.append(np.array(y))
            return np.stack(ys)
        return Runner(run, self.version())


def _worker_python(env: str, default: Path) -> Path | None:
    p = Path(os.environ.get(env, default))
    return p if p.exists() else None


_LITERT: "_Worker | None" = None


def _litert_worker(py: Path, work: Path) -> "_Worker":
    """One converter process for the whole run: importing litert-torch costs ~10 s."""
    global _LITERT
    if _LITERT is None or _LITERT.proc.poll() is not None:
        _LITERT = _Worker([str(py), str(WORKER), "litert-serve"], work)
        atexit.register(_LITERT.close)
    return _LITERT


def litert_convert(subject: Subject, out: Path) -> None:
    """torch model -> .tflite with litert-torch: here if importable, else in the litert venv
    (the model travels as a torch.export program)."""
    if _has("litert_torch"):
        import litert_torch
        litert_torch.convert(subject.model, (subject.x,)).export(str(out))
        return
    py = _worker_python("WORKBENCH_LITERT_PYTHON", LITERT_PYTHON)
    if py is None:
        raise PeerUnavailable("litert-torch (the TFLite converter) is not installed: see "
                              "workbench/bench/peers.py for its venv")
    prog, xs = out.with_suffix(".pt2"), out.with_suffix(".x.npy")
    torch.export.save(torch.export.export(subject.model, (subject.x,)), str(prog))
    np.save(xs, subject.x.numpy())
    try:
        _litert_worker(py, out.parent).ask(cmd="convert", program=str(prog), x=str(xs),
                                           out=str(out))
    finally:
        prog.unlink(missing_ok=True)
        xs.unlink(missing_ok=True)
    if not out.exists():
        raise PeerUnavailable("litert-torch conversion wrote no model")


class TFLite(Peer):
    """LiteRT (TFLite) interpreter with its default XNNPACK delegate, fp32."""
    name, label = "tflite", "TFLite (XNNPACK)"
    layers = False

    def missing(self) -> str | None:
        if not _has("ai_edge_litert"):
            return "ai-edge-litert not installed (pip install ai-edge-litert)"
        if not _has("litert_torch") and _worker_python("WORKBENCH_LITERT_PYTHON",
                                                       LITERT_PYTHON) is None:
            return ("litert-torch (converter) neither importable nor in $WORKBENCH_LITERT_PYTHON "
                    f"/ {LITERT_PYTHON.relative_to(REPO_ROOT)}")
        return None

    def version(self) -> str:
        conv = _dist_version("litert-torch")
        if conv is None:
            py = _worker_python("WORKBENCH_LITERT_PYTHON", LITERT_PYTHON)
            if py is not None:
                conv = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                                       "print(m.version('litert-torch'))"],
                                      capture_output=True, text=True).stdout.strip() or "?"
        return f"ai-edge-litert {_dist_version('ai-edge-litert')}, litert-torch {conv}"

    def prepare(self, subject: Subject) -> None:
        """The .tflite, made through one litert-torch converter process for the whole run."""
        subject.file("model.tflite", lambda p: litert_convert(subject, p))

    def build(self, subject: Subject, threads: int) -> Runner:
        from ai_edge_litert.interpreter import Interpreter
        path = subject.file("model.tflite", lambda p: litert_convert(subject, p))
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

        def run(x: np.ndarray) -> np.ndarray:
            it.set_tensor(i, x)
            it.invoke()
            return it.get_tensor(o)
        return Runner(run, self.version())


class _Worker:
    """A peer runtime in another interpreter: JSON lines over pipes, arrays as .npy files."""

    def __init__(self, cmd: list[str], work: Path) -> None:
        self.work = work
        # stderr to a file: a pipe nobody reads would fill up with the runtime's logs and block it
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.wait()
            self.err.seek(0)
            err = self.err.read()
            raise PeerUnavailable(f"worker exited: {err[-400:]}")
        msg = json.loads(line)
        if "error" in msg:
            raise PeerUnavailable(f"worker: {msg['error']}")
        return msg

    def ask(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def run(self, x: np.ndarray) -> np.ndarray:
        xi, yo = self.work / "worker_x.npy", self.work / "worker_y.npy"
        np.save(xi, x)
        self.ask(cmd="run", x=str(xi), y=str(yo))
        return np.load(yo)

    def time(self, x: np.ndarray, warmup: int, repeats: int) -> Timing:
        xi = self.work / "worker_x.npy"
        np.save(xi, x)
        times = sorted(self.ask(cmd="time", x=str(xi), warmup=warmup, repeats=repeats)["times"])
        return Timing(float(np.median(times)), times[len(times) // 10],
                      times[min(len(times) - 1, (9 * len(times)) // 10)], len(times))

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()


class DeepSparse(Peer):
    """Neural Magic DeepSparse 1.8.0 on the ONNX file, num_cores = threads, in its own venv
    (it needs numpy < 2); timed inside the worker, so no pipe overhead is counted."""
    name, label = "deepsparse", "DeepSparse"
    layers = False

    def missing(self) -> str | None:
        if _worker_python("WORKBENCH_DEEPSPARSE_PYTHON", DEEPSPARSE_PYTHON) is None:
            return ("deepsparse 1.8.0 needs its own venv (numpy<2): none at "
                    f"$WORKBENCH_DEEPSPARSE_PYTHON / {DEEPSPARSE_PYTHON.relative_to(REPO_ROOT)}")
        return None

    def version(self) -> str:
        py = _worker_python("WORKBENCH_DEEPSPARSE_PYTHON", DEEPSPARSE_PYTHON)
        v = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                            "print(m.version('deepsparse'))"], capture_output=True, text=True)
        return f"deepsparse {v.stdout.strip() or '?'}"

    def build(self, subject: Subject, threads: int) -> Runner:
        py = _worker_python("WORKBENCH_DEEPSPARSE_PYTHON", DEEPSPARSE_PYTHON)
        # started inside pinned(threads): the worker inherits the affinity mask
        w = _Worker([str(py), str(WORKER), "deepsparse", str(subject.onnx()), str(threads),
                     str(int(subject.x.shape[0]))], subject.work)
        return Runner(w.run, f"deepsparse {w.hello.get('version', '?')}", w.time, w.close)


class Ours(Peer):
    """workbench.codegen: the C emitter, every conv's schedule tuned (replayed from the log)."""
    name, label = "ours", "ours (CoCo-Gen C)"

    def __init__(self, trials: int = 12, log: Path | str | None = None) -> None:
        self.trials = trials
        self.log = log

    def config(self) -> dict[str, Any]:
        return {"trials": self.trials, "log": None if self.log is None else str(self.log)}

    def version(self) -> str:
        from workbench.codegen.host.build import c_compiler
        from workbench.provenance import git_hash
        cc = subprocess.run([c_compiler(), "--version"], capture_output=True,
                            text=True).stdout.splitlines()[0]
        return f"workbench {git_hash()}, {cc}"

    def build(self, subject: Subject, threads: int) -> Runner:
        from workbench.codegen.frontend_torch import from_torch
        from workbench.codegen.host.tune import TuningLog, tune_network
        from workbench.codegen.targets import compile as compile_network
        log = TuningLog(Path(self.log)) if self.log else TuningLog.default()
        lr = tune_network(from_torch(subject.model, tuple(subject.x.shape[1:])), "c",
                          self.trials, log, threads=threads)
        net = compile_network(lr, emitter="c")
        return Runner(lambda x: net(x), self.version())


PEERS: tuple[type[Peer], ...] = (TorchEager, TorchCompile, OnnxRuntime, OpenVINO, MNNPeer, NCNN,
                                 TFLite, DeepSparse, CSRBaseline, Ours)


def all_peers(trials: int = 12, log: Path | str | None = None) -> list[Peer]:
    """Every peer, in table order, ours last."""
    return [Ours(trials, log) if cls is Ours else cls() for cls in PEERS]


def peer_by_name(name: str, config: dict[str, Any] | None = None) -> Peer:
    """The peer called name, built from config (Peer.config() of the original)."""
    for cls in PEERS:
        if cls.name == name:
            return cls(**(config or {}))
    raise ValueError(f"unknown peer {name!r}; choose one of {[c.name for c in PEERS]}")
