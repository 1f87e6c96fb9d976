"""Langevin and annealed Langevin dynamics: the paper's Fig. 3, step conventions, contracts."""

import math

import numpy as np
import pytest
import torch

from ncsn_toy import (
    NoiseConditionalScoreNet,
    SamplerDivergedError,
    Trajectory,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    geometric_sigmas,
    langevin_dynamics,
    two_gaussians,
)


def uniform_start(n: int, seed: int, half_width: float = 8.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, 2, generator=g) - 1) * half_width


def share_of_upper_mode(x: torch.Tensor) -> float:
    """Fraction of samples in the (5, 5) mode, classified by responsibility."""
    return (two_gaussians().responsibilities(x)[:, 1] > 0.5).double().mean().item()


# ---------------------------------------------------------------------------- the paper's Fig. 3
N_PARTICLES = 4000
SE = math.sqrt(0.8 * 0.2 / N_PARTICLES)  # standard error of a proportion near 0.8 (0.0063)


def test_langevin_keeps_the_initial_share():
    """Plain Langevin (eps = 0.1, T = 1000) keeps the share of the start, not the weights.

    It cannot cross between modes 14 standard deviations apart, so each particle stays in the
    basin it starts in. The basin boundary is where the responsibilities are equal,
    x + y = -log(4) / 10 = -c; for a start uniform on [-8, 8]^2 the (5, 5) basin holds
    1/2 + (16 c - c^2 / 2) / 256 = 0.5087 of it (not 0.8). Tolerance: 4 standard errors of a
    proportion (measured with 2 x 200,000 particles: 0.5102 and 0.5102, initial basin share
    0.5097).
    """
    mixture = two_gaussians()
    x0 = uniform_start(N_PARTICLES, seed=0)
    x = langevin_dynamics(mixture.score, x0, 0.1, 1000, generator=torch.Generator().manual_seed(1))
    c = math.log(4) / 10
    expected = 0.5 + (16 * c - c**2 / 2) / 256
    se = math.sqrt(expected * (1 - expected) / N_PARTICLES)
    assert abs(share_of_upper_mode(x) - expected) < 4 * se
    assert share_of_upper_mode(x) < 0.8 - 10 * SE  # visibly wrong


def test_annealed_langevin_recovers_the_weights():
    """Annealed Langevin (sigma geometric 20 -> 1, L = 10, T = 100, eps = 0.1) gives 0.8.

    The sampler itself is biased: with these settings and 2 x 200,000 particles it gives
    0.7831 and 0.7814 (standard error 0.0009), i.e. a bias of about -0.018, which we bound by
    0.02. Tolerance: that bias bound plus 4 standard errors of the 4000-particle proportion.
    """
    mixture = two_gaussians()
    x0 = uniform_start(N_PARTICLES, seed=0)
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    x = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 100, generator=torch.Generator().manual_seed(1)
    )
    assert abs(share_of_upper_mode(x) - 0.8) < 0.02 + 4 * SE


# ---------------------------------------------------------------------------- step conventions
def test_langevin_step_convention_via_its_stationary_variance():
    """The step is x <- x + (a / 2) s(x) + sqrt(a) z, seen through its stationary variance.

    On N(0, 1) it is x <- (1 - a / 2) x + sqrt(a) z, an AR(1) chain with stationary variance
    a / (1 - (1 - a/2)^2) = 1 / (1 - a / 4): 1.1429 for a = 0.5 (the convention
    x + a s + sqrt(2a) z would give 1.333). The sample variance of m draws has standard error
    v sqrt(2 / m); 4 of them.
    """
    a = 0.5
    n = 20_000
    x = langevin_dynamics(
        lambda y: -y,
        torch.zeros(n, 2, dtype=torch.float64),
        a,
        200,
        generator=torch.Generator().manual_seed(0),
    )
    v = 1 / (1 - a / 4)
    m = x.numel()
    assert abs(x.var().item() - v) < 4 * v * math.sqrt(2 / m)


