"""ADMM: converges to the projection on a quadratic, residuals and rho schedule, state round trip."""
import matplotlib
import pytest
import torch
from torch import nn

from workbench.pruning.admm import ADMM, plot_residuals
from workbench.pruning.patterns import PatternSet, candidate_patterns

matplotlib.use("Agg")


class Quadratic(nn.Module):
    """loss(W) = 0.5 ||W - A||^2: ADMM's answer must be the projection of A."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a
        self.w = nn.Parameter(a.clone())

    def loss(self) -> torch.Tensor:
        return 0.5 * (self.w - self.a).square().sum()


def _solve(model: Quadratic, admm: ADMM, iterations: int, inner: int = 50) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(iterations):
        for _ in range(inner):
            opt.zero_grad()
            (model.loss() + admm.penalty(model)).backward()
            opt.step()
        admm.step()
        if admm.converged:
            break


def test_converges_to_the_projection_and_logs_residuals():
    torch.manual_seed(0)
    a = torch.randn(6, 4, 3, 3)
    ps = PatternSet(patterns=candidate_patterns()[:6], keep_kernels=0.5)
    model = Quadratic(a)
    # rho >= 1 keeps W + U between A and Z (no overshoot past A), so ADMM on this non-convex
    # set lands on the global answer rather than another feasible point.
    admm = ADMM([{"tensor": "w", "scheme": ps}], rho=2.0, rho_growth=1.2, rho_max=20,
                tol=1e-4).prepare(model)
    _solve(model, admm, 200)
    assert admm.converged and len(admm.history_) < 200
    primal = [h["primal_rel"] for h in admm.history_]
    assert primal[-1] < 1e-4 < primal[0]
    rhos = [h["rho"] for h in admm.history_]
    assert rhos[0] == 2.0 and rhos[1] == pytest.approx(2.4) and max(rhos) <= 20
    masks = admm.finalize()
    # For this loss the constrained minimiser is exactly the projection of A.
    expected, expected_mask = ps.project(a)
    assert torch.equal(masks["w"], expected_mask)
    torch.testing.assert_close(model.w.detach(), expected, atol=1e-3, rtol=1e-3)
    assert (model.w[~masks["w"]] == 0).all()


def test_u_is_rescaled_when_rho_grows():
    model = Quadratic(torch.randn(4, 2, 3, 3))
    admm = ADMM([{"tensor": "w", "scheme": "connectivity", "rate": 2}], rho=1.0, rho_growth=2.0,
                rho_max=2.0).prepare(model)
    with torch.no_grad():
        model.w.mul_(3)
    w = model.w.detach().clone()
    z = admm.schemes_["w"].project(w)[0]        # U starts at 0, so Z = P(W)
    admm.step()
    assert admm.rho_ == 2.0
    torch.testing.assert_close(admm.U_["w"], (w - z) / 2.0)
    admm.step()
    assert admm.rho_ == 2.0                      # capped at rho_max


def test_state_dict_round_trip_and_errors(tiny_cnn):
    admm = ADMM([{"tensor": "conv*.weight", "scheme": "irregular", "rate": 4}]).prepare(tiny_cnn)
    admm.step()
    state = admm.state_dict()
    other = ADMM([{"tensor": "conv*.weight", "scheme": "irregular", "rate": 4}]).prepare(tiny_cnn)
    other.load_state_dict(state)
    assert other.rho_ == admm.rho_ and other.history_ == admm.history_
    assert all(torch.equal(other.Z_[n], admm.Z_[n]) for n in admm.Z_)
    wrong = ADMM([{"tensor": "conv1.weight", "scheme": "irregular", "rate": 4}]).prepare(tiny_cnn)
    with pytest.raises(ValueError, match="ADMM state is for tensors"):
        wrong.load_state_dict(state)
    with pytest.raises(ValueError, match="rho_growth >= 1"):
        ADMM([{"tensor": "fc.weight", "scheme": "filter", "rate": 2}], rho_growth=0.5).prepare(tiny_cnn)
    ax = plot_residuals(admm.history_ + other.history_)
    assert len(ax.get_lines()) == 2


def test_penalty_is_the_augmented_term(tiny_cnn):
    admm = ADMM([{"tensor": "conv2.weight", "scheme": "filter", "rate": 2}], rho=0.3).prepare(tiny_cnn)
    w = tiny_cnn.conv2.weight
    z = admm.schemes_["conv2.weight"].project(w.detach())[0]
    assert admm.penalty().item() == pytest.approx(0.15 * (w - z).square().sum().item(), rel=1e-5)
    admm.penalty().backward()
    torch.testing.assert_close(w.grad, 0.3 * (w - z).detach())
