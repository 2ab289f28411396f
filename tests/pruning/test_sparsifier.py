"""Config-driven one-shot pruning: groups over defaults, globs, clear errors."""
import pytest

from workbench.pruning.patterns import PatternFitError, PatternSet, candidate_patterns
from workbench.pruning.schemes import Irregular
from workbench.pruning.sparsifier import Sparsifier, conv_config, prune_model


def test_conv_config_and_one_shot_pattern_connectivity(tiny_cnn):
    ps = PatternSet(patterns=candidate_patterns()[:8])
    config = conv_config(tiny_cnn)
    assert [g["tensor"] for g in config] == ["conv1.weight", "conv2.weight"]
    masks = prune_model(tiny_cnn, config, defaults={"scheme": "pattern_connectivity", "rate": 8,
                                                    "patterns": ps})
    assert set(masks) == {"conv1.weight", "conv2.weight"}
    for name, m in masks.items():
        w = dict(tiny_cnn.named_parameters())[name]
        assert (w[~m] == 0).all() and (w[m] != 0).all()
        kept = m.flatten(2).any(2)
        assert (m.flatten(2).sum(2)[kept] == 4).all()
    assert tiny_cnn.fc.weight.ne(0).all()


def test_groups_override_defaults_and_globs(tiny_cnn):
    sp = Sparsifier([{"tensor": "conv*.weight"}, {"tensor": "conv2.weight", "rate": 2}],
                    defaults={"scheme": "irregular", "rate": 4}).prepare(tiny_cnn)
    assert sp.schemes_ == {"conv1.weight": Irregular(0.25), "conv2.weight": Irregular(0.5)}
    masks = sp.step()
    assert masks["conv2.weight"].float().mean() == pytest.approx(0.5, abs=0.01)
    assert sp.finalize() is masks


def test_clear_errors(tiny_cnn):
    with pytest.raises(KeyError, match="no parameter of TinyCNN matches 'conv9.weight'"):
        Sparsifier([{"tensor": "conv9.weight", "scheme": "filter", "rate": 2}]).prepare(tiny_cnn)
    with pytest.raises(PatternFitError, match="fc.weight: a pattern set for 3x3 blocks"):
        Sparsifier([{"tensor": "fc.weight", "scheme": PatternSet(patterns=[(0, 4)])}]).prepare(tiny_cnn)
    with pytest.raises(ValueError, match="names no scheme"):
        Sparsifier([{"tensor": "fc.weight"}]).prepare(tiny_cnn)
    with pytest.raises(ValueError, match="no groups"):
        Sparsifier([]).prepare(tiny_cnn)
