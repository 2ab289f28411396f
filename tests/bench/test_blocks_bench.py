"""The block-by-block benchmark: blocks compose to the model, prefixes travel, rows add up."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.bench.blocks_bench import block_rows, run
from workbench.bench.model_blocks import model_units, prefix
from workbench.bench.peers import build_module
from workbench.models import build_model


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "vgg16"])
def test_blocks_compose_to_the_model(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 10, 64).eval()
    units = model_units(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        np.testing.assert_allclose(prefix(model, len(units))(x).numpy(), ref.numpy(),
                                   rtol=1e-5, atol=1e-5)
        y = x
        for _, m in units[:2]:
            y = m(y)
        # short of the whole model, a prefix ends in a global average pool
        np.testing.assert_allclose(prefix(model, 2)(x).numpy(),
                                   y.mean(dim=(2, 3), keepdim=True).numpy(), rtol=1e-5, atol=1e-6)
    assert units[0][0] in ("features.0", "stem") and units[-1][0] == "head"
    if name == "resnet18":
        assert [n for n, _ in units[1:3]] == ["layer1.0", "layer1.1"] and len(units) == 10
    if name == "vgg16":      # 13 convs (each with its BN, ReLU and a following pool) + head
        assert len(units) == 14


def test_prefix_spec_builds_the_same_module() -> None:
    spec = {"zoo": {"name": "mobilenet_v2", "num_classes": 10, "input_size": 64}, "prefix": 3}
    built = build_module(json.loads(json.dumps(spec)))
    assert list(built.state_dict()) == \
        list(prefix(build_model("mobilenet_v2", 10, 64), 3).state_dict())


def test_unknown_structure_and_bad_prefix_are_errors() -> None:
    with pytest.raises(ValueError, match="no block structure"):
        model_units(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="k must be in"):
        prefix(build_model("resnet18", 10, 64), 0)


def test_block_rows_are_differences_of_prefixes() -> None:
    got = {(0, "tflite"): {"ms": 1.0}, (1, "tflite"): {"ms": 3.0},
           (0, "ours"): {"ms": 2.0}, (1, "ours"): {"ms": 3.0}}
    rows = block_rows(["a", "b"], 2, got, "tflite")
    assert [(r["block"], r["tflite_ms"], r["ours_ms"]) for r in rows] == \
        [("a", 1.0, 2.0), ("b", 2.0, 1.0)]
    assert rows[0]["ratio"] == 2.0 and rows[1]["diff_ms"] == -1.0 and rows[0]["threads"] == 2
    assert [r["gap_so_far_ms"] for r in rows] == [1.0, 0.0] and rows[1]["ours_prefix_ms"] == 3.0


@pytest.mark.slow
@pytest.mark.needs_cc
def test_quick_run_against_eager(tmp_path) -> None:
    tables = run("mobilenet_v2-64", "torch_eager", threads=(1,), rounds=1, quick=True,
                 out_dir=tmp_path / "out", tuning_log=str(tmp_path / "tuning.jsonl"),
                 progress=False)
    blocks, prefixes = tables["blocks"], tables["prefixes"]
    assert [r["block"] for r in blocks] == ["features.0", "features.1", "features.2"]
    assert all(r.get("note", "") == "" and r["rel_err"] < 1e-3 for r in prefixes)
    # the blocks of each runtime add up to its longest prefix
    for who in ("torch_eager", "ours"):
        last = max((r for r in prefixes if r["peer"] == who), key=lambda r: r["blocks"])
        assert sum(r[f"{who}_ms"] for r in blocks) == pytest.approx(last["ms"])
    for f in ("blocks.md", "blocks.csv", "prefixes.csv", "blocks.png", "blocks.json"):
        assert (tmp_path / "out" / f).exists(), f
