"""Provenance and atomic writers for everything that lands in results/.

Every artifact says which command regenerates it, on which machine, with how many threads, at
which git commit, with which configuration. Files are written to a temporary name and renamed,
so an interrupted run never leaves half a table.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "results"


def git_hash() -> str:
    """The repo's HEAD commit (with '+dirty' if the tree has changes), or 'unknown'.

    $WORKBENCH_GIT_HASH overrides it, for copies of the tree without .git (a GPU machine).
    """
    if os.environ.get("WORKBENCH_GIT_HASH"):
        return os.environ["WORKBENCH_GIT_HASH"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_fingerprint() -> str:
    """HEAD plus a digest of uncommitted changes to the package's code, new files included
    (not to results/, which a benchmark itself writes): equal fingerprints, same code."""
    digest = hashlib.sha256()
    try:
        digest.update(subprocess.run(["git", "diff", "HEAD", "--", "workbench"], cwd=REPO_ROOT,
                                     capture_output=True, timeout=10).stdout)
        new = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--",
                              "workbench"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        new = []
    for name in sorted(new):
        digest.update(name.encode() + b"\0" + (REPO_ROOT / name).read_bytes())
    changed = digest.hexdigest() != hashlib.sha256().hexdigest()
    return git_hash().split("+")[0] + ("+" + digest.hexdigest()[:12] if changed else "")


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What ran it: CPU, core count, torch threads, GPU if any, Python and torch versions."""
    info: dict[str, Any] = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(command: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record of how an artifact was made: command, config, git hash, machine, UTC time."""
    return {"command": command, "config": config or {}, "git": git_hash(), "machine": machine(),
            "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def current_command() -> str:
    """The command line of this process, as a user would retype it."""
    argv = sys.argv[:]
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "python -m workbench"
    return " ".join(argv)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to path via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def provenance_markdown(prov: dict[str, Any]) -> str:
    """Provenance as a Markdown footer (command, git, machine, time, config)."""
    m = prov["machine"]
    hw = f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads"
    if "gpu" in m:
        hw += f", GPU {m['gpu']}"
    return (f"\nRegenerate: `{prov['command']}`  \n"
            f"Git: `{prov['git']}`, {prov['utc']}  \n"
            f"Machine: {hw}; Python {m['python']}, torch {m['torch']}  \n"
            f"Config: `{json.dumps(prov['config'], sort_keys=True, default=str)}`\n")


def write_table(df: "Any", stem: str | Path, prov: dict[str, Any], title: str = "",
                floatfmt: str = ".4g") -> tuple[Path, Path]:
    """Write a pandas DataFrame as stem.csv (with '#' provenance lines) and stem.md; returns both."""
    stem = Path(stem)
    head = "".join(f"# {k}: {json.dumps(v, sort_keys=True, default=str)}\n" for k, v in prov.items())
    csv = atomic_write_text(stem.with_suffix(".csv"), head + df.to_csv(index=False))
    body = markdown_table(df, floatfmt)
    md = atomic_write_text(stem.with_suffix(".md"),
                           (f"# {title}\n\n" if title else "") + body + "\n" + provenance_markdown(prov))
    return csv, md


def write_figure(fig: "Any", path: str | Path, prov: dict[str, Any], dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG (provenance in its metadata) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    meta = {"Description": json.dumps(prov, sort_keys=True, default=str)}
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=meta)
    os.replace(tmp, path)
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file, oldest first ([] if it does not exist); a torn last
    line from an interrupted append is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Add one record as one line, flushed at once (a crash loses nothing written before)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True, default=float) + "\n")


def write_json(obj: Any, path: str | Path) -> Path:
    """Write obj as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def markdown_table(df: "Any", floatfmt: str = ".4g") -> str:
    """A DataFrame as a Markdown table (floats formatted with floatfmt), no extra dependency."""
    def fmt(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
