"""Pinning: a process started inside affinity(n) runs on n cores from its first instruction."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.bench.pinning import affinity, cores


def test_child_inherits_the_mask() -> None:
    before = os.sched_getaffinity(0)
    with affinity(1) as used:
        out = subprocess.run([sys.executable, "-c",
                              "import os; print(sorted(os.sched_getaffinity(0)))"],
                             capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(used)) and len(used) == 1
    assert os.sched_getaffinity(0) == before


def test_too_many_cores_is_refused() -> None:
    with pytest.raises(ValueError, match="asked for"):
        cores(len(os.sched_getaffinity(0)) + 1)