def test_annealed_step_sizes_follow_the_paper():
    """Level i steps with alpha_i = eps sigma_i^2 / sigma_L^2, seen with a zero score.

    With a zero score, x_final - x0 = sum_i sum_t sqrt(alpha_i) z: variance T * sum_i alpha_i.
    4 standard errors of a variance.
    """
    sigmas = torch.tensor([4.0, 2.0, 1.0])
    eps = 0.01
    t = 5
    n = 20_000
    calls = []

    def zero_score(x, sigma):
        calls.append(sigma)
        return torch.zeros_like(x)

    x = annealed_langevin_dynamics(
        zero_score,
        torch.zeros(n, 2, dtype=torch.float64),
        sigmas,
        eps,
        t,
        generator=torch.Generator().manual_seed(0),
    )
    assert calls == [4.0] * t + [2.0] * t + [1.0] * t  # Python floats, level by level
    v = t * eps * (sigmas**2 / sigmas[-1] ** 2).sum().item()
    assert abs(x.var().item() - v) < 4 * v * math.sqrt(2 / x.numel())


def test_denoising_step():
    mixture = two_gaussians()
    sigmas = geometric_sigmas(20.0, 1.0, 4)
    x0 = uniform_start(100, seed=3)
    plain = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 5, generator=torch.Generator().manual_seed(0)
    )
    denoised = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 5, denoise=True, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(denoised, plain + 1.0**2 * mixture.score(plain, 1.0))


# ---------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("sampler", ["langevin", "annealed"])
def test_determinism(sampler):
    mixture = two_gaussians()
    x0 = uniform_start(200, seed=0)

    def run(generator=None):
        if sampler == "langevin":
            return langevin_dynamics(mixture.score, x0, 0.1, 20, generator=generator)
        return annealed_langevin_dynamics(
            mixture.score, x0, geometric_sigmas(20.0, 1.0, 3), 0.1, 10, generator=generator
        )

    a = run(torch.Generator().manual_seed(7))
    b = run(torch.Generator().manual_seed(7))
    c = run(torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(run(), run())  # the default generator is seeded


def test_x0_is_not_modified_and_dtype_is_kept():
    x0 = uniform_start(50, seed=0).double()
    before = x0.clone()
    x = langevin_dynamics(two_gaussians().score, x0, 0.1, 5)
    assert torch.equal(x0, before)
    assert x.dtype == torch.float64


def test_no_autograd_graph_with_a_network():
    model = NoiseConditionalScoreNet()
    x = annealed_langevin_dynamics(model, torch.randn(10, 2), model.sigmas, 1e-3, 2)
    assert not x.requires_grad
    assert x.grad_fn is None


def test_recording_frames():
    mixture = two_gaussians()
    sigmas = geometric_sigmas(20.0, 1.0, 3)
    x0 = uniform_start(30, seed=0)
    g = torch.Generator().manual_seed(0)
    out = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 4, generator=g, record=4, denoise=True
    )
    assert isinstance(out, Trajectory)
    assert out.frames.shape == (4, 30, 2)
    assert out.steps.tolist() == [0, 4, 9, 13]  # evenly over 0..3*4+1 (the denoised step)
    assert out.levels.tolist() == [0, 0, 2, 2]
    torch.testing.assert_close(out.frames[0], x0)
    torch.testing.assert_close(out.frames[-1], out.samples)
    plain = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 4, denoise=True, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(plain, out.samples)  # recording changes nothing
    chosen = langevin_dynamics(mixture.score, x0, 0.1, 10, record=[10, 0, 5])
    assert chosen.steps.tolist() == [0, 5, 10]
    assert chosen.frames.shape == (3, 30, 2)


