"""DDPM and DDIM as the same score under another noising: checked against exact answers."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ncsn_toy import (
    VESDE,
    VPSDE,
    DDPMSchedule,
    EpsilonNet,
    GaussianMixture,
    SamplerDivergedError,
    ddim_sampling,
    ddpm_loss,
    ddpm_sampling,
    exact_eps,
    load_checkpoint,
    ode_log_likelihood,
    save_checkpoint,
    two_gaussians,
)
from ncsn_toy.ddpm import ddim_timesteps, denoised_from_eps, ve_score_fn
from ncsn_toy.likelihood import vp_log_likelihood
from ncsn_toy.training import TrainConfig, train_ddpm

F64 = torch.float64


def gaussian(dtype=F64) -> GaussianMixture:
    """One Gaussian N(mu, Sigma), full covariance: its DDPM chain is affine, so exact."""
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=F64)
    return GaussianMixture([1.0], torch.tensor([[1.5, -1.0]], dtype=F64), cov[None], dtype=dtype)


# ------------------------------------------------------------------------------ the schedule
def test_the_linear_schedule_recomputed():
    schedule = DDPMSchedule.linear()
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    product = 1.0
    for t, beta in enumerate(betas):
        product *= 1 - beta
        assert schedule.alphas_cumprod[t].item() == pytest.approx(product, rel=1e-12)
    assert schedule.sigmas[0].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-9)
    assert bool((schedule.sigmas[1:] > schedule.sigmas[:-1]).all())


@pytest.mark.parametrize(
    ("betas", "error", "match"),
    [
        ([], ValueError, "non-empty"),
        ([0.1, 1.0], ValueError, r"in \(0, 1\)"),
        ([0.1, -0.1], ValueError, r"in \(0, 1\)"),
        ([[0.1]], ValueError, "1-D"),
        ([0.1, float("nan")], ValueError, "finite"),
        ([0.9999] * 200, ValueError, "underflows"),
    ],
)
def test_bad_schedules(betas, error, match):
    with pytest.raises(error, match=match):
        DDPMSchedule(betas)


def test_the_vp_sde_marginal_is_the_integral_of_beta():
    """log scale(t) = -1/2 int_0^t beta; checked against the trapezoid rule on 10^5 points."""
    sde = VPSDE()
    for t in (1e-4, 0.1, 0.5, 1.0):
        grid = torch.linspace(0, t, 100_001, dtype=F64)
        integral = torch.trapezoid(sde.beta(grid), grid).item()
        scale, std = sde.marginal(t)
        assert math.log(scale) == pytest.approx(-0.5 * integral, rel=1e-9)
        assert scale**2 + std**2 == pytest.approx(1.0, abs=1e-15)
        assert sde.sigma(t) == pytest.approx(std / scale)
    scale, std = sde.marginal(torch.tensor([0.0, 1.0], dtype=F64))
    assert std[0].item() == 0.0
    assert VESDE(0.2, 2.0).marginal(1.0) == (1.0, 2.0)


def test_the_discrete_schedule_is_the_vp_sde_at_steps():
    """DDPM's beta_i is about beta((i + 1) / T) / T: log a_t = sum log(1 - beta_i) = -sum beta_i
    - sum beta_i^2 / 2 - ..., while 2 log scale((t + 1) / T) = -int beta. They differ by the
    second-order sum (at most sum beta_i^2, 0.13 at the end) and the Riemann sum's error
    (at most 0.01 here, from beta_i's 999 against T = 1000 and the rectangle rule)."""
    schedule = DDPMSchedule.linear()
    sde = VPSDE()
    for t in (0, 99, 499, 999):
        scale, _ = sde.marginal((t + 1) / 1000)
        second_order = schedule.betas[: t + 1].square().sum().item()
        gap = math.log(schedule.alphas_cumprod[t].item()) - 2 * math.log(scale)
        assert abs(gap) <= second_order + 0.01


# ------------------------------------------------------------------------ the noised mixture
def torch_mixture(mixture: GaussianMixture, scale: float, std: float) -> MixtureSameFamily:
    p = mixture.to_dict()
    cov = scale**2 * torch.tensor(p["covariances"], dtype=F64) + std**2 * torch.eye(2, dtype=F64)
    means = scale * torch.tensor(p["means"], dtype=F64)
    components = MultivariateNormal(means, covariance_matrix=cov)
    return MixtureSameFamily(Categorical(torch.tensor(p["weights"], dtype=F64)), components)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (F64, 1e-10)])
