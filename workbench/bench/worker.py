"""Peer runtimes that live in a venv of their own, driven by workbench.bench.peers.

Run by path with that venv's interpreter (it imports nothing from workbench):
    python worker.py deepsparse MODEL.onnx THREADS BATCH   JSON lines on stdin/stdout:
        {"cmd": "run", "x": in.npy, "y": out.npy} -> {"ok": true}
        {"cmd": "time", "x": in.npy, "warmup": W, "repeats": R} -> {"times": [seconds, ...]}
    python worker.py litert-serve      JSON lines: {"cmd": "convert", "program": P.pt2, "x": X.npy,
        "out": OUT.tflite} -> {"ok": true}   (P: a saved torch.export program)
"""
from __future__ import annotations

import json
import os
import sys
import time


def _protocol_stream():
    """A private copy of stdout for the protocol; fd 1 then goes to stderr, so the runtime's
    own prints (banners, logs) cannot corrupt it."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return proto


def serve_deepsparse(onnx: str, threads: int, batch: int) -> int:
    """Compile onnx with DeepSparse on `threads` cores and answer run/time requests."""
    import numpy as np
    proto = _protocol_stream()

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        import deepsparse
        engine = deepsparse.compile_model(onnx, batch_size=batch, num_cores=threads)
    except Exception as e:  # reported to the parent, which records it as the reason
        send({"error": f"{type(e).__name__}: {e}"})
        return 1
    send({"ready": True, "version": deepsparse.__version__})
    for line in sys.stdin:
        req = json.loads(line)
        x = np.load(req["x"])
        if req["cmd"] == "run":
            np.save(req["y"], engine([x])[0])
            send({"ok": True})
        elif req["cmd"] == "time":
            for _ in range(int(req["warmup"])):
                engine([x])
            times = []
            for _ in range(int(req["repeats"])):
                t0 = time.perf_counter()
                engine([x])
                times.append(time.perf_counter() - t0)
            send({"times": times})
        else:
            send({"error": f"unknown command {req['cmd']!r}"})
    return 0


def serve_litert() -> int:
    """Convert saved torch.export programs to .tflite with litert-torch, one request a line:
    {"cmd": "convert", "program": P.pt2, "x": X.npy, "out": OUT.tflite} -> {"ok": true}."""
    proto = _protocol_stream()

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    import litert_torch
    import numpy as np
    import torch
    send({"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        try:
            ep = torch.export.load(req["program"])
            x = torch.from_numpy(np.load(req["x"]))
            litert_torch.convert(ep.module(), (x,)).export(req["out"])
            send({"ok": True})
        except Exception as e:  # reported to the parent, which records it as the reason
            send({"error": f"{type(e).__name__}: {str(e)[:300]}"})
    return 0


def main(argv: list[str]) -> int:
    """Dispatch on the first argument (see the module docstring)."""
    if argv[:1] == ["deepsparse"] and len(argv) == 4:
        return serve_deepsparse(argv[1], int(argv[2]), int(argv[3]))
    if argv == ["litert-serve"]:
        return serve_litert()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
