"""Each metric against a case with a known answer."""

import math

import pytest
import torch

from ncsn_toy import (
    GaussianMixture,
    energy_distance,
    mode_statistics,
    mode_weights,
    relative_score_error,
    two_gaussians,
)


def test_mode_weights_of_exact_samples():
    mixture = two_gaussians()
    n = 50_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(0))
    # the mean responsibility of exact samples is unbiased for w; its standard error is at most
    # that of a Bernoulli(0.8) proportion, sqrt(0.8 * 0.2 / n)
    assert torch.allclose(mode_weights(mixture, x), mixture.weights, atol=4 * math.sqrt(0.16 / n))


def test_mode_weights_of_one_mode_only():
    mixture = two_gaussians()
    x = torch.tensor([[5.0, 5.0], [4.0, 6.0], [6.0, 5.5]])
    torch.testing.assert_close(mode_weights(mixture, x), torch.tensor([0.0, 1.0]))


def test_mode_statistics_of_exact_samples():
    covariances = [[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.5]]]
    mixture = GaussianMixture([0.3, 0.7], [[-6.0, 0.0], [6.0, 2.0]], covariances)
    n = 40_000
    stats = mode_statistics(mixture, mixture.sample(n, generator=torch.Generator().manual_seed(1)))
    # per-mode sample moments from n_k ~ w_k n points: se(mean) = sqrt(C_ii / n_k) and
    # se(C_ij) = sqrt((C_ii C_jj + C_ij^2) / n_k) for Gaussian data; 4 standard errors each
    n_k = mixture.weights * n
    cov = mixture.covariances
    diag = torch.diagonal(cov, dim1=1, dim2=2)
    assert (stats.means - mixture.means).abs().le(4 * torch.sqrt(diag / n_k[:, None])).all()
    se_cov = torch.sqrt((diag[:, :, None] * diag[:, None, :] + cov**2) / n_k[:, None, None])
    assert (stats.covariances - cov).abs().le(4 * se_cov).all()
    torch.testing.assert_close(
        stats.stds, torch.sqrt(torch.diagonal(stats.covariances, dim1=1, dim2=2))
    )


def test_energy_distance_of_point_masses():
    """X = 0 and Y = a almost surely: D^2 = 2|a| - 0 - 0, exactly (the U-statistic is exact)."""
    x = torch.zeros(50, 1)
    y = torch.full((40, 1), 3.0)
    assert energy_distance(x, y) == pytest.approx(6.0)
    assert energy_distance(x, torch.zeros(30, 1)) == pytest.approx(0.0)


def test_energy_distance_of_shifted_gaussians():
    """1-D N(0, 1) against N(mu, 1), whose energy distance has a closed form.

    D^2 = 2 E|N(mu, 2)| - 2 E|N(0, 2)| with
    E|N(m, s^2)| = s sqrt(2/pi) exp(-m^2 / (2 s^2)) + m (1 - 2 Phi(-m / s)).
    Ten independent replicates; tolerance 4 standard errors of their mean (sample std / sqrt(10)),
    which also checks that the U-statistic is unbiased.
    """
    mu = 1.0
    s = math.sqrt(2.0)
    phi = 0.5 * (1 + math.erf(-mu / s / math.sqrt(2)))
    abs_shifted = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * phi)
    exact = 2 * abs_shifted - 2 * s * math.sqrt(2 / math.pi)
    g = torch.Generator().manual_seed(0)
    replicates = []
    for _ in range(10):
        x = torch.randn(800, 1, generator=g)
        y = mu + torch.randn(700, 1, generator=g)
        replicates.append(energy_distance(x, y))
    estimates = torch.tensor(replicates)
    assert abs(estimates.mean().item() - exact) < 4 * estimates.std().item() / math.sqrt(10)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 10.0])
def test_relative_score_error_known_answers(sigma):
    mixture = two_gaussians()

    def scaled(c):
        return lambda x: c * mixture.score(x, sigma)

    exact = relative_score_error(scaled(1.0), mixture, sigma, n=2000)
    assert exact.overall == 0.0
    assert exact.high_density == 0.0
    # || c s - s ||^2 / || s ||^2 = (c - 1)^2 wherever the score is measured
    for c in (0.0, 2.0, 1.5):
        err = relative_score_error(scaled(c), mixture, sigma, n=2000)
        for value in err:
            assert value == pytest.approx((c - 1) ** 2, rel=1e-5)