@pytest.mark.parametrize(("scale", "std"), [(1.0, 0.0), (0.3, 0.9), (0.999, 0.05), (0.01, 1.0)])
def test_perturb_against_autograd_of_torch_distributions(dtype, tolerance, scale, std):
    mixture = GaussianMixture(
        [0.3, 0.7],
        torch.tensor([[-2.0, 1.0], [3.0, 0.5]], dtype=F64),
        torch.tensor([[[1.0, 0.3], [0.3, 0.8]], [[0.5, -0.1], [-0.1, 2.0]]], dtype=F64),
        dtype=dtype,
    )
    noised = mixture.perturb(scale, std)
    reference = torch_mixture(mixture, scale, std)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    y = x.clone().requires_grad_(True)
    log_p = reference.log_prob(y)
    (score,) = torch.autograd.grad(log_p.sum(), y)
    ours = noised.score(x.to(dtype)).double()
    torch.testing.assert_close(ours, score, rtol=tolerance, atol=tolerance * score.abs().max())
    torch.testing.assert_close(
        noised.log_prob(x.to(dtype)).double(), log_p.detach(), rtol=tolerance, atol=tolerance
    )


def test_perturb_by_one_and_sigma_is_the_ve_noising():
    p = two_gaussians(dtype=F64)
    x = p.sample(100)
    torch.testing.assert_close(p.perturb(1.0, 0.7).score(x), p.score(x, 0.7))


@pytest.mark.parametrize(("scale", "std"), [(0.0, 1.0), (1.0, -0.1), (float("inf"), 1.0)])
def test_perturb_bad_input(scale, std):
    with pytest.raises(ValueError, match=r"scale|std"):
        two_gaussians().perturb(scale, std)


# ------------------------------------------------------------------------ eps and the score
def test_exact_eps_is_minus_std_times_the_score_and_the_ve_score_in_disguise():
    """eps(x, t) = -std_t grad log p_t(x) = -sigma_t grad log p_sigma_t(x / scale_t).

    (p_t(x) = p_sigma(x / scale) / scale^d, so grad log p_t(x) = grad log p_sigma(x / scale) /
    scale, and std / scale = sigma.)
    """
    p = two_gaussians(dtype=F64)
    schedule = DDPMSchedule.linear()
    eps = exact_eps(p, schedule)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 4
    for t in (0, 250, 999):
        scale = schedule.scales[t].item()
        sigma = schedule.sigmas[t].item()
        ve = -sigma * p.score(x / scale, sigma)
        torch.testing.assert_close(eps(x, t), ve, rtol=1e-9, atol=1e-12)
        # a fractional step equal to an integer one agrees
        torch.testing.assert_close(eps(x, float(t)), eps(x, t), rtol=1e-9, atol=1e-12)
        denoised = denoised_from_eps(x, eps(x, t), scale, schedule.stds[t].item())
        torch.testing.assert_close(denoised, (x / scale) + sigma**2 * p.score(x / scale, sigma))


def test_the_ve_score_of_a_noise_predictor_is_the_ve_score():
    p = two_gaussians(dtype=F64)
    schedule = DDPMSchedule.linear()
    score = ve_score_fn(exact_eps(p, schedule), schedule)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * 4
    for sigma in (0.0101, 0.5, 3.0, 150.0):
        torch.testing.assert_close(score(x, sigma), p.score(x, sigma), rtol=1e-9, atol=1e-12)


