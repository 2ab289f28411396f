"""What every target's build shares: the cache folder, source hashes, debug output, errors.

The cache folder is $WORKBENCH_CACHE (default ~/.cache/workbench).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir(sub: str = "") -> Path:
    """$WORKBENCH_CACHE/sub (default ~/.cache/workbench/sub), created if missing."""
    root = Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")
    d = root / sub if sub else root
    d.mkdir(parents=True, exist_ok=True)
    return d


def debug() -> bool:
    """True when WORKBENCH_DEBUG=1: print generated sources and chosen configs."""
    return os.environ.get("WORKBENCH_DEBUG", "") not in ("", "0")


def source_hash(src: str, *extra: str) -> str:
    """Hex digest naming a build: the source plus anything else that changes the binary."""
    h = hashlib.sha256(src.encode())
    for e in extra:
        h.update(b"\0" + e.encode())
    return h.hexdigest()[:24]


def _write_once(path: Path, text: str) -> None:
    # Never rewrite an existing file: Numba's cache is keyed on the file's mtime.
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class CompilerError(RuntimeError):
    """No C compiler, or the compiler rejected generated source (message has its output)."""
