"""The generated main: names from a model reach it only as escaped C strings."""
from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from workbench.codegen.arm64.program import Arg, Program
from workbench.codegen.arm64.render_main import c_string, render_main


def _unescape(lit: str) -> bytes:
    """A C string literal of printable characters and octal escapes, as its bytes."""
    assert lit[0] == lit[-1] == '"'
    body = lit[1:-1]
    assert '"' not in re.sub(r"\\[0-7]{3}", "", body)
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), body.encode())


@given(st.text())
def test_any_name_becomes_one_c_string_of_its_bytes(name: str) -> None:
    lit = c_string(name)
    assert "\n" not in lit
    assert _unescape(lit) == name.encode()


def test_step_names_are_escaped_json_in_the_source() -> None:
    evil = 'x"); system("rm -rf /'
    prog = Program(kernels=[("wb_copy", "")], calls=[(0, [Arg("input"), Arg("buffer"),
                                                         Arg("int", value=1), Arg("threads")])],
                   steps=[(evil, 0, 1)], buffer_bytes=[64], input_shape=(1, 2),
                   output_shape=(1, 2), output=Arg("buffer"))
    src = render_main(prog)
    assert evil not in src and c_string(json.dumps(evil)) in src
    assert "k0_wb_copy((void *)in, (void *)(b[0] + 0), 1, threads);" in src