def test_ddpm_loss_is_denoising_score_matching_weighted_by_std_squared():
    """With the exact score's eps, 0.5 ||eps - z||^2 = std^2 0.5 ||s + z / std||^2, per sample:
    recomputed here from the same draws of t and z."""
    p = two_gaussians(dtype=F64)
    schedule = DDPMSchedule.linear()
    x = p.sample(4000, generator=torch.Generator().manual_seed(3))
    calls = []

    def eps_model(x_t, t):
        calls.append((x_t, t))
        return torch.stack(
            [exact_eps(p, schedule)(x_t[i : i + 1], int(t[i]))[0] for i in range(len(t))]
        )

    loss = ddpm_loss(eps_model, x, schedule, torch.Generator().manual_seed(4))
    x_t, t = calls[0]
    std = schedule.stds[t][:, None]
    scale = schedule.scales[t][:, None]
    z = (x_t - scale * x) / std
    score = torch.stack(
        [p.perturb(scale[i].item(), std[i].item()).score(x_t[i : i + 1])[0] for i in range(len(t))]
    )
    dsm = (std**2 * 0.5 * (score + z / std).square().sum(dim=1, keepdim=True)).mean()
    torch.testing.assert_close(loss, dsm)


# ------------------------------------------------------------------------------ the samplers
def propagate(mixture: GaussianMixture, schedule: DDPMSchedule, kind: str, n_steps: int = 0):
    """The exact mean (2,) and covariance (2, 2) of DDPM's or DDIM's (eta 0) output for one
    Gaussian from x_T ~ N(0, I): with the exact eps, each step is affine in x plus Gaussian
    noise, x <- A x + b (+ c z), so (m, C) <- (A m + b, A C A^T + c^2 I)."""
    p = mixture.to_dict()
    mu = torch.tensor(p["means"][0], dtype=F64)
    cov = torch.tensor(p["covariances"][0], dtype=F64)
    eye = torch.eye(2, dtype=F64)
    m = torch.zeros(2, dtype=F64)
    c = eye.clone()
    steps = (
        list(reversed(range(schedule.n_steps)))
        if kind == "ddpm"
        else ddim_timesteps(schedule, n_steps)
    )
    for i, t in enumerate(steps):
        a = schedule.alphas_cumprod[t].item()
        # eps(x) = -std grad log p_t(x) = std C_t^{-1} (x - sqrt(a) mu) = E x - E sqrt(a) mu
        c_t = a * cov + (1 - a) * eye
        e = math.sqrt(1 - a) * torch.linalg.inv(c_t)
        if kind == "ddpm":
            beta = schedule.betas[t].item()
            k = beta / math.sqrt(1 - a)
            a_map = (eye - k * e) / math.sqrt(1 - beta)
            b = (k * e @ (math.sqrt(a) * mu)) / math.sqrt(1 - beta)
            noise = beta if t > 0 else 0.0
        else:
            a_s = schedule.alphas_cumprod[steps[i + 1]].item() if i + 1 < len(steps) else 1.0
            # x <- sqrt(a_s) (x - sqrt(1 - a) eps) / sqrt(a) + sqrt(1 - a_s) eps
            k = math.sqrt(1 - a_s) - math.sqrt(a_s) * math.sqrt(1 - a) / math.sqrt(a)
            a_map = math.sqrt(a_s / a) * eye + k * e
            b = -k * e @ (math.sqrt(a) * mu)
            noise = 0.0
        m = a_map @ m + b
        c = a_map @ c @ a_map.T + noise * eye
    return m, c


