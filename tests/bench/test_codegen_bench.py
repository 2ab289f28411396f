"""The codegen benchmark's FMA-peak probe builds and runs at every vector width."""
import platform
import subprocess
from pathlib import Path

import pytest

from workbench.bench.codegen_bench import fma_peak, fma_probe_source


@pytest.mark.parametrize("vector", [4, 8, 16])
def test_fma_peak_builds_at_every_vector_width(monkeypatch: pytest.MonkeyPatch,
                                               vector: int) -> None:
    # 24 accumulators at 16 floats once exceeded GCC's 30 asm operands in one statement
    monkeypatch.setenv("WORKBENCH_VECTOR", str(vector))
    assert fma_peak(seconds=0.01) > 0


@pytest.mark.skipif(platform.machine() != "x86_64", reason="compiles for x86-64 AVX-512")
def test_fma_probe_keeps_every_accumulator_in_a_register(tmp_path: Path) -> None:
    # with the "+x" constraint (16 registers) the 24 accumulators of the 16-float probe
    # spilled to the stack, and the probe read 132 GFLOP/s on a core that does 281
    from workbench.codegen.host.build import c_compiler
    src, _ = fma_probe_source(16)
    (tmp_path / "p.c").write_text(src)
    res = subprocess.run([c_compiler(), "-O3", "-march=x86-64-v4", "-S", "-o", "-",
                          str(tmp_path / "p.c")], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"the C compiler does not target x86-64-v4: {res.stderr[-300:]}")
    loop = res.stdout[res.stdout.index("wb_peak:"):]
    assert loop.count("vfmadd") >= 24 and "(%rsp)" not in loop and "(%rbp)" not in loop
