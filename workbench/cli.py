"""Command line: python -m workbench {demo,train,data,experiment,bench,phone} ...; --help on each."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# name -> (module, function, help). Each function takes (quick: bool, out_dir: Path) and writes
# its tables and figures there; imported lazily so `--help` stays fast.
EXPERIMENTS: dict[str, tuple[str, str, str]] = {
    "baselines": ("workbench.experiments.baselines", "collect_baselines",
                  "dense CIFAR-10 accuracy table and curves from runs/cifar10/*.json"),
    "sequitur-speed": ("workbench.experiments.sequitur_speed", "run",
                       "Sequitur time vs input length, 10^4..10^6 symbols"),
    "pruning-coverage": ("workbench.experiments.pruning", "pattern_coverage",
                         "pattern-set coverage for K = 4, 6, 8, 12 (no training)"),
    "pruning-curve": ("workbench.experiments.pruning", "compression_curve",
                      "ADMM vs one-shot accuracy at 4x, 8x, 12x, 16x"),
    "pruning-table1": ("workbench.experiments.pruning", "scheme_comparison",
                       "Table 1: six pruning schemes at one rate"),
    "pruning-characteristics": ("workbench.experiments.pruning", "characteristics_table",
                                "8x pattern+connectivity models, accuracy before/after"),
    "apps": ("workbench.experiments.apps", "run",
             "demo paper Table 1: style transfer, coloring, super resolution, pruned + compiled"),
}


# name -> (module with main(argv) -> int, help). Benchmarks are scripts, never timed tests.
BENCHES: dict[str, tuple[str, str]] = {
    "codegen": ("workbench.bench.codegen_bench",
                "our kernels vs PyTorch per layer and end to end, FMA peak, LRE/reorder ablations, storage"),
    "peers": ("workbench.bench.peers_bench",
              "ours vs every peer runtime (Figure 5), end to end and per layer, dense and pruned"),
    "blocks": ("workbench.bench.blocks_bench",
               "ours vs one dense peer block by block (where a model's time goes)"),
    "gpu": ("workbench.bench.gpu_bench",
            "the CUDA target vs PyTorch eager / cuDNN graphs / torch.compile on the GPU"),
    "linear": ("workbench.bench.linear_bench",
               "VGG-16's classifier GEMVs, dense and pruned 8x (block, irregular): ours vs PyTorch"),
    "steadiness": ("workbench.bench.steadiness",
                   "the spread of ours beside fixed-work compute and memory probes (is it ours?)"),
}


def register_experiment(name: str, module: str, function: str, help_text: str) -> None:
    """Make `python -m workbench experiment NAME` call module.function(quick=..., out_dir=...)."""
    EXPERIMENTS[name] = (module, function, help_text)


def _cmd_demo(args: argparse.Namespace) -> int:
    from workbench.experiments.demo import run_demo

    run_demo(out_dir=Path(args.out), epochs=args.epochs, threads=args.threads, seed=args.seed)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from workbench.experiments.baselines import train_baseline

    train_baseline(model=args.model, dataset=args.data, out=Path(args.out), epochs=args.epochs,
                   batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                   label_smoothing=args.label_smoothing, seed=args.seed, device=args.device,
                   data_path=args.data_path, train_subset=args.train_subset)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from workbench.data import data_dirs, find_data

    print("Data folders searched, in order ($WORKBENCH_DATA first):")
    for d in data_dirs():
        print(f"  {d}{'' if d.exists() else '  (missing)'}")
    for name in ("cifar10.npz", "images"):
        found = find_data(name)
        print(f"{name}: {found if found else 'not found'}")
    print("digits: bundled with scikit-learn (always available)")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    if args.name not in EXPERIMENTS:
        print(f"unknown experiment {args.name!r}; known: {', '.join(sorted(EXPERIMENTS))}",
              file=sys.stderr)
        return 2
    module, function, _ = EXPERIMENTS[args.name]
    fn = getattr(importlib.import_module(module), function)
    kwargs = {"quick": args.quick}
    if args.out:
        kwargs["out_dir"] = Path(args.out)
    fn(**kwargs)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    module, _ = BENCHES[args.suite]
    return int(importlib.import_module(module).main(args.bench_args) or 0)


def _cmd_phone(args: argparse.Namespace) -> int:
    from workbench.phone.commands import main as phone_main
    return phone_main(args.phone_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per capability."""
    p = argparse.ArgumentParser(prog="python -m workbench",
                                description="CoCoPIE workbench: prune, compile, tune CNNs.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="digits: train, pattern-prune, retrain, generate kernels, time")
    d.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    d.add_argument("--epochs", type=int, default=15, help="training epochs (retraining uses as many)")
    d.add_argument("--threads", type=int, default=2, help="threads for both kernels and PyTorch")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)

    t = sub.add_parser("train", help="train a dense model and save a checkpoint (resumable)")
    t.add_argument("--model", required=True, help="vgg16, resnet18, resnet50, mobilenet_v2, small_cnn")
    t.add_argument("--data", default="cifar10", choices=["cifar10", "digits"])
    t.add_argument("--data-path", default=None, help="CIFAR-10 .npz (default: search data folders)")
    t.add_argument("--out", required=True, help="checkpoint path (.pt); resumes if it exists")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--train-subset", type=int, default=None, help="use only the first N images")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("data", help="show where data sets are looked for and which were found")
    s.set_defaults(func=_cmd_data)

    e = sub.add_parser("experiment", help="regenerate a results/ table or figure",
                       description="Experiments: " + "; ".join(
                           f"{k}: {v[2]}" for k, v in sorted(EXPERIMENTS.items())))
    e.add_argument("name", help="experiment name: " + ", ".join(sorted(EXPERIMENTS)))
    e.add_argument("--quick", action="store_true", help="small settings that run in minutes on CPU")
    e.add_argument("--out", default=None, help="output folder (default: under results/)")
    e.set_defaults(func=_cmd_experiment)

    b = sub.add_parser("bench", help="host CPU benchmarks; results/ tables with machine and threads",
                       description="Suites: " + "; ".join(f"{k}: {v[1]}" for k, v in BENCHES.items())
                       + ". Arguments after the suite go to it (e.g. `bench codegen --quick`).")
    b.add_argument("suite", choices=sorted(BENCHES), help="which benchmark suite")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="the suite's own arguments")
    b.set_defaults(func=_cmd_bench)

    ph = sub.add_parser("phone", help="phones over adb: devices, run a bundle, bench dense vs pruned",
                        add_help=False)
    ph.add_argument("phone_args", nargs=argparse.REMAINDER,
                    help="devices | run BUNDLE | bench (python -m workbench phone --help)")
    ph.set_defaults(func=_cmd_phone)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run the chosen command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["phone"]:   # its own options (--port, --help) are not this parser's
        return _cmd_phone(argparse.Namespace(phone_args=argv[1:]))
    args = build_parser().parse_args(argv)
    return args.func(args)
