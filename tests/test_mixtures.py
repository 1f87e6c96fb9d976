"""GaussianMixture against torch.distributions and against its own sampling."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ncsn_toy import GaussianMixture, four_gaussians, mode_weights, two_gaussians
from ncsn_toy.mixtures import _CANCELLATION


def random_mixture(k: int, d: int, seed: int, dtype=torch.float64) -> GaussianMixture:
    """Random weights, means in [-5, 5]^d and well-conditioned full covariances."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.1
    means = 10 * torch.rand(k, d, generator=g, dtype=torch.float64) - 5
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    cov = a @ a.transpose(1, 2) / d + 0.3 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture(weights / weights.sum(), means, cov, dtype=dtype)


def reference(mixture: GaussianMixture, sigma: float) -> MixtureSameFamily:
    """p_sigma built independently from torch.distributions, in float64."""
    d = mixture.dim
    cov = mixture.covariances.double() + sigma**2 * torch.eye(d, dtype=torch.float64)
    return MixtureSameFamily(
        Categorical(probs=mixture.weights.double()),
        MultivariateNormal(mixture.means.double(), covariance_matrix=cov),
    )


def autograd_reference(mixture, x, sigma):
    """log p_sigma, its autograd gradient, and Bayes-rule responsibilities, all in float64."""
    ref = reference(mixture, sigma)
    x = x.double().clone().requires_grad_(True)
    log_p = ref.log_prob(x)
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    component_log_p = ref.component_distribution.log_prob(x[:, None, :])  # (n, K)
    joint = component_log_p + torch.log(mixture.weights.double())
    resp = torch.exp(joint - torch.logsumexp(joint, dim=1, keepdim=True))
    return log_p.detach(), grad, resp.detach()


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("sigma", [0.0, 0.1, 1.0, 20.0])
def test_exact_quantities_match_torch_distributions(k, d, sigma):
    mixture = random_mixture(k, d, seed=100 * k + d)
    x = 8 * torch.randn(64, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    log_p, grad, resp = autograd_reference(mixture, x, sigma)
    # float64 throughout: agreement to round-off of O(1e3)-sized quadratic forms
    torch.testing.assert_close(mixture.log_prob(x, sigma), log_p, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(mixture.score(x, sigma), grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mixture.responsibilities(x, sigma), resp, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.0, 0.1, 1.0, 20.0])
def test_float32_accuracy(sigma):
    mixture64 = random_mixture(3, 2, seed=7)
    mixture32 = random_mixture(3, 2, seed=7, dtype=torch.float32)
    x = 6 * torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    _, grad, _ = autograd_reference(mixture64, x, sigma)
    score32 = mixture32.score(x, sigma)
    assert score32.dtype == torch.float32
    # float32 unit round-off is 6e-8; the quadratic forms here are O(1e2), so each score
    # component carries an absolute error of a few 1e-5 at most, far below 1e-3.
    torch.testing.assert_close(score32.double(), grad, rtol=1e-4, atol=1e-3)
    log_p = reference(mixture64, sigma).log_prob(x.double())
    torch.testing.assert_close(mixture32.log_prob(x, sigma).double(), log_p, rtol=1e-5, atol=1e-4)


def test_float64_input_stays_float64_on_a_float32_mixture():
    x = torch.randn(4, 2, dtype=torch.float64)
    assert two_gaussians().score(x).dtype == torch.float64
    assert two_gaussians().log_prob(x.float()).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sigma", [0.0, 1.0, 20.0])
def test_far_field_is_finite_and_exact(dtype, sigma):
    mixture = random_mixture(3, 2, seed=3, dtype=dtype)
    angles = torch.linspace(0, 2 * math.pi, 17, dtype=dtype)[:-1]
    x = 1e4 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # |x| = 1e4
    score = mixture.score(x, sigma)
    log_p = mixture.log_prob(x, sigma)
    resp = mixture.responsibilities(x, sigma)
    assert torch.isfinite(score).all()
    assert torch.isfinite(log_p).all()
    assert torch.isfinite(resp).all()
    torch.testing.assert_close(resp.sum(dim=1), torch.ones(len(x), dtype=dtype))
    # far away, the score is the score of the most responsible component, -C_k^{-1}(x - mu_k)
    _, grad, _ = autograd_reference(random_mixture(3, 2, seed=3), x.double(), sigma)
    torch.testing.assert_close(score.double(), grad, rtol=1e-4, atol=1e-2)


def far_reference(
    mixture: GaussianMixture, x: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Responsibilities and score of p_sigma at huge x, recomputed independently and exactly.

    log w_k N_k(x) - log w_j N_j(x) for equal covariances C = c I is
    log(w_k / w_j) + (x . (mu_k - mu_j) - (|mu_k|^2 - |mu_j|^2) / 2) / c: linear in x, so Python's
    exact rational arithmetic evaluates it at any magnitude without squaring |x|.
    """
    from fractions import Fraction

    c = Fraction(float(mixture.covariances[0, 0, 0])) + Fraction(sigma) ** 2
    mu = [[Fraction(float(v)) for v in row] for row in mixture.means.double()]
    w = mixture.weights.double().tolist()
    resp = []
    score = []
    for point in x.double().tolist():
        p = [Fraction(v) for v in point]
        # log w_k N_k(p) up to a term shared by every k
        logits = []
        for k in range(len(w)):
            projection = sum(a * b for a, b in zip(p, mu[k], strict=True))
            half_square = sum(b * b for b in mu[k]) / 2
            logits.append(math.log(w[k]) + float((projection - half_square) / c))
        top = max(logits)
        r = [math.exp(v - top) for v in logits]
        r = [v / sum(r) for v in r]
        resp.append(r)
        # the score: -sum_k r_k (p - mu_k) / c
        point_score = []
        for i in range(len(p)):
            pull = sum(Fraction(r[k]) * (p[i] - mu[k][i]) for k in range(len(w)))
            point_score.append(float(-pull / c))
        score.append(point_score)
    return torch.tensor(resp, dtype=torch.float64), torch.tensor(score, dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e6, 1e12, 1e20, 1e35])
@pytest.mark.parametrize("sigma", [0.0, 3.0])
def test_score_and_responsibilities_stay_exact_where_the_squared_distance_overflows(
    dtype, magnitude, sigma
):
    """|x|^2 overflows float32 from |x| ~ 1e19; the responsibilities need only its differences.

    Differences of squared distances are linear in x for equal covariances. Checked against exact
    rational arithmetic, including points on the line where the two modes' log-joints differ by
    log 4 only.
    """
    mixture = two_gaussians(dtype=dtype)
    x = magnitude * torch.tensor(
        [[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-0.6, 0.8], [1.0, 0.0]], dtype=dtype
    )
    resp_ref, score_ref = far_reference(mixture, x, sigma)
    resp = mixture.responsibilities(x, sigma)
    score = mixture.score(x, sigma)
    assert torch.isfinite(resp).all()
    assert torch.isfinite(score).all()
    # the direct formula is used while it leaves at most _CANCELLATION nats of rounding in a
    # log-joint, which moves a responsibility r by at most
    # r (1 - r) _CANCELLATION <= _CANCELLATION / 4
    atol = _CANCELLATION / 4 + 1e-6
    torch.testing.assert_close(resp.double(), resp_ref, rtol=0, atol=atol)
    torch.testing.assert_close(score.double(), score_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        mode_weights(mixture, x).double(), resp_ref.mean(0), rtol=0, atol=atol
    )
    log_p = mixture.log_prob(x, sigma)
    # -inf once the log density is below the dtype's range, never NaN
    assert not torch.isnan(log_p).any()


def test_the_score_beyond_the_dtype_is_a_clear_error():
    # a narrow component
    mixture = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 0.0]], [1e-4, 1.0])
    with pytest.raises(ValueError, match="too far from the data"):
        mixture.score(torch.tensor([[3e38, 0.0]]))


@pytest.mark.parametrize("sigma", [1e200, float("inf"), -1.0])
def test_extreme_sigma_is_a_clear_error(sigma):
    with pytest.raises(ValueError, match="sigma"):
        two_gaussians().score(torch.zeros(1, 2), sigma)
    with pytest.raises(ValueError, match="sigma"):
        two_gaussians().box(sigma=sigma)


def test_huge_sigma_within_range_is_correct():
    """At sigma = 1e100 the score is -(x - mean) / (1 + sigma^2): 0 in float32, tiny in float64."""
    x = torch.tensor([[1e3, -2e3]], dtype=torch.float64)
    expected = -(x - torch.tensor([3.0, 3.0], dtype=torch.float64)) / (1 + 1e200)
    torch.testing.assert_close(two_gaussians(dtype=torch.float64).score(x, 1e100), expected)


def test_isotropic_and_identity_covariances_equal_full_matrices():
    means = [[0.0, 1.0], [3.0, -2.0]]
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    iso = GaussianMixture([0.3, 0.7], means, [2.0, 0.5], dtype=torch.float64)
    full = GaussianMixture(
        [0.3, 0.7],
        means,
        torch.stack([2.0 * torch.eye(2), 0.5 * torch.eye(2)]),
        dtype=torch.float64,
    )
    ident = GaussianMixture([0.3, 0.7], means, dtype=torch.float64)
    ident_full = GaussianMixture(
        [0.3, 0.7], means, torch.eye(2).expand(2, 2, 2), dtype=torch.float64
    )
    for a, b in [(iso, full), (ident, ident_full)]:
        torch.testing.assert_close(a.score(x, 0.5), b.score(x, 0.5))
        torch.testing.assert_close(a.log_prob(x, 0.5), b.log_prob(x, 0.5))
    assert iso.covariances.shape == (2, 2, 2)


def test_score_is_responsibility_weighted_not_prior_weighted():
    """The original notebook's figure averaged component scores with the prior weights: wrong."""
    mixture = two_gaussians(dtype=torch.float64)
    x = torch.tensor([[4.0, 4.0], [-4.0, -6.0], [0.0, 0.0]], dtype=torch.float64)
    component_scores = -(x[:, None, :] - mixture.means)  # (n, K, d), identity covariances
    by_responsibility = (mixture.responsibilities(x)[:, :, None] * component_scores).sum(1)
    by_prior = (mixture.weights[None, :, None] * component_scores).sum(1)
    torch.testing.assert_close(mixture.score(x), by_responsibility)
    # at (-4, -6), next to the (-5, -5) mode, the true field points to that mode (x-component
    # -1) while the prior-weighted one points away, towards (5, 5) (x-component +7)
    assert mixture.score(x)[1, 0] < 0 < by_prior[1, 0]


def test_sample_weights_by_component():
    mixture = two_gaussians()
    n = 200_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2)
    assert x.dtype == torch.float32
    # the modes are 14 standard deviations apart: classifying by responsibility is exact
    # up to a 1e-12 probability, so the share is a Binomial(n, 0.8) proportion.
    share = mixture.responsibilities(x)[:, 1].round().mean().item()
    se = math.sqrt(0.8 * 0.2 / n)  # standard error of the proportion
    assert abs(share - 0.8) < 4 * se


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_moments(seed):
    mixture = random_mixture(3, 2, seed=11 + seed)
    n = 100_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(seed)).double()
    w = mixture.weights.double()
    mu = mixture.means.double()
    cov = mixture.covariances.double()
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    covariance = second - mean[:, None] * mean[None, :]
    # standard errors estimated from the sample: se(mean_i) = sqrt(C_ii / n);
    # se(C_ij) = sqrt(Var[(x_i - m_i)(x_j - m_j)] / n). 5 standard errors each.
    centred = x - x.mean(0)
    products = centred[:, :, None] * centred[:, None, :]  # (n, d, d)
    assert ((x.mean(0) - mean).abs() < 5 * torch.sqrt(torch.diagonal(covariance) / n)).all()
    assert ((products.mean(0) - covariance).abs() < 5 * products.std(0) / math.sqrt(n)).all()


