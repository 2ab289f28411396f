"""The codegen benchmark's FMA-peak probe builds and runs at every vector width."""
import pytest

from workbench.bench.codegen_bench import fma_peak


@pytest.mark.parametrize("vector", [4, 8, 16])
def test_fma_peak_builds_at_every_vector_width(monkeypatch: pytest.MonkeyPatch,
                                               vector: int) -> None:
    # 24 accumulators at 16 floats once exceeded GCC's 30 asm operands in one statement
    monkeypatch.setenv("WORKBENCH_VECTOR", str(vector))
    assert fma_peak(seconds=0.01) > 0
