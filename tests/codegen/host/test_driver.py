"""The C driver: bound calls made in order from one ctypes call, each step timed."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from workbench.codegen.host.build import build_c
from workbench.codegen.host.driver import BoundCalls, call_kinds, render_driver

pytestmark = pytest.mark.needs_cc

SOURCE = """
int add_one(float *x, int n, int threads) { for (int i = 0; i < n; ++i) x[i] += 1.0f; return 0; }
int scale_into(const float *x, float *y, int n, int k) {
  for (int i = 0; i < n; ++i) y[i] = k * x[i];
  return 0;
}
"""


def test_calls_run_in_order_and_steps_are_timed() -> None:
    lib = build_c(SOURCE)
    add_one, scale_into = lib.add_one, lib.scale_into
    add_one.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    scale_into.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    x, y = np.arange(5, dtype=np.float32), np.zeros(5, np.float32)
    # step 0: x += 1 twice; step 1: y = 3 * x, then y += 1 on its first 2 floats
    run = BoundCalls([[(add_one, (x.ctypes.data, 5, 1)), (add_one, (x.ctypes.data, 5, 1))],
                      [(scale_into, (x.ctypes.data, y.ctypes.data, 5, 3)),
                       (add_one, (y.ctypes.data, 2, 1))]])
    secs = run()
    np.testing.assert_array_equal(x, np.arange(5) + 2)
    np.testing.assert_array_equal(y, 3 * (np.arange(5) + 2) + [1, 1, 0, 0, 0])
    assert secs.shape == (2,) and np.all(secs >= 0)
    run()   # bound once, run again: the same calls on the same buffers
    np.testing.assert_array_equal(x, np.arange(5) + 4)


def test_driver_source_and_argument_kinds() -> None:
    src = render_driver([["pii"], ["ppii", "pii"]])
    assert src.count("t[") == 3 and "(int (*)(void *, void *, int, int))" in src
    fn = build_c(SOURCE).add_one
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    assert call_kinds(fn) == "pii"
    fn.argtypes = [ctypes.c_void_p, ctypes.c_double]
    with pytest.raises(TypeError, match="neither void \\* nor int"):
        call_kinds(fn)


def test_prologue_calls_run_first_untimed_and_addresses_can_be_rewritten() -> None:
    lib = build_c(SOURCE)
    add_one, scale_into = lib.add_one, lib.scale_into
    add_one.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    scale_into.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    x, y = np.zeros(4, np.float32), np.zeros(4, np.float32)
    # prologue: x = 2 * (an input bound later); step: x += 1
    run = BoundCalls([[(add_one, (x.ctypes.data, 4, 1))]],
                     prologue=[(scale_into, (0, x.ctypes.data, 4, 2))])
    assert run.args[1] == 0
    for value in (1.0, 5.0):
        given = np.full(4, value, np.float32)
        run.args[1] = given.ctypes.data        # a new input array for this run
        run.run()
        np.testing.assert_array_equal(x, 2 * value + 1)
        assert run.times().shape == (1,)
    np.testing.assert_array_equal(y, 0)
