"""Portable weights: round trip, fp16, shards, clear errors."""
import numpy as np
import pytest
import torch

from workbench.weights import load_state, read_meta, save_state


def test_round_trip_with_shards_and_half(tmp_path):
    state = {"a.weight": torch.randn(300, 300), "a.bias": torch.randn(300),
             "bn.num_batches_tracked": torch.tensor(7), "b.weight": torch.randn(200, 300)}
    files = save_state(tmp_path / "m.npz", state, half=True, max_bytes=200_000, meta={"k": 1})
    assert [f.name for f in files] == ["m.npz", "m.part0.npz", "m.part1.npz"] and read_meta(tmp_path / "m")["meta"] == {"k": 1}
    back = load_state(tmp_path / "m.npz")
    assert back["bn.num_batches_tracked"].dtype == torch.int64 and back["a.weight"].dtype == torch.float32
    torch.testing.assert_close(back["a.weight"], state["a.weight"], rtol=1e-3, atol=1e-3)
    exact = load_state(save_state(tmp_path / "e", state)[0])
    assert all(torch.equal(exact[k], state[k]) for k in state)


def test_missing_part_and_foreign_file(tmp_path):
    files = save_state(tmp_path / "m", {"w": torch.randn(100, 100), "v": torch.randn(100, 100)},
                       max_bytes=50_000)
    files[2].unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_state(tmp_path / "m")
    np.savez(tmp_path / "x.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="not a workbench-weights file"):
        load_state(tmp_path / "x.npz")
