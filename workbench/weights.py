"""Portable model weights: a state dict as .npz shards (no pickle), optionally in fp16.

Format: `<stem>.npz` holds every tensor of a state dict under its own key, plus `__meta__`, a JSON
string (format version, dtypes of the original tensors, shard list, user metadata). When the
tensors exceed `max_bytes`, they are spread over `<stem>.part0.npz`, `<stem>.part1.npz`, ... and
`<stem>.npz` holds only `__meta__` naming the parts. Floating tensors may be stored in fp16
(half the bytes; loading casts back to the original dtype). Loading never unpickles.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "workbench-weights"
VERSION = 1


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".npz" else p


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed to a temporary name, then rename."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def save_state(path: str | Path, state: dict[str, torch.Tensor], half: bool = False,
               max_bytes: int = 15 * 2**20, meta: dict[str, Any] | None = None) -> list[Path]:
    """Save a state dict as <stem>.npz (+ parts if larger than max_bytes); returns files written."""
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for k, v in state.items():
        t = v.detach().cpu()
        dtypes[k] = str(t.dtype).removeprefix("torch.")
        if half and t.is_floating_point():
            t = t.half()
        arrays[k] = t.numpy()
    # Greedy shards by raw size (compression only makes files smaller).
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for k, a in arrays.items():
        if shards[-1] and size + a.nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = a
        size += a.nbytes
    info = {"format": FORMAT, "version": VERSION, "dtypes": dtypes, "half": half,
            "meta": meta or {}, "parts": []}
    written = []
    if len(shards) > 1:
        for i, shard in enumerate(shards):
            part = stem.with_name(f"{stem.name}.part{i}.npz")
            _write_npz(part, shard)
            info["parts"].append(part.name)
            written.append(part)
        _write_npz(stem.with_suffix(".npz"), {"__meta__": np.array(json.dumps(info))})
    else:
        _write_npz(stem.with_suffix(".npz"), {**shards[0], "__meta__": np.array(json.dumps(info))})
    written.insert(0, stem.with_suffix(".npz"))
    return written


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a saved state (format, version, dtypes, parts, user meta)."""
    main = _stem(path).with_suffix(".npz")
    if not main.exists():
        raise FileNotFoundError(f"no weights file {main}")
    try:
        with np.load(main, allow_pickle=False) as f:
            info = json.loads(str(f["__meta__"]))
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{main} is not a {FORMAT} file ({e})") from e
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise ValueError(f"{main}: format {info.get('format')} v{info.get('version')}, "
                         f"expected {FORMAT} v{VERSION}")
    return info


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict written by save_state (all parts), cast back to the saved dtypes."""
    main = _stem(path).with_suffix(".npz")
    info = read_meta(main)
    files = [main.with_name(p) for p in info["parts"]] or [main]
    state: dict[str, torch.Tensor] = {}
    for fpath in files:
        if not fpath.exists():
            raise FileNotFoundError(f"{main} names part {fpath.name}, which is missing")
        with np.load(fpath, allow_pickle=False) as f:
            for k in f.files:
                if k != "__meta__":
                    state[k] = torch.from_numpy(f[k].copy())
    missing = set(info["dtypes"]) - set(state)
    if missing:
        raise ValueError(f"{main}: tensors missing from its parts: {sorted(missing)[:5]}")
    return {k: state[k].to(getattr(torch, info["dtypes"][k])) for k in info["dtypes"]}