@pytest.mark.parametrize(("kind", "n_steps"), [("ddpm", 1000), ("ddim", 20), ("ddim", 100)])
def test_one_gaussian_comes_out_with_the_propagated_moments(kind, n_steps):
    """200,000 particles: a sample mean's standard error is sqrt(C_ii / n) and a sample
    covariance's sqrt((C_ii C_jj + C_ij^2) / n) (Gaussian data); 5 standard errors each."""
    mixture = gaussian()
    schedule = DDPMSchedule.linear()
    eps = exact_eps(mixture, schedule)
    x_t = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    if kind == "ddpm":
        x = ddpm_sampling(eps, x_t, schedule, torch.Generator().manual_seed(6))
    else:
        x = ddim_sampling(eps, x_t, schedule, n_steps)
    m, c = propagate(mixture, schedule, kind, n_steps)
    n = len(x)
    se_mean = (c.diagonal() / n).sqrt()
    assert bool(((x.mean(dim=0) - m).abs() <= 5 * se_mean).all())
    se_cov = ((c.diagonal()[:, None] * c.diagonal()[None, :] + c**2) / n).sqrt()
    assert bool(((torch.cov(x.T) - c).abs() <= 5 * se_cov).all())


def test_ddpm_recovers_the_gaussian_and_ddim_converges_at_first_order():
    """The exact output moments (propagated, no sampling): DDPM's 1000 steps give the data's
    mean and covariance to 0.005 (measured 0.003); DDIM is Euler's method, so its covariance
    error shrinks like 1 / n: five times the steps, about a fifth of the error (4 to 6); its
    mean stays 0.011 off at any n, the prior N(0, I) against p_T's mean sqrt(a_T) mu, which a
    deterministic flow carries to the end and DDPM's noise forgets."""
    mixture = gaussian()
    schedule = DDPMSchedule.linear()
    p = mixture.to_dict()
    mu = torch.tensor(p["means"][0], dtype=F64)
    cov = torch.tensor(p["covariances"][0], dtype=F64)
    m, c = propagate(mixture, schedule, "ddpm")
    torch.testing.assert_close(m, mu, atol=0.005, rtol=0)
    torch.testing.assert_close(c, cov, atol=0.005, rtol=0)
    errors = {}
    for n in (20, 100, 1000):
        m, c = propagate(mixture, schedule, "ddim", n)
        errors[n] = (c - cov).abs().max().item()
        torch.testing.assert_close(m, mu, atol=0.015, rtol=0)
    assert 4 < errors[20] / errors[100] < 6
    assert errors[1000] < 0.01


def test_ddim_is_euler_on_the_ve_probability_flow_ode():
    """x_bar = x / sqrt(a), sigma = sqrt(1 - a) / sqrt(a): DDIM (eta 0) is x_bar <- x_bar +
    (sigma_s - sigma_t) eps, Euler on dx_bar/dsigma = -sigma s(x_bar, sigma). Computed here with
    the VE score of the mixture, particle for particle, in float64 to 1e-9 (near the line
    between the modes the flow separates neighbours, so round-off grows a little)."""
    p = two_gaussians(dtype=F64)
    schedule = DDPMSchedule.linear()
    x_t = torch.randn(2000, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    steps = ddim_timesteps(schedule, 25)
    out = ddim_sampling(exact_eps(p, schedule), x_t, schedule, 25)
    x_bar = x_t / schedule.scales[steps[0]].item()
    for i, t in enumerate(steps):
        sigma = schedule.sigmas[t].item()
        following = schedule.sigmas[steps[i + 1]].item() if i + 1 < len(steps) else 0.0
        slope = -sigma * p.score(x_bar, sigma)
        x_bar = x_bar + (following - sigma) * slope
    torch.testing.assert_close(out, x_bar, rtol=0, atol=1e-9)


def test_the_ddpm_step_is_the_reverse_vp_sde_step_to_first_order():
    """x <- (x - beta / std eps) / sqrt(1 - beta) + sqrt(beta) z against Euler-Maruyama on the
    reverse VP SDE, x <- x + beta (x / 2 + score) + sqrt(beta) z, same z: they differ by
    O(beta^2). Halving beta divides the gap by about 4 (between 3.5 and 4.5 here)."""
    p = two_gaussians(dtype=F64)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(8), dtype=F64) * 3
    gaps = []
    for beta in (0.02, 0.01, 0.005):
        std = math.sqrt(0.5)
        scale = math.sqrt(0.5)
        score = p.perturb(scale, std).score(x)
        eps = -std * score
        ddpm = (x - beta / std * eps) / math.sqrt(1 - beta)
        euler = x + beta * (x / 2 + score)
        gaps.append((ddpm - euler).abs().max().item())
    assert 3.5 < gaps[0] / gaps[1] < 4.5
    assert 3.5 < gaps[1] / gaps[2] < 4.5


