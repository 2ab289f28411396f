"""python -m workbench phone devices|run|bench: the adb helpers from the command line.

    devices                     every phone adb sees: model, ABI, SoC, cores, frequencies
    run BUNDLE [--reps --threads --serial]
                                run a bundle folder (compile(..., target="arm64")) on a phone
                                on a random input; prints its JSON times
    bench [--model --input-size --reps --serial --out]
                                the dense and the pattern-pruned build of one model, 1 and 4
                                threads, medians after warm-up, on the phone; writes
                                results/phone/ with the phone's description

--host/--port name the adb server (default 127.0.0.1:5037). Times from an emulated device
(the tests' fake server) are never written to results/: bench labels them and needs --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from workbench.phone.adb import PhoneError, connect, describe, devices, phone, run_bundle


def bench(device: Any, model_name: str, out_dir: Path, reps: int = 20,
          input_size: int = 32) -> list[dict[str, Any]]:
    """Dense and pruned bundles of model_name at 1 and 4 threads on device: rows of median
    ms (our dense kernels are the in-run baseline), written to out_dir/bench.{json,md}."""
    import torch

    from workbench.codegen import compile
    from workbench.models import build_model
    from workbench.provenance import git_hash
    from workbench.pruning import Sparsifier, rate_config, select_patterns
    info = describe(device)
    torch.manual_seed(0)
    dense = build_model(model_name, num_classes=10, input_size=input_size).eval()
    pruned = build_model(model_name, num_classes=10, input_size=input_size).eval()
    pruned.load_state_dict(dense.state_dict())
    convs = [m.weight for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)]
    Sparsifier(rate_config(pruned, "pattern_connectivity", 8.0,
                           select_patterns(convs, num_patterns=8))).prepare(pruned).step()
    x = torch.randn(1, 3, input_size, input_size)
    rows = []
    for name, model in (("dense", dense), ("pruned 8 patterns + connectivity 8x", pruned)):
        bundle = compile(model, target="arm64", input_shape=(3, input_size, input_size))
        for threads in (1, 4):
            y, times = run_bundle(device, bundle, x, threads=threads, reps=reps)
            err = float((y - model(x).detach()).abs().max())
            rows.append({"model": model_name, "build": name, "threads": threads,
                         "median_ms": times["median_ms"],
                         "p10_ms": float(np.percentile(times["total_ms"], 10)),
                         "p90_ms": float(np.percentile(times["total_ms"], 90)),
                         "max_abs_err": err, "reps": reps})
    base = {r["threads"]: r["median_ms"] for r in rows if r["build"] == "dense"}
    for r in rows:
        r["speedup_vs_dense"] = base[r["threads"]] / r["median_ms"]
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"phone": info.describe(), "git": git_hash(),
            "command": (f"python -m workbench phone bench --model {model_name} "
                        f"--input-size {input_size} --reps {reps}"),
            "note": ("EMULATED: times of qemu on the host, not of a phone" if info.emulated
                     else "medians after one warm-up run, pinned to the big cores")}
    tmp = out_dir / "bench.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    tmp.replace(out_dir / "bench.json")
    lines = [f"# Phone benchmark: {model_name} on {info.model} ({info.soc})", "",
             f"{meta['note']}; `{meta['command']}`, git {meta['git']}.", "",
             "| build | threads | median ms | p10 | p90 | vs dense |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['build']} | {r['threads']} | {r['median_ms']:.3f} | {r['p10_ms']:.3f} | "
              f"{r['p90_ms']:.3f} | {r['speedup_vs_dense']:.2f}x |" for r in rows]
    tmp = out_dir / "bench.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out_dir / "bench.md")
    return rows


def main(argv: list[str] | None = None) -> int:
    """The phone sub-commands; exit status 0, or 1 with a message for a PhoneError."""
    p = argparse.ArgumentParser(prog="python -m workbench phone", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5037)
    p.add_argument("--serial", default=os.environ.get("WORKBENCH_ADB_SERIAL"))
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("devices", help="list phones")
    r = sub.add_parser("run", help="run a bundle folder on a phone")
    r.add_argument("bundle")
    r.add_argument("--reps", type=int, default=10)
    r.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("bench", help="dense vs pruned build of a model on a phone")
    b.add_argument("--model", default="vgg16")
    b.add_argument("--input-size", type=int, default=32,
                   help="square input side (32: the CIFAR form of the model, 224: ImageNet's)")
    b.add_argument("--reps", type=int, default=20)
    b.add_argument("--out", default=None, help="output folder (default results/phone)")
    args = p.parse_args(argv)
    try:
        client = connect(args.host, args.port)
        if args.what == "devices":
            for info in devices(client):
                print(json.dumps(info.describe()))
            return 0
        device = phone(client, args.serial)
        if args.what == "run":
            from workbench.codegen.arm64.bundle import Bundle
            bundle = Bundle.load(args.bundle)
            x = np.random.default_rng(0).standard_normal(bundle.input_shape).astype(np.float32)
            _, times = run_bundle(device, bundle, x, threads=args.threads, reps=args.reps)
            print(json.dumps(times))
            return 0
        if describe(device).emulated and args.out is None:
            raise PhoneError("this device is emulated: its times are not a phone's, so they "
                             "never go to results/phone; pass --out to write them elsewhere")
        for row in bench(device, args.model, Path(args.out or "results/phone"), args.reps,
                         args.input_size):
            print(json.dumps(row))
        return 0
    except PhoneError as e:
        print(f"phone: {e}", file=sys.stderr)
        return 1
