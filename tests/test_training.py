"""Short training runs: the loss goes down, the score error goes the right way, runs repeat."""

import dataclasses
import re

import pytest
import torch

from ncsn_toy import (
    NoiseConditionalScoreNet,
    ScoreNet,
    dsm_loss,
    geometric_sigmas,
    relative_score_error,
    sliced_score_matching_loss,
    two_gaussians,
)
from ncsn_toy.training import (
    TrainConfig,
    TrainingDivergedError,
    seeded_init,
    train_noise_conditional,
    train_score_net,
)

SHORT = TrainConfig(steps=300, batch_size=256, lr=1e-2)


def max_error(model, mixture, sigmas):
    return max(
        relative_score_error(lambda x, s=s: model(x, s), mixture, s, n=4000).overall for s in sigmas
    )


def test_noise_conditional_training_lowers_loss_and_score_error():
    mixture = two_gaussians()
    sigmas = geometric_sigmas(20.0, 1.0, 5)

    def build():
        return NoiseConditionalScoreNet(sigmas=sigmas, sigma_input="log", divide_by_sigma=True)

    before = max_error(seeded_init(SHORT.seed, build), mixture, sigmas.tolist())
    result = train_noise_conditional(mixture, SHORT, seeded_init(SHORT.seed, build), progress=False)
    after = max_error(result.model, mixture, sigmas.tolist())
    losses = torch.tensor(result.losses)
    assert len(losses) == SHORT.steps
    assert losses[-50:].mean() < losses[:50].mean()
    assert after < 0.5 * before  # an untrained network is off by about 100 %


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_score_net_training(objective):
    """The objective goes down, and so does the score error.

    The objective is evaluated on one fixed batch with the same noise before and after (common
    random numbers): the per-step DSM loss at sigma = 0.1 is dominated by its noise term,
    d / (2 sigma^2) = 100, so its raw history cannot show it.
    """
    mixture = two_gaussians()
    config = dataclasses.replace(SHORT, objective=objective, lr=3e-3)
    sigma = config.sigma if objective == "dsm" else 0.0
    x = mixture.sample(20_000, generator=torch.Generator().manual_seed(9))

    def objective_value(model):
        g = torch.Generator().manual_seed(10)
        if objective == "dsm":
            return dsm_loss(model, x, sigma, g).item()
        return sliced_score_matching_loss(model, x, 1, g).item()

    before_model = seeded_init(config.seed, ScoreNet)
    result = train_score_net(mixture, config, progress=False)
    assert objective_value(result.model) < objective_value(before_model)
    before = relative_score_error(before_model, mixture, sigma, n=4000).overall
    assert relative_score_error(result.model, mixture, sigma, n=4000).overall < 0.5 * before


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    mixture = two_gaussians()
    config = TrainConfig(steps=20, batch_size=64)
    state = torch.get_rng_state()
    a = train_noise_conditional(mixture, config, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_noise_conditional(mixture, config, progress=False)
    c = train_noise_conditional(mixture, dataclasses.replace(config, seed=1), progress=False)
    assert a.losses == b.losses
    again = b.model.state_dict().values()
    for (name, p), q in zip(a.model.state_dict().items(), again, strict=True):
        assert torch.equal(p, q), name
    assert a.losses != c.losses


def test_callback_and_ema():
    steps = []
    config = TrainConfig(steps=10, batch_size=32, ema_decay=0.0)
    result = train_noise_conditional(
        two_gaussians(), config, progress=False, callback=lambda step, model: steps.append(step)
    )
    assert steps == list(range(1, 11))
    assert not result.model.training  # returned in eval mode
    # buffer kept exact
    torch.testing.assert_close(result.model.sigmas, geometric_sigmas(20.0, 1.0, 10))


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": 1.5}, TypeError, "batch_size"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr_schedule": "linear"}, ValueError, "lr_schedule"),
        ({"objective": "mle"}, ValueError, "objective"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"sigma": 0.0}, ValueError, "sigma"),
        ({"seed": "0"}, TypeError, "seed"),
    ],
)
def test_bad_config(changes, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**changes)


def test_bad_arguments():
    with pytest.raises(TypeError, match="TrainConfig"):
        train_score_net(two_gaussians(), {"steps": 10})
    with pytest.raises(TypeError, match="GaussianMixture"):
        train_noise_conditional("two", TrainConfig(steps=1))


@pytest.mark.parametrize("lr", [1e4, 1e8])
@pytest.mark.parametrize("objective", ["ncsn", "dsm"])
def test_divergence_raises_naming_the_step_and_the_learning_rate(lr, objective):
    config = TrainConfig(steps=120, batch_size=64, lr=lr)
    train = train_noise_conditional if objective == "ncsn" else train_score_net
    expected = rf"diverged at step \d+ of 120 with learning rate {re.escape(f'{lr:g}')}"
    with pytest.raises(TrainingDivergedError, match=expected):
        train(two_gaussians(), config, progress=False)


def test_divergence_names_the_first_bad_step():
    """A loss that turns NaN at step 73 is reported as step 73 (checks run every 50 steps)."""
    calls = []

    def callback(step, model):
        calls.append(step)
        if step == 72:  # after step 72, poison the next loss through the raw weights
            with torch.no_grad():
                next(iter(trained.parameters())).fill_(float("nan"))

    trained = seeded_init(0, NoiseConditionalScoreNet)
    with pytest.raises(TrainingDivergedError, match="at step 73 of"):
        train_noise_conditional(
            two_gaussians(),
            TrainConfig(steps=200, batch_size=32),
            trained,
            progress=False,
            callback=callback,
        )
    assert max(calls) == 72  # the poisoned network fails at step 73, before its callback
