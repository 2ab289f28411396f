"""Block pre-training lowers the reconstruction error; assembly places the trained blocks."""
import pytest
import torch

from workbench.data import load_digits
from workbench.models.resnet_cifar import ResNetCifar
from workbench.train import TrainConfig, train
from workbench.tune.assemble import FinetuneConfig, assemble, eval_steps, finetune
from workbench.tune.filter_pruning import l1_prune
from workbench.tune.multiplex import load_multiplex, write_multiplex
from workbench.tune.network import from_module, state_from_module
from workbench.tune.pretrain import PretrainConfig, block_model, pretrain_blocks


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    data = load_digits()
    m = ResNetCifar(8, 10, in_channels=1, widths=(8, 8, 16))
    train(m, data.train, None, TrainConfig(epochs=3, batch_size=64, device="cpu"), progress=False)
    m.eval()
    net = from_module(m, m.block_names(), (1, 8, 8))
    mux = load_multiplex(write_multiplex(net, tmp_path_factory.mktemp("mux") / "m.py"))
    return data, net, mux, state_from_module(net, m)


def test_blocks_start_from_l1_weights_and_learn(setup, tmp_path):
    data, net, mux, teacher = setup
    blocks = [((net.modules[0], 0.7),), ((net.modules[1], 0.7), (net.modules[2], 0.5))]
    model = block_model(mux, net, teacher, blocks)
    pruned = l1_prune(net, teacher, {net.modules[0]: 0.7})
    torch.testing.assert_close(model.blocks[0].layer1_0_conv1.weight,
                               pruned["layers.layer1_0_conv1.weight"])
    cfg = PretrainConfig(epochs=2, batch_size=64, device="cpu")
    states, info = pretrain_blocks(mux, net, teacher, blocks, data.train, cfg,
                                   checkpoint=tmp_path / "b.ckpt")
    assert len(states) == 2 and len(info["loss"]) == 2
    assert all(b < a for a, b in zip(info["loss"][0], info["loss"][1]))
    # resuming from the finished checkpoint trains nothing more and gives the same blocks
    again, info2 = pretrain_blocks(mux, net, teacher, blocks, data.train, cfg,
                                   checkpoint=tmp_path / "b.ckpt")
    assert info2["loss"] == info["loss"]
    torch.testing.assert_close(again[1], states[1])
    # the teacher's weights were not touched
    assert torch.equal(model.layers.layer1_0_conv2.weight, teacher["layers.layer1_0_conv2.weight"])

    rates = {net.modules[0]: 0.7, net.modules[1]: 0.7, net.modules[2]: 0.5}
    default = assemble(mux, net, teacher, rates)
    built = assemble(mux, net, teacher, rates, [(blocks[1], states[1])])
    torch.testing.assert_close(built.layers.layer2_0_conv1.weight, states[1]["layer2_0_conv1.weight"])
    torch.testing.assert_close(built.layers.layer1_0_conv1.weight, default.layers.layer1_0_conv1.weight)
    with pytest.raises(ValueError, match="prunes"):
        assemble(mux, net, teacher, {**rates, net.modules[1]: 0.3}, [(blocks[1], states[1])])

    rec = finetune(built, data.train, data.val,
                   FinetuneConfig(epochs=2, batch_size=64, device="cpu", evals_per_epoch=2))
    steps, secs, accs = zip(*rec["curve"])
    spe = rec["steps_per_epoch"]
    assert list(steps) == [0, *eval_steps(spe, 2, 2)] and len(steps) == 5
    assert steps[2] == spe and steps[4] == rec["steps"] == 2 * spe
    assert accs[0] == rec["init_acc"] and accs[-1] == rec["final_acc"] > 0.5
    # seconds count from the start, evaluations included: increasing, the last is the budget's
    assert 0 < secs[0] < secs[1] < secs[2] < secs[3] < secs[4] == rec["seconds"]
    assert rec["seconds"] == pytest.approx(rec["train_seconds"] + rec["eval_seconds"], rel=0.05)


def test_eval_steps_spread_over_each_epoch():
    assert eval_steps(10, 2, 4) == [2, 5, 8, 10, 12, 15, 18, 20]
    assert eval_steps(3, 1, 8) == [1, 2, 3]  # at most one evaluation per step
    with pytest.raises(ValueError, match="evals_per_epoch"):
        eval_steps(10, 1, 0)