def test_eps_is_called_once_per_step_and_runs_are_deterministic():
    p = two_gaussians()
    schedule = DDPMSchedule.linear(50)
    calls = []

    def eps(x, t):
        calls.append(t)
        return exact_eps(p, schedule)(x, t)

    x_t = torch.randn(100, 2, generator=torch.Generator().manual_seed(9))
    one = ddpm_sampling(eps, x_t, schedule, torch.Generator().manual_seed(1))
    assert calls == list(reversed(range(50)))
    calls.clear()
    ddim_sampling(eps, x_t, schedule, 10)
    assert calls == ddim_timesteps(schedule, 10)
    assert calls[0] == 49
    assert calls[-1] == 0
    again = ddpm_sampling(eps, x_t, schedule, torch.Generator().manual_seed(1))
    other = ddpm_sampling(eps, x_t, schedule, torch.Generator().manual_seed(2))
    assert torch.equal(one, again)
    assert not torch.equal(one, other)
    eta_one = ddim_sampling(eps, x_t, schedule, 10, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(
        eta_one, ddim_sampling(eps, x_t, schedule, 10, 1.0, torch.Generator().manual_seed(1))
    )
    assert torch.equal(x_t, torch.randn(100, 2, generator=torch.Generator().manual_seed(9)))


def test_recorded_frames():
    schedule = DDPMSchedule.linear(40)
    eps = exact_eps(two_gaussians(), schedule)
    x_t = torch.randn(30, 2, generator=torch.Generator().manual_seed(10))
    trajectory = ddim_sampling(eps, x_t, schedule, 8, record=5)
    assert trajectory.frames.shape == (5, 30, 2)
    assert torch.equal(trajectory.frames[0], x_t)
    assert torch.equal(trajectory.frames[-1], trajectory.samples)
    assert trajectory.levels[-1].item() == 0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda e, x, s: ddpm_sampling(e, x, "linear"),
            TypeError,
            "schedule must be a DDPMSchedule",
        ),
        (lambda e, x, s: ddim_sampling(e, x, s, 51), ValueError, "at most the schedule's 50"),
        (lambda e, x, s: ddim_sampling(e, x, s, 0), ValueError, "n_steps"),
        (lambda e, x, s: ddim_sampling(e, x, s, 10, eta=-1.0), ValueError, "eta"),
        (lambda e, x, s: ddpm_sampling("eps", x, s), TypeError, "eps_fn must be callable"),
        (lambda e, x, s: ddpm_sampling(e, x[0], s), ValueError, "x_T must have shape"),
        (lambda e, x, s: ddpm_sampling(lambda y, t: y[:, :1], x, s), ValueError, "shape"),
        (lambda e, x, s: ddpm_sampling(e, x, s, generator=3), TypeError, "generator"),
    ],
)
def test_bad_sampler_input(call, error, match):
    schedule = DDPMSchedule.linear(50)
    with pytest.raises(error, match=match):
        call(exact_eps(two_gaussians(), schedule), torch.zeros(4, 2), schedule)


def test_a_noise_predictor_that_blows_up_is_the_run_diverging_at_its_step():
    schedule = DDPMSchedule.linear(50)

    def eps(x, t):
        return torch.full_like(x, float("nan")) if t < 10 else torch.zeros_like(x)

    with pytest.raises(SamplerDivergedError, match=r"DDPM diverged .* step t=9 \(41/50\)"):
        ddpm_sampling(eps, torch.zeros(4, 2), schedule)