def test_progress_bar(capsys):
    mixture = two_gaussians()
    annealed_langevin_dynamics(
        mixture.score, uniform_start(10, 0), geometric_sigmas(2.0, 1.0, 2), 0.1, 3, progress=True
    )
    assert "annealed Langevin" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("score", "match"),
    [
        (lambda x, s: x * 1e30, r"noise level 1/3 \(sigma=20\), step \d+/5"),
        (lambda x, s: torch.full_like(x, float("nan")), r"noise level 1/3 \(sigma=20\), step 1/5"),
        (
            lambda x, s: torch.full_like(x, float("nan")) if s < 2 else torch.zeros_like(x),
            r"noise level 3/3 \(sigma=1\), step 1/5",
        ),
    ],
)
def test_divergence_raises_and_names_level_and_step(score, match):
    with pytest.raises(SamplerDivergedError, match=match):
        annealed_langevin_dynamics(score, torch.ones(8, 2), torch.tensor([20.0, 5.0, 1.0]), 0.1, 5)
    assert issubclass(SamplerDivergedError, FloatingPointError)


def test_langevin_divergence_names_the_step():
    with pytest.raises(SamplerDivergedError, match=r"step 1/10"):
        langevin_dynamics(lambda x: torch.full_like(x, float("inf")), torch.ones(4, 2), 0.1, 10)


ANNEALED_ARGS = {"sigmas": torch.tensor([2.0, 1.0]), "step_size": 0.1, "n_steps_each": 3}


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"step_size": 0.0}, ValueError, "step_size must be > 0"),
        ({"step_size": -0.1}, ValueError, "step_size must be > 0"),
        ({"step_size": float("nan")}, ValueError, "step_size must be finite"),
        ({"n_steps_each": 0}, ValueError, "n_steps_each must be a positive integer"),
        ({"n_steps_each": 2.5}, TypeError, "n_steps_each must be a positive integer"),
        ({"sigmas": torch.tensor([1.0, 2.0])}, ValueError, "strictly decreasing"),
        ({"sigmas": torch.tensor([2.0, 0.0])}, ValueError, "> 0"),
        ({"sigmas": []}, ValueError, "non-empty"),
        ({"x0": torch.zeros(5)}, ValueError, r"x0 must have shape \(n, d\)"),
        ({"x0": torch.full((3, 2), float("nan"))}, ValueError, "x0 must be finite"),
        ({"x0": [[0.0, 0.0]]}, TypeError, "x0 must be a torch.Tensor"),
        ({"record": 0}, ValueError, "record"),
        ({"record": [0, 99]}, ValueError, r"within 0..6"),
        ({"denoise": 1}, TypeError, "denoise must be a bool"),
        (
            {"score_fn": lambda x, s: x[:, :1]},
            ValueError,
            r"must return a tensor of shape \(3, 2\)",
        ),
        ({"record": "10"}, TypeError, "record"),
        ({"record": [2.5]}, TypeError, "record steps must be integers"),
        ({"record": [True, 2]}, TypeError, "record steps must be integers"),
        ({"record": 1.5}, TypeError, "record"),
        ({"record": {"a": 1}}, TypeError, "record"),
        ({"sigmas": [1e30, 1e-30]}, ValueError, "step_size or a narrower range of sigmas"),
        ({"sigmas": [1e200, 1.0]}, ValueError, "sigmas must be finite"),  # inf in float32
        (
            {"sigmas": torch.tensor([1e200, 1.0], dtype=torch.float64)},
            ValueError,
            r"sigmas must all be > 0 and <= 1e\+150",
        ),
        ({"step_size": 1e300}, ValueError, "step_size"),
        (
            {
                "sigmas": torch.tensor([1.0, 1e-200], dtype=torch.float64),
                "x0": torch.zeros(3, 2, dtype=torch.float64),
            },
            ValueError,
            "step_size or a narrower range of sigmas",
        ),
        (
            {"sigmas": [1e21, 1e20], "step_size": 1e-30, "denoise": True},
            ValueError,
            "noise level 3 .* does not fit",
        ),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_input(changes, error, match):
    kwargs = {
        "score_fn": two_gaussians().score,
        "x0": torch.zeros(3, 2),
        **ANNEALED_ARGS,
        **changes,
    }
    with pytest.raises(error, match=match):
        annealed_langevin_dynamics(**kwargs)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"step_size": 0}, ValueError, "step_size"),
        ({"step_size": 1e300}, ValueError, "step_size"),
        ({"n_steps": np.int64(0)}, ValueError, "n_steps"),
    ],
)
def test_bad_langevin_input(changes, error, match):
    kwargs = {
        "score_fn": two_gaussians().score,
        "x0": torch.zeros(3, 2),
        "step_size": 0.1,
        "n_steps": 3,
        **changes,
    }
    with pytest.raises(error, match=match):
        langevin_dynamics(**kwargs)


