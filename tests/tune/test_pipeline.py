"""The pipeline's data specs: a transfer task's target data and its unlabelled pool."""
from __future__ import annotations

import pytest


def test_a_transfer_data_spec_loads_its_target_task_and_its_unlabelled_pool():
    from workbench.tune.pipeline import DataSpec, load_splits, load_unlabeled
    spec = DataSpec("digits", classes=(5, 6, 7, 8, 9), per_class=10, split_seed=1)
    target = load_splits(spec)
    assert target.num_classes == 5 and len(target.train) == 50
    assert len(load_unlabeled(spec)) == len(load_splits(DataSpec("digits")).train) - 50
    with pytest.raises(ValueError, match="no unlabelled pool"):
        load_unlabeled(DataSpec("digits"))
    # runs made before the transfer fields existed keep their cache digests
    assert DataSpec("digits").key() == {"name": "digits", "path": None, "train_subset": None,
                                        "val_size": 5000}
    assert spec.key()["classes"] == (5, 6, 7, 8, 9)


def test_blocks_pretrain_on_the_unlabelled_pool_too_when_asked(tmp_path):
    from dataclasses import replace

    from workbench.experiments.cocotune import make_setup, prepare
    from workbench.tune.pipeline import DataSpec, load_unlabeled, pretrain_blockset
    s = make_setup(quick=True)
    spec = DataSpec("digits", classes=(5, 6, 7, 8, 9), per_class=20)
    s = replace(s, data=spec, teacher=replace(s.teacher, epochs=1),
                pretrain=replace(s.pretrain, epochs=1))
    ctx = prepare(s, tmp_path)
    block = ((ctx.net.modules[0], 0.5),)
    own, info = pretrain_blockset(ctx.ws, [block], s.pretrain, spec)
    both, info_both = pretrain_blockset(ctx.ws, [block], s.pretrain, spec, unlabeled=True)
    assert own != both                       # two block sets, cached apart
    assert info["images"] == 100 and not info["unlabeled"]
    assert info_both["images"] == len(load_unlabeled(spec)) + 100 and info_both["unlabeled"]
    assert pretrain_blockset(ctx.ws, [block], s.pretrain, spec, unlabeled=True)[0] == both