# ------------------------------------------------------------------------ the noise predictor
def test_epsilon_net_takes_a_step_as_a_number_or_per_point():
    net = EpsilonNet()
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(11))
    per_point = net(x, torch.full((6,), 250))
    torch.testing.assert_close(net(x, 250), per_point)
    torch.testing.assert_close(net(x, 250.0), per_point)
    with pytest.raises(ValueError, match=r"t must be a step in \[0, 999\]"):
        net(x, 1000)
    with pytest.raises(ValueError, match=r"t must be a step"):
        net(x, torch.tensor([0, 1, 2, 3, 4, -1]))
    with pytest.raises(ValueError, match=r"\(n,\) tensor"):
        net(x, torch.zeros(3))


def test_epsilon_net_checkpoint_round_trip(tmp_path):
    net = EpsilonNet(hidden=16, n_steps=50)
    path = save_checkpoint(net, tmp_path / "eps.pt", note="x")
    back = load_checkpoint(path, expect=EpsilonNet)
    x = torch.randn(5, 2)
    torch.testing.assert_close(back(x, 7), net(x, 7))
    assert back.n_steps == 50


def plain_twin(net: EpsilonNet) -> EpsilonNet:
    """The same weights without preconditioning: the layers alone."""
    options = {**net.architecture, "data_std": None}
    twin = EpsilonNet(**options)
    twin.load_state_dict(net.state_dict())
    return twin


@pytest.mark.parametrize("sigma", [0.01, 0.0137, 0.5, 3.0, 157.0])
@pytest.mark.parametrize("per_point", [False, True])
def test_preconditioned_epsilon_net_recomputed(sigma, per_point):
    """eps = std F(c_in x, t / T) (Karras et al. 2022, Table 1, for eps), recomputed from VE's
    sigma: a = 1 / (1 + sigma^2), std = sigma sqrt(a), c_in = 1 / sqrt(a (data_std^2 + sigma^2)),
    at the (fractional) step where the schedule's sigma is ``sigma``."""
    torch.manual_seed(0)
    net = EpsilonNet(data_std=4.0, activation="silu")
    schedule = DDPMSchedule.linear(net.n_steps)
    t = schedule.timestep(min(sigma, schedule.sigmas[-1].item()))
    sigma = math.exp(  # the schedule's own sigma at t: log sigma interpolated between steps
        torch.lerp(
            schedule.sigmas.log()[math.floor(t)],
            schedule.sigmas.log()[min(math.floor(t) + 1, 999)],
            t - math.floor(t),
        ).item()
    )
    a = 1 / (1 + sigma**2)
    x = 3 * torch.randn(7, 2, generator=torch.Generator().manual_seed(1))
    steps = torch.full((7,), t) if per_point else t
    expected = sigma * math.sqrt(a) * plain_twin(net)(x / math.sqrt(a * (16 + sigma**2)), steps)
    torch.testing.assert_close(net(x, steps), expected, rtol=2e-5, atol=1e-7)


def test_preconditioned_epsilon_net_at_integer_steps_uses_the_schedule():
    """At the schedule's steps, std is sqrt(1 - alpha_bar_t) exactly (to float32)."""
    net = EpsilonNet(data_std=2.0, n_steps=100)
    schedule = DDPMSchedule.linear(100)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    for t in (0, 1, 50, 99):
        a = schedule.alphas_cumprod[t].item()
        expected = math.sqrt(1 - a) * plain_twin(net)(x / math.sqrt(a * 4 + 1 - a), t)
        torch.testing.assert_close(net(x, t), expected, rtol=2e-5, atol=1e-7)