def test_sample_is_reproducible_and_seeded_by_default():
    mixture = four_gaussians()
    a = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    b = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    c = mixture.sample(100, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(mixture.sample(10), mixture.sample(10))  # default generator is seeded


def test_paper_mixtures():
    two = two_gaussians()
    assert two.n_components == 2
    assert two.dim == 2
    torch.testing.assert_close(two.weights, torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(two.means, torch.tensor([[-5.0, -5.0], [5.0, 5.0]]))
    torch.testing.assert_close(two.covariances, torch.eye(2).expand(2, 2, 2))
    low, high = two.box()
    torch.testing.assert_close(low, torch.tensor([-8.0, -8.0]))
    torch.testing.assert_close(high, torch.tensor([8.0, 8.0]))
    four = four_gaussians()
    assert four.n_components == 4
    assert four.dim == 2
    assert len(set(four.weights.tolist())) == 4  # unequal weights
    torch.testing.assert_close(four.weights.sum(), torch.tensor(1.0))


def test_dict_round_trip():
    mixture = random_mixture(3, 2, seed=2)
    again = GaussianMixture.from_dict(mixture.to_dict(), dtype=torch.float64)
    x = torch.randn(8, 2, dtype=torch.float64)
    torch.testing.assert_close(again.score(x, 0.3), mixture.score(x, 0.3))
    assert "K=3" in repr(mixture)
