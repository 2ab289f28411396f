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