def test_preconditioned_epsilon_net_bad_input_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="data_std"):
        EpsilonNet(data_std=0.0)
    with pytest.raises(TypeError, match="data_std"):
        EpsilonNet(data_std="4")
    with pytest.raises(ValueError, match="at most 100000 steps"):
        EpsilonNet(data_std=1.0, n_steps=100_001)
    net = EpsilonNet(hidden=16, n_steps=50, data_std=3.0)
    other_schedule = DDPMSchedule(torch.full((50,), 0.01, dtype=F64))
    with pytest.raises(ValueError, match=r"DDPMSchedule.linear\(50\)"):
        train_ddpm(two_gaussians(), TrainConfig(steps=1), net, other_schedule, progress=False)
    assert set(net.state_dict()) == set(EpsilonNet(hidden=16, n_steps=50).state_dict())
    back = load_checkpoint(save_checkpoint(net, tmp_path / "eps.pt"), expect=EpsilonNet)
    assert back.data_std == 3.0
    x = torch.randn(5, 2)
    torch.testing.assert_close(back(x, 7.5), net(x, 7.5))


# ------------------------------------------------------------------------------ likelihoods
def test_dopri5_reaches_the_exact_log_likelihood_of_one_gaussian():
    """With the exact prior the ODE is the only error: dopri5 at 1e-6 matches log p_0.2 of a
    Gaussian to 1e-4 nats (float64), in at most 300 score evaluations."""
    mixture = gaussian()
    sde = VESDE(0.2, 100.0)
    x = mixture.sample(200, generator=torch.Generator().manual_seed(12))
    calls = []

    def score(y, sigma):
        calls.append(sigma)
        return mixture.score(y, sigma)

    log_p = ode_log_likelihood(
        score,
        x,
        sde,
        method="dopri5",
        rtol=1e-6,
        atol=1e-6,
        prior=lambda y: mixture.log_prob(y, 100.0),
    )
    torch.testing.assert_close(log_p, mixture.log_prob(x, 0.2), atol=1e-4, rtol=0)
    assert len(calls) <= 300
    assert min(calls) == pytest.approx(0.2)
    assert max(calls) == pytest.approx(100.0)


def test_dopri5_needs_no_steps_and_the_grid_solvers_do():
    x = torch.zeros(2, 2)
    with pytest.raises(TypeError, match="give n_steps"):
        ode_log_likelihood(two_gaussians().score, x, VESDE(0.2, 2.0), method="heun")
    with pytest.raises(ValueError, match="rtol"):
        ode_log_likelihood(two_gaussians().score, x, VESDE(0.2, 2.0), method="dopri5", rtol=0.0)


def test_the_likelihood_of_a_ddpm_model_through_the_conversion():
    """log p_0 of the exact noise predictor against the noised mixture's exact log density:
    DDPM's prior N(0, I) is the only error, about KL(p_T || prior) ~ 0.02 nats a point here
    (|E x_bar| sigma_T / (1 + sigma_T^2) ~ 3 sqrt(2) / 157); within 0.05 on average."""
    p = two_gaussians(dtype=F64)
    schedule = DDPMSchedule.linear()
    noised = p.perturb(schedule.scales[0].item(), schedule.stds[0].item())
    x = noised.sample(300, generator=torch.Generator().manual_seed(13))
    log_p = vp_log_likelihood(exact_eps(p, schedule), x, schedule)
    assert (log_p - noised.log_prob(x)).abs().mean().item() < 0.05


def test_the_ddpm_likelihood_runs_in_float32():
    """dopri5's own first step, guessed at sigma_0 = 0.01, asked for sigma ~ 1e16 in float32 and
    failed ("underflow in dt"); it now starts from a hundredth of the interval. Within 0.05
    nats on average of the exact log density, as in float64 (the prior's share, about 0.02)."""
    p = two_gaussians()
    schedule = DDPMSchedule.linear()
    noised = p.perturb(schedule.scales[0].item(), schedule.stds[0].item())
    x = noised.sample(100, generator=torch.Generator().manual_seed(14))
    log_p = vp_log_likelihood(exact_eps(p, schedule), x, schedule)
    assert log_p.dtype == torch.float32
    assert (log_p - noised.log_prob(x)).abs().mean().item() < 0.05
