"""LR: validation, shapes, and the JSON + npz format with its version and checksum."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.codegen.lr import LR, LR_VERSION, Layer, LRError, conv_layer

from .helpers import pattern_pruned


def _small_lr() -> LR:
    rng = np.random.default_rng(0)
    c1 = conv_layer(pattern_pruned(rng, 8, 3), rng.standard_normal(8), padding=1, act="relu",
                    name="conv1", inputs=["x"])
    c2 = conv_layer(pattern_pruned(rng, 8, 8), None, stride=2, padding=1, name="conv/2 'odd'",
                    inputs=["conv1"])
    pool = Layer("pool", "global_avgpool", ["conv/2 'odd'"])
    flat = Layer("flat", "flatten", ["pool"])
    fc = Layer("fc", "linear", ["flat"], {"in_features": 8, "out_features": 4, "act": "none"},
               {"weight": rng.standard_normal((4, 8)).astype(np.float32)})
    c2.schedule = {"tile_h": 4}
    return LR({"x": [3, 16, 16]}, [c1, c2, pool, flat, fc], ["fc"], {"model": "test"})


def test_shapes_follow_the_layers() -> None:
    shapes = _small_lr().shapes()
    assert shapes["conv1"] == (8, 16, 16)
    assert shapes["conv/2 'odd'"] == (8, 8, 8)
    assert shapes["pool"] == (8, 1, 1) and shapes["flat"] == (8,) and shapes["fc"] == (4,)


def test_save_load_round_trip(tmp_path: Path) -> None:
    lr = _small_lr()
    js, npz = lr.save(tmp_path / "net.json")
    assert js.exists() and npz.exists()
    back = LR.load(js)
    assert [l.name for l in back.layers] == [l.name for l in lr.layers]
    assert back.layers[1].schedule == {"tile_h": 4}
    assert back.outputs == ["fc"] and back.meta == {"model": "test"}
    for a, b in zip(lr.layers, back.layers):
        assert a.attrs == b.attrs
        assert set(a.params) == set(b.params)
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
    assert back.layers[0].kernel_patterns.kept_kernels == lr.layers[0].kernel_patterns.kept_kernels
    # JSON only: nothing in the files is a pickle.
    assert np.load(npz, allow_pickle=False).files


def test_other_version_is_refused(tmp_path: Path) -> None:
    js, _ = _small_lr().save(tmp_path / "net.json")
    doc = json.loads(js.read_text())
    doc["version"] = LR_VERSION + 1
    js.write_text(json.dumps(doc))
    with pytest.raises(LRError, match=f"version {LR_VERSION + 1}"):
        LR.load(js)


def test_corrupted_arrays_are_refused(tmp_path: Path) -> None:
    js, npz = _small_lr().save(tmp_path / "net.json")
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(LRError, match="checksum"):
        LR.load(js)
    npz.unlink()
    with pytest.raises(LRError, match="missing"):
        LR.load(js)


def test_corrupted_json_is_refused(tmp_path: Path) -> None:
    js, _ = _small_lr().save(tmp_path / "net.json")
    js.write_text(js.read_text()[:50])
    with pytest.raises(LRError, match="not a readable LR"):
        LR.load(js)
    js.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(LRError, match="not a cocopie-lr"):
        LR.load(js)


def test_validation_names_the_problem() -> None:
    lr = _small_lr()
    lr.layers[2].inputs = ["nowhere"]
    with pytest.raises(LRError, match="reads 'nowhere'"):
        lr.validate()
    with pytest.raises(LRError, match="unknown op 'softmax'"):
        Layer("s", "softmax", ["x"]).validate()
    with pytest.raises(LRError, match="groups 3 must divide"):
        conv_layer(np.ones((4, 1, 3, 3), np.float32), groups=3)
