"""The score-matching losses against closed forms for Gaussian data.

For data x ~ N(0, I_d) every quantity below has a closed form, so each Monte Carlo estimate is
compared with its exact expectation within 4 standard errors, the standard error itself being
computed in closed form (never measured and tuned).
"""

import math

import pytest
import torch

from ncsn_toy import (
    NoiseConditionalScoreNet,
    ScoreNet,
    anneal_dsm_loss,
    dsm_loss,
    sliced_score_matching_loss,
)


def gaussian_data(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_dsm_loss_with_the_exact_noisy_score(sigma, d):
    """s(y) = -y / (1 + sigma^2), the score of p_sigma = N(0, (1 + sigma^2) I).

    Then s(x + sigma z) + z / sigma = a x + b z with a = -1 / (1 + sigma^2),
    b = 1 / (sigma (1 + sigma^2)), so the per-sample loss is 0.5 c chi^2_d with
    c = a^2 + b^2 = 1 / (sigma^2 (1 + sigma^2)): mean 0.5 c d, variance 0.5 c^2 d.
    """
    n = 50_000
    x = gaussian_data(n, d, seed=10 + d)  # a seed other than the noise's: x and z independent

    def exact_noisy_score(y):
        return -y / (1 + sigma**2)

    loss = dsm_loss(exact_noisy_score, x, sigma, generator=torch.Generator().manual_seed(1))
    c = 1 / (sigma**2 * (1 + sigma**2))
    se = math.sqrt(0.5 * d) * c / math.sqrt(n)
    assert abs(loss.item() - 0.5 * c * d) < 4 * se


def test_dsm_loss_is_smallest_at_the_exact_score():
    x = gaussian_data(20_000, 2, seed=0)
    sigma = 1.0

    def exact(y):
        return -y / (1 + sigma**2)

    # the same noise for every candidate (common random numbers)
    def loss(scale):
        generator = torch.Generator().manual_seed(3)
        return dsm_loss(lambda y: scale * exact(y), x, sigma, generator=generator)

    assert loss(1.0) < loss(0.9)
    assert loss(1.0) < loss(1.1)


def test_anneal_dsm_loss_with_the_exact_noisy_score():
    """With lambda = sigma^2 the level-l sample loss is 0.5 c_l chi^2_d, c_l = 1 / (1 + sigma_l^2).

    Levels are uniform, so the mean is the average of 0.5 d c_l and the variance is
    E_l[0.5 d c_l^2] + Var_l[0.5 d c_l] (law of total variance).
    """
    n = 50_000
    d = 2
    sigmas = torch.tensor([20.0, 5.0, 1.0, 0.2], dtype=torch.float64)
    x = gaussian_data(n, d, seed=4)

    def model(y, s):
        return -y / (1 + s[:, None] ** 2)

    loss = anneal_dsm_loss(model, x, sigmas, generator=torch.Generator().manual_seed(5))
    c = 1 / (1 + sigmas**2)
    variance = (0.5 * d * c**2).mean() + (0.5 * d * c).var(unbiased=False)
    se = math.sqrt(variance.item() / n)
    assert abs(loss.item() - (0.5 * d * c).mean().item()) < 4 * se


@pytest.mark.parametrize("n_projections", [1, 4])
def test_sliced_score_matching_with_a_linear_score(n_projections):
    """s(x) = -A x: J = E[-v^T A v + 0.5 |A x|^2] = -tr A + 0.5 |A|_F^2.

    Per data point the estimate averages P projections: variance 2 tr(A_s^2) / P for the
    v-term (A_s the symmetric part) plus 0.5 tr((A^T A)^2) for the |s|^2 term.
    """
    n = 40_000
    d = 3
    g = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = gaussian_data(n, d, seed=1)
    loss = sliced_score_matching_loss(lambda y: -y @ a.T, x, n_projections, generator=g)
    a_sym = (a + a.T) / 2
    ata = a.T @ a
    expected = -torch.trace(a) + 0.5 * (a**2).sum()
    variance = 2 * torch.trace(a_sym @ a_sym) / n_projections + 0.5 * torch.trace(ata @ ata)
    assert abs(loss.item() - expected.item()) < 4 * math.sqrt(variance.item() / n)


def test_sliced_score_matching_equals_exact_score_matching_for_a_network():
    """E_v[v^T J v] = tr J: compare with the trace of the autograd Jacobian, point by point."""
    torch.manual_seed(0)
    model = ScoreNet().double()
    x = 3 * gaussian_data(16, 2, seed=2)
    n_projections = 4000
    loss = sliced_score_matching_loss(
        model, x, n_projections, generator=torch.Generator().manual_seed(3)
    )
    jacobians = torch.stack(
        [torch.autograd.functional.jacobian(lambda p: model(p[None])[0], p) for p in x]
    )
    traces = torch.diagonal(jacobians, dim1=1, dim2=2).sum(1)
    exact = (traces + 0.5 * model(x).square().sum(1)).mean()
    sym = (jacobians + jacobians.transpose(1, 2)) / 2
    # the mean of n * P independent v^T J v terms: variance sum_x 2 tr(J_s^2) / P / n^2
    se = math.sqrt((2 * (sym**2).sum()).item() / n_projections) / len(x)
    assert abs(loss.item() - exact.item()) < 4 * se


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda m, x: dsm_loss(m, x, 0.1),
        lambda m, x: sliced_score_matching_loss(m, x, 2),
    ],
)
def test_losses_are_differentiable_in_the_parameters(make_loss):
    model = ScoreNet()
    loss = make_loss(model, torch.randn(32, 2))
    assert loss.dim() == 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_anneal_dsm_loss_is_differentiable_and_reproducible():
    model = NoiseConditionalScoreNet()
    x = torch.randn(32, 2)
    a = anneal_dsm_loss(model, x, model.sigmas, generator=torch.Generator().manual_seed(0))
    b = anneal_dsm_loss(model, x, model.sigmas, generator=torch.Generator().manual_seed(0))
    c = anneal_dsm_loss(model, x, model.sigmas, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    a.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sliced_score_matching_works_under_no_grad():
    with torch.no_grad():
        loss = sliced_score_matching_loss(ScoreNet(), torch.randn(8, 2))
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: dsm_loss(ScoreNet(), torch.randn(4, 2), 0.0), ValueError, "sigma must be > 0"),
        (lambda: dsm_loss(ScoreNet(), torch.randn(4, 2), -1.0), ValueError, "sigma must be > 0"),
        (lambda: dsm_loss(ScoreNet(), torch.randn(4), 1.0), ValueError, r"shape \(n, d\)"),
        (lambda: dsm_loss(lambda y: y[:, :1], torch.randn(4, 2), 1.0), ValueError, "must return"),
        (
            lambda: anneal_dsm_loss(
                NoiseConditionalScoreNet(), torch.randn(4, 2), torch.tensor([1.0, 2.0])
            ),
            ValueError,
            "strictly decreasing",
        ),
        (
            lambda: anneal_dsm_loss(NoiseConditionalScoreNet(), torch.randn(4, 2), []),
            ValueError,
            "non-empty",
        ),
        (
            lambda: sliced_score_matching_loss(ScoreNet(), torch.randn(4, 2), 0),
            ValueError,
            "n_projections",
        ),
        (
            lambda: sliced_score_matching_loss(lambda y: torch.zeros_like(y), torch.randn(4, 2)),
            ValueError,
            "differentiable",
        ),
        (
            lambda: dsm_loss(ScoreNet(), torch.randn(4, 2), 1.0, generator=3),
            TypeError,
            "torch.Generator",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
