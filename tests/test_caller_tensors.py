"""The samplers and the likelihood leave alone what the caller owns: their inputs, and every
tensor a score function returns (a cached tensor, its own input, an expanded view)."""

import pytest
import torch

from ncsn_toy import (
    VESDE,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    geometric_sigmas,
    langevin_dynamics,
    ode_log_likelihood,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
)

SDE = VESDE(0.5, 2.0)
SIGMAS = geometric_sigmas(2.0, 0.5, 4)


def run(name: str, score, x: torch.Tensor) -> torch.Tensor:
    """Sampler ``name`` with ``score(x, sigma)``, from ``x``."""
    generator = torch.Generator().manual_seed(0)
    if name == "langevin":
        return langevin_dynamics(lambda y: score(y, None), x, 0.1, 4, generator)
    if name == "annealed":
        return annealed_langevin_dynamics(score, x, SIGMAS, 0.1, 2, generator, denoise=True)
    if name == "consistent":
        return consistent_annealed_sampling(score, x, SIGMAS, 0.2, generator)
    if name == "reverse_sde":
        return reverse_sde_sampling(score, x, SDE, 4, generator, denoise=True)
    if name == "predictor_corrector":
        return predictor_corrector_sampling(score, x, SDE, 4, generator=generator)
    method = name.removeprefix("probability_flow_")
    return probability_flow_sampling(score, x, SDE, 4, method, denoise=True)


SAMPLERS = [
    "langevin",
    "annealed",
    "consistent",
    "reverse_sde",
    "predictor_corrector",
    "probability_flow_euler",
    "probability_flow_heun",
    "probability_flow_multistep",
]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_cached_score_is_not_written_into(name):
    """The issue's case: [1, -1] returned every time; the probability flow used to scale it in
    place, return [-0.252, 0.252] and leave the cache changed."""
    cache = torch.tensor([[1.0, -1.0]])
    kept = cache.clone()
    out = run(name, lambda x, s: cache, torch.zeros(1, 2))
    expected = run(name, lambda x, s: cache.clone(), torch.zeros(1, 2))
    assert torch.equal(cache, kept)
    assert torch.equal(out, expected)


def test_the_probability_flow_of_a_cached_constant_score_converges_to_the_exact_answer():
    """dx/dsigma = -sigma c from x(2) = 0: x(0.5) = c (2^2 - 0.5^2) / 2 = 1.875 c. With 64 steps
    Euler (first order) is within 0.03 of it (measured 0.0195), Heun and the multistep solver
    (second order) within 1e-3 (measured 7e-5 and 2e-4); a cache scaled in place is far off."""
    cache = torch.tensor([[1.0, -1.0]])
    tolerance = {"euler": 0.03, "heun": 1e-3, "multistep": 1e-3}
    for method, atol in tolerance.items():
        out = probability_flow_sampling(lambda x, s: cache, torch.zeros(1, 2), SDE, 64, method)
        torch.testing.assert_close(out, 1.875 * cache, atol=atol, rtol=0)
    assert torch.equal(cache, torch.tensor([[1.0, -1.0]]))


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_score_that_returns_its_input(name):
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    kept = x0.clone()
    out = run(name, lambda x, s: x, x0)
    expected = run(name, lambda x, s: x.clone(), x0)
    assert torch.equal(x0, kept)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_score_that_returns_an_expanded_view(name):
    """A (1, 2) row expanded to (n, 2): stride 0, so any in-place update would be an error."""
    row = torch.tensor([[0.5, -0.25]])
    out = run(name, lambda x, s: row.expand_as(x), torch.zeros(5, 2))
    expected = run(name, lambda x, s: row.expand_as(x).clone(), torch.zeros(5, 2))
    assert torch.equal(row, torch.tensor([[0.5, -0.25]]))
    assert torch.equal(out, expected)


def test_the_likelihood_leaves_its_input_and_the_score_alone():
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kept = x.clone()
    sde = VESDE(0.5, 20.0)

    def identity(y, sigma):
        return y

    def expanded(y, sigma):
        return y.mean(dim=0, keepdim=True).expand_as(y)

    for score in (identity, expanded):
        out = ode_log_likelihood(score, x, sde, 8)
        expected = ode_log_likelihood(lambda y, s, f=score: f(y, s).clone(), x, sde, 8)
        assert torch.equal(out, expected)
        assert torch.equal(x, kept)
    cache = torch.ones(6, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="differentiable"):
        ode_log_likelihood(lambda y, s: cache, x, sde, 8)
    assert torch.equal(cache, torch.ones(6, 2, dtype=torch.float64))
