"""Each peer measured in a fresh process of its own, so no runtime's time includes another's.

In one process, a runtime loaded and run earlier leaves its thread pool behind (ONNX Runtime's
spinning intra-op threads, OpenVINO's and MNN's pools, torch's OpenMP team, a second OpenMP
runtime beside the system libgomp our kernels link) on the very cores the next runtime is
pinned to, free to spin into the next one's time. Whether it does depends on each runtime's
wait policy; with a process per runtime the question never arises. Here the benchmark process
only prepares and checks; `measure_isolated` starts, per (peer, thread count, subjects),

    python -m workbench.bench.isolation REQUEST.json

inside `pinning.affinity(threads)`, so the child is confined to its cores before it loads
anything (OMP_NUM_THREADS is set in its environment too), and waits for it. The child rebuilds
the peer (`peers.peer_by_name`) and each subject (`Subject.load`: JSON + npz + npy), builds the
runner inside `pinned(threads)`, runs it once for the output and times it; it writes one
`<i>.json` (times, version, note, peak RSS) and `<i>.npy` (output) per subject as it goes,
atomically. The peak RSS is the process's (and its live workers') after timing: it counts the
process's own Python and torch too, as every runtime's does, and with several subjects in one
process it is the peak up to each.
Nothing crosses the boundary as pickle. The parent checks each output against PyTorch eager,
so the child never runs torch unless the peer does. A child that crashes or hangs costs only
its own rows, which name the peer and say what happened (exit status, the end of its log).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.bench.pinning import affinity

if TYPE_CHECKING:
    from workbench.bench.peers import Peer, Runner, Subject
    from workbench.bench.timing import Timing

MODULE = "workbench.bench.isolation"
TIMEOUT = 3600.0          # seconds a child may take for its whole group (tuning included)


def timed(runner: "Runner", x: np.ndarray, budget: float, min_reps: int,
          max_reps: int) -> "Timing":
    """Median of repeats after warm-up, repeats chosen so they take about `budget` seconds."""
    est = runner.time(x, warmup=1, repeats=1).median
    reps = int(np.clip(budget / max(est, 1e-6), min_reps, max_reps))
    return runner.time(x, warmup=0, repeats=reps)


def run_peer(peer: "Peer", subject: "Subject", threads: int, budget: float, min_reps: int,
             max_reps: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """In this process (call inside pinned(threads)): build, one call for the output, timed.
    Returns (build_s, ms, p10_ms, p90_ms, reps, version or note; output or None)."""
    from workbench.bench.peers import PeerUnavailable
    row: dict[str, Any] = {}
    y = None
    runner = None
    t0 = time.perf_counter()
    try:
        runner = peer.build(subject, threads)
        row["build_s"] = time.perf_counter() - t0
        x = subject.x.numpy()
        y = np.ascontiguousarray(runner(x), dtype=np.float32)
        t = timed(runner, x, budget, min_reps, max_reps)
        row.update(ms=t.median * 1e3, p10_ms=t.p10 * 1e3, p90_ms=t.p90 * 1e3, reps=t.repeats,
                   version=runner.version, peak_rss_mb=peak_rss_mb())   # worker still alive
    except PeerUnavailable as e:
        row["note"] = f"skipped: {e}"
    except Exception as e:  # a peer that fails on a model is reported, never dropped
        row["note"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
    finally:
        if runner is not None:
            runner.close()
    return row, y


def _vm_hwm_kb(pid: str) -> int:
    """VmHWM (peak resident set, KB) of a live process, 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def peak_rss_mb() -> float:
    """Peak resident memory, MB, of this process plus its live children (a peer's own worker
    process, e.g. DeepSparse's): /proc's VmHWM, which starts afresh at exec, where getrusage's
    ru_maxrss would carry the forking parent's size over; NaN without /proc."""
    me = _vm_hwm_kb("self")
    if me == 0:
        return float("nan")
    kids: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            kids.update((task / "children").read_text().split())
        except OSError:
            pass
    return (me + sum(_vm_hwm_kb(k) for k in kids)) / 1024