def test_relative_score_error_separates_high_and_low_density():
    """A model exact within 4 of a mode and zero farther out.

    Inside the 99% region (radius about 3 around the heavy mode, less around the light one) it is
    exact: high_density == 0. Under the data, with r^2 = |x - mu|^2 ~ chi^2_2, the ratio is
    E[r^2; r > 4] / E[r^2] = (16 + 2) e^{-8} / 2 = 0.0030, with a Monte Carlo standard error of
    0.0012 on 20,000 points (second moment (256 + 64 + 8) e^{-8}); 4 of them: < 0.008.
    Outside the region most of the box is farther than 4 from both modes: the ratio is near 1.
    """
    mixture = two_gaussians()

    def near_modes_only(x):
        near = torch.cdist(x, mixture.means).min(dim=1).values < 4.0
        return mixture.score(x) * near[:, None]

    err = relative_score_error(near_modes_only, mixture, 0.0, n=20_000)
    assert err.overall < 0.0030 + 4 * 0.0012
    assert err.high_density == 0.0
    assert err.low_density > 0.9


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: relative_score_error(m.score, m, -1.0), ValueError, "sigma"),
        (lambda m: relative_score_error(m.score, m, 0.0, mass=1.0), ValueError, "mass"),
        (lambda m: relative_score_error(m.score, m, 0.0, n=0), ValueError, "n must be"),
        (lambda m: relative_score_error(lambda x: x[:, :1], m, 0.0), ValueError, "must return"),
        (
            lambda m: energy_distance(torch.zeros(5, 2), torch.zeros(5, 3)),
            ValueError,
            r"shape \(n, 2\)",
        ),
        (lambda m: energy_distance(torch.zeros(1, 2), torch.zeros(5, 2)), ValueError, "at least 2"),
        (lambda m: mode_weights(m, torch.zeros(5, 3)), ValueError, r"shape \(n, 2\)"),
        (
            lambda m: energy_distance(torch.zeros(5, 2), torch.ones(5, 2), chunk=-1),
            ValueError,
            "chunk",
        ),
        (
            lambda m: energy_distance(torch.zeros(5, 2), torch.ones(5, 2), chunk=0),
            ValueError,
            "chunk",
        ),
        (
            lambda m: energy_distance(torch.zeros(5, 2), torch.ones(5, 2), chunk=2.5),
            TypeError,
            "chunk",
        ),
        (lambda m: relative_score_error(m.score, m, 1e200), ValueError, "sigma"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(two_gaussians())


@pytest.mark.parametrize("sigma", [1.0, 5.0, 20.0])
def test_mode_statistics_of_noisy_samples_use_the_responsibilities_of_p_sigma(sigma):
    """Samples of p_sigma have per-mode std sqrt(1 + sigma^2).

    Tolerance: 4 standard errors of a std estimated from the smaller mode's n = 0.2 * 20 000
    points, std / sqrt(2 n) (the other three estimates are more precise).
    """
    mixture = two_gaussians()
    x = mixture.sample(20_000, generator=torch.Generator().manual_seed(0))
    noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    exact = math.sqrt(1 + sigma**2)
    stds = mode_statistics(mixture, noisy, sigma=sigma).stds
    assert (stds - exact).abs().max() < 4 * exact / math.sqrt(2 * 0.2 * 20_000)
    # the mean responsibility is unbiased; its standard error is at most that of a proportion,
    # sqrt(0.2 0.8 / n)
    weights_se = math.sqrt(0.2 * 0.8 / 20_000)
    torch.testing.assert_close(
        mode_weights(mixture, noisy, sigma=sigma), mixture.weights, atol=4 * weights_se, rtol=0
    )


def test_a_side_of_the_region_without_points_is_nan_as_documented():
    """One Gaussian and its 99.9% region: low_density is NaN, the other two are numbers.

    The box (3 std) lies inside the region, so no box point is outside it: nothing to measure
    there (NaN, as the docstring says). The other two measure a 10% short score: 0.01.
    """
    mixture = GaussianMixture([1.0], [[0.0]])
    error = relative_score_error(lambda z: 0.9 * mixture.score(z), mixture, 0.0, n=5000, mass=0.999)
    assert math.isnan(error.low_density)
    assert error.overall == pytest.approx(0.01, rel=1e-5)
    assert error.high_density == pytest.approx(0.01, rel=1e-5)
