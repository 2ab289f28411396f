"""A benchmark's journal: every measurement appended to a JSON-lines file as it is made, so an
interrupted run (hours for the full peers benchmark) starts again where it stopped.

The first line is the run's fingerprint (its configuration and the code's git hash); a journal
whose fingerprint differs from the new run's is set aside (renamed *.stale) rather than reused,
because its timings were made by other code or settings. A line cut off by the interruption is
ignored. The run deletes the journal once its tables are written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """Measurements by key, kept in `path` (JSON lines) as they are recorded."""

    def __init__(self, path: Path | str, fingerprint: dict[str, Any], say: Any = print) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=_plain))
        self.done: dict[str, Any] = {}
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            head = _parse(lines[0]) if lines else None
            if head == {"fingerprint": self.fingerprint}:
                for line in lines[1:]:
                    rec = _parse(line)
                    if rec is not None and "key" in rec:
                        self.done[rec["key"]] = rec["value"]
                say(f"resuming from {self.path}: {len(self.done)} measurement(s) kept")
            else:
                stale = self.path.with_suffix(self.path.suffix + ".stale")
                os.replace(self.path, stale)
                say(f"{self.path} is from another configuration or commit: set aside as {stale}")
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"fingerprint": self.fingerprint})

    def get(self, key: str) -> Any | None:
        """The value recorded under key by this run or the interrupted one, else None."""
        return self.done.get(key)

    def record(self, key: str, value: Any) -> Any:
        """Keep value under key, on disk before returning it."""
        value = json.loads(json.dumps(value, default=_plain))
        self.done[key] = value
        self._append({"key": key, "value": value})
        return value

    def finish(self) -> None:
        """The run's results are written: the journal is no longer needed."""
        self.path.unlink(missing_ok=True)

    def _append(self, rec: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, allow_nan=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _plain(v: Any) -> Any:
    """JSON for what json does not know: numpy scalars and arrays as numbers, else text."""
    return v.tolist() if hasattr(v, "tolist") else str(v)


def _parse(line: str) -> dict[str, Any] | None:
    """One journal line, or None where the interruption cut it off."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None