def _write_atomic(path: Path, data: bytes) -> None:
    """path holds data in full or does not exist (the parent may read it after a crash)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def child_main(request: Path) -> int:
    """The child's side: run the request's peer on each of its subjects; see the module doc."""
    req = json.loads(request.read_text())
    from workbench.bench.peers import Subject, peer_by_name
    from workbench.bench.pinning import pinned
    out = Path(req["out"])
    peer = peer_by_name(req["peer"], req["config"])
    with pinned(int(req["threads"])):
        for i, folder in enumerate(req["subjects"]):
            try:
                subject = Subject.load(Path(folder))
            except Exception as e:  # reported on this subject's row
                row, y = {"note": f"failed: loading the subject: {type(e).__name__}: {e}"}, None
            else:
                row, y = run_peer(peer, subject, int(req["threads"]), float(req["budget"]),
                                  int(req["min_reps"]), int(req["max_reps"]))
                del subject
            if y is not None:
                _write_atomic(out / f"{i}.npy", _npy_bytes(y))
            _write_atomic(out / f"{i}.json", json.dumps(row).encode())
            print(f"{req['peer']} {i}: {row.get('ms', float('nan')):.3f} ms {row.get('note', '')}",
                  file=sys.stderr, flush=True)
    return 0


def _tail(path: Path, chars: int = 300) -> str:
    """The last `chars` characters of a log file, on one line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " ".join(text[-chars:].split())


def measure_isolated(peer: "Peer", subjects: list["Subject"], threads: int, budget: float,
                     min_reps: int, max_reps: int, timeout: float = TIMEOUT
                     ) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """peer on each subject at `threads` threads, in one fresh process pinned to `threads`
    cores: per subject (build_s, ms, p10_ms, p90_ms, reps, version or note; output or None).
    Subjects are saved first (they need a spec); peer.prepare runs here, its time added to
    build_s."""
    from workbench.bench.peers import PeerUnavailable
    prep: list[float] = []
    for s in subjects:
        s.save()
        t0 = time.perf_counter()
        try:
            peer.prepare(s)
        except PeerUnavailable as e:
            return [({"note": f"skipped: {e}"}, None) for _ in subjects]
        except Exception as e:  # the peer's converter failed: every row says so
            return [({"note": f"failed: {type(e).__name__}: {str(e)[:200]}"}, None)
                    for _ in subjects]
        prep.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory(prefix=f"workbench-{peer.name}-") as tmp:
        out = Path(tmp)
        request = out / "request.json"
        request.write_text(json.dumps({
            "peer": peer.name, "config": peer.config(), "threads": threads, "budget": budget,
            "min_reps": min_reps, "max_reps": max_reps, "out": str(out),
            "subjects": [str(s.work) for s in subjects]}))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        log_path = out / "child.log"
        with open(log_path, "w") as log, affinity(threads):
            # started inside affinity(): the child and every thread it starts inherit the mask
            proc = subprocess.Popen([sys.executable, "-m", MODULE, str(request)], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            rc = proc.wait(timeout=timeout)
            ended = f"{peer.name} process exited with status {rc}"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ended = f"{peer.name} process killed after {timeout:g} s"
        results: list[tuple[dict[str, Any], np.ndarray | None]] = []
        for i, p in enumerate(prep):
            res = out / f"{i}.json"
            if not res.exists():
                results.append(({"note": f"failed: {ended}: {_tail(log_path)}"}, None))
                continue
            row = json.loads(res.read_text())
            if "build_s" in row:
                row["build_s"] += p
            y_path = out / f"{i}.npy"
            results.append((row, np.load(y_path, allow_pickle=False) if y_path.exists()
                            else None))
    return results


if __name__ == "__main__":
    raise SystemExit(child_main(Path(sys.argv[1])))