@pytest.mark.parametrize("record", [np.int64(3), torch.tensor([0, 2, 3]), range(0, 4, 3), (1,)])
def test_record_accepts_integer_types(record):
    traj = langevin_dynamics(two_gaussians().score, torch.zeros(4, 2), 0.1, 3, record=record)
    expected = {0, 2, 3} if isinstance(record, np.integer) else {int(s) for s in record}
    assert set(traj.steps.tolist()) == expected


@pytest.mark.parametrize("bad_call", [3, 57])
def test_the_score_shape_is_checked_at_every_step(bad_call):
    """A score function that starts returning the wrong shape mid-run is caught, not broadcast."""
    calls = []

    def flaky(x, sigma):
        calls.append(1)
        score = two_gaussians().score(x, sigma)
        return score[:, :1] if len(calls) >= bad_call else score

    with pytest.raises(ValueError, match=r"must return a tensor of shape \(5, 2\), got \(5, 1\)"):
        annealed_langevin_dynamics(flaky, torch.zeros(5, 2), torch.tensor([2.0, 1.0]), 0.1, 40)
    assert len(calls) == bad_call


# ---------------------------------------------------------------- consistent annealed sampling
def test_consistent_annealed_sampling_keeps_the_noise_level_consistent():
    """Each step leaves exactly the next level's noise when the score is exact.

    For data at a point (x = 0), s(x, sigma) = -x / sigma^2 is the exact score of
    N(0, sigma^2 I). Starting from N(0, sigma_1^2 I), each step keeps x ~ N(0, sigma_{i+1}^2 I)
    exactly; the last step adds no noise, leaving x ~ N(0, ((1 - eta) sigma_L)^2 I). 4 standard
    errors of a variance.
    """
    sigmas = geometric_sigmas(10.0, 0.5, 20)
    eta = 0.3
    n = 20_000
    g = torch.Generator().manual_seed(0)
    x0 = 10.0 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    out = consistent_annealed_sampling(
        lambda x, s: -x / s**2, x0, sigmas, eta * 0.5**2, g, record=[0, 10]
    )
    v10 = sigmas[10].item() ** 2  # after 10 steps the noise is sigma_11 (index 10)
    assert abs(out.frames[1].var().item() - v10) < 4 * v10 * math.sqrt(2 / out.frames[1].numel())
    v = ((1 - eta) * 0.5) ** 2
    assert abs(out.samples.var().item() - v) < 4 * v * math.sqrt(2 / out.samples.numel())


def test_consistent_annealed_sampling_recovers_the_weights():
    """Exact score, 100 levels 20 -> 1, eps = 0.1: measured 0.7999 with 3 x 5000 particles.

    Tolerance: a 0.02 bias bound (as for annealed Langevin) plus 4 standard errors.
    """
    mixture = two_gaussians()
    x = consistent_annealed_sampling(
        mixture.score,
        uniform_start(N_PARTICLES, seed=0),
        geometric_sigmas(20.0, 1.0, 100),
        0.1,
        torch.Generator().manual_seed(1),
    )
    assert abs(share_of_upper_mode(x) - 0.8) < 0.02 + 4 * SE


@pytest.mark.parametrize(
    ("sigmas", "step_size", "match"),
    [
        (torch.tensor([2.0, 1.0]), 1.5, r"step_size must be <= sigma_L\^2 = 1"),
        (torch.tensor([20.0, 1.0]), 0.5, r"step_size must be >= 0.95"),
        (torch.tensor([1.0, 2.0]), 0.5, "strictly decreasing"),
    ],
)
def test_consistent_annealed_sampling_bad_input(sigmas, step_size, match):
    with pytest.raises(ValueError, match=match):
        consistent_annealed_sampling(two_gaussians().score, torch.zeros(3, 2), sigmas, step_size)
