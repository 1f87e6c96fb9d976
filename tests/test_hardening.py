"""Bad input found by probing the whole API: each kind gets a clear error, quickly, and no NaN."""

import math

import pytest
import torch
from conftest import run_command

from ncsn_toy import (
    VESDE,
    GaussianMixture,
    NoiseConditionalScoreNet,
    SamplerDivergedError,
    ScoreNet,
    anneal_dsm_loss,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    dsm_loss,
    energy_distance,
    geometric_sigmas,
    langevin_dynamics,
    load_checkpoint,
    mode_weights,
    ode_log_likelihood,
    predictor_corrector_sampling,
    probability_flow_sampling,
    relative_score_error,
    reverse_sde_sampling,
    save_checkpoint,
    two_gaussians,
)
from ncsn_toy.checkpoints import _digest
from ncsn_toy.networks import NonFiniteOutputError
from ncsn_toy.training import TrainConfig, seeded_init

P = two_gaussians()
X0 = torch.zeros(4, 2)
SIGMAS = torch.tensor([2.0, 1.0])


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def cyclic() -> list:
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        # the wrong kind of score function, or none
        (lambda: langevin_dynamics(None, X0, 0.1, 3), TypeError, "score_fn must be callable"),
        (
            lambda: annealed_langevin_dynamics(ScoreNet(), X0, SIGMAS, 0.1, 3),
            TypeError,
            "ScoreNet, which takes no sigma",
        ),
        (
            lambda: langevin_dynamics(NoiseConditionalScoreNet(), X0, 0.1, 3),
            TypeError,
            "needs a sigma",
        ),
        (lambda: anneal_dsm_loss(ScoreNet(), X0, SIGMAS), TypeError, "model is a ScoreNet"),
        (
            lambda: langevin_dynamics(lambda x: torch.complex(x, x), X0, 0.1, 3),
            TypeError,
            "floating-point",
        ),
        (lambda: mode_weights(None, X0), TypeError, "mixture must be a GaussianMixture"),
        (
            lambda: relative_score_error(P.score, "P", 0.0),
            TypeError,
            "mixture must be a GaussianMixture",
        ),
        # numbers beyond what the dtype holds, checked after every cast
        (
            lambda: GaussianMixture([1.0], [[1e300, 0.0]]),
            ValueError,
            "means do not fit in torch.float32",
        ),
        (
            lambda: GaussianMixture([1.0], [[0.0, 0.0]], [1e300]),
            ValueError,
            "covariances do not fit",
        ),
        (
            lambda: GaussianMixture([1.0], [[0.0, 0.0]], [1e-80]),
            ValueError,
            "covariances are too small",
        ),
        (
            lambda: GaussianMixture([True, False], [[0.0], [1.0]]),
            TypeError,
            "weights must hold real numbers",
        ),
        (lambda: P.box(n_std=1e39), ValueError, "n_std=1e"),
        (lambda: geometric_sigmas(1e100, 1.0, 2), ValueError, "sigma_max"),
        (lambda: geometric_sigmas(1.0, 1e-100, 2), ValueError, "sigma_min"),
        (lambda: geometric_sigmas(20, 1, 10, dtype="float64"), TypeError, "dtype"),
        (
            lambda: NoiseConditionalScoreNet(
                sigmas=torch.tensor([1.0, 1 - 1e-12], dtype=torch.float64)
            ),
            ValueError,
            "strictly decreasing",
        ),
        (lambda: dsm_loss(ScoreNet(), X0, 1e-30), ValueError, "sigma must be between"),
        (lambda: dsm_loss(ScoreNet(), X0, 1e200), ValueError, "sigma must be between"),
        (lambda: relative_score_error(P.score, P, 1e100), ValueError, "sigma must be between"),
        # networks: a NaN never leaves them silently
        (
            lambda: NoiseConditionalScoreNet()(X0, 1e39),
            NonFiniteOutputError,
            "returned NaN or infinite",
        ),
        (
            lambda: NoiseConditionalScoreNet(sigma_input="log", divide_by_sigma=True)(X0, 1e-300),
            NonFiniteOutputError,
            "returned NaN or infinite",
        ),
        (
            lambda: seeded_init(0, ScoreNet)(torch.full((2, 2), 3e38)),
            NonFiniteOutputError,
            "returned NaN or infinite",
        ),
        (lambda: NoiseConditionalScoreNet(data_std=1e300), ValueError, "data_std must be between"),
        (lambda: ScoreNet(activation=["tanh"]), ValueError, "activation"),
        (
            lambda: ScoreNet(n_hidden_layers=10**7, hidden=1),
            ValueError,
            "n_hidden_layers must be at most",
        ),
        # sizes that would hang
        (
            lambda: langevin_dynamics(P.score, X0, 0.1, 5, record=range(10**10)),
            ValueError,
            "record steps",
        ),
        (lambda: TrainConfig(steps=10**30), ValueError, "steps must be at most"),
        # paths
        (lambda: save_checkpoint(ScoreNet(), None), TypeError, "path must be"),
        (lambda: load_checkpoint(None), TypeError, "path must be"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match):
    """Refused before any work: the sizes that would hang are checked first.

    No timing here: a hang would show as a suite that never ends, and CI stops one.
    """
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"t": torch.eye(2).to_sparse()}, r"metadata\['t'\]"),
        ({"t": torch.empty(2, device="meta")}, r"metadata\['t'\]"),
        ({"deep": nested(200)}, r"metadata\['deep'\]"),
        ({"loop": cyclic()}, r"metadata\['loop'\]"),
    ],
)
def test_metadata_that_cannot_be_stored_names_its_key(tmp_path, metadata, where):
    with pytest.raises(TypeError, match=where):
        save_checkpoint(ScoreNet(), tmp_path / "m.pt", **metadata)
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_could_not_be_rebuilt_is_not_saved_over_a_good_file(tmp_path):
    path = save_checkpoint(NoiseConditionalScoreNet(), tmp_path / "m.pt")
    before = path.read_bytes()
    broken = NoiseConditionalScoreNet()
    # increasing levels: no NoiseConditionalScoreNet takes them
    broken.sigmas.copy_(broken.sigmas.flip(0))
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        save_checkpoint(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_crafted_state_key_that_is_not_a_string(tmp_path):
    path = save_checkpoint(ScoreNet(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"][0] = payload["state_dict"].pop("net.0.bias")
    payload["sha256"] = _digest(payload)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="state keys must be strings"):
        load_checkpoint(path)


def test_data_std_far_beyond_sigma_stays_finite():
    """x / sqrt(sigma^2 + data_std^2) uses hypot: no overflow of the squares (1e36 in float32)."""
    model = NoiseConditionalScoreNet(data_std=1e18)
    out = model(X0, 1.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(model(X0, torch.ones(4)), out)


def test_a_zero_weight_component_far_away():
    mixture = GaussianMixture([0.0, 1.0], torch.zeros(2, 1, dtype=torch.float64), [4.0, 1.0])
    x = torch.tensor([[1e160]], dtype=torch.float64)
    torch.testing.assert_close(
        mixture.responsibilities(x), torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    )
    assert not torch.isnan(mixture.log_prob(x)).any()


@pytest.mark.parametrize(("shift", "scale"), [(1e8, 1.0), (0.0, 1e160), (-1e8, 1e-100)])
def test_energy_distance_is_shift_and_scale_exact(shift, scale):
    """D^2(a (x + b), a (y + b)) = a D^2(x, y), to the digits the shifted samples still carry.

    Formed on centred and scaled samples, it keeps those digits (a shift of 1e8 leaves 8 of
    float64's 16).
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g, dtype=torch.float64)
    y = torch.randn(300, 2, generator=g, dtype=torch.float64) + 0.3
    moved = energy_distance(scale * (x + shift), scale * (y + shift))
    assert math.isfinite(moved)
    assert moved / scale == pytest.approx(energy_distance(x, y), rel=1e-6)


def test_a_strided_start_gives_the_same_samples():
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    strided = x0.T.contiguous().T  # the same values, column-major
    a = langevin_dynamics(P.score, x0, 0.1, 5, torch.Generator().manual_seed(2))
    b = langevin_dynamics(P.score, strided, 0.1, 5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["render", "--fast", "--only", "score_field_mixture", "--threads", "100000"], "at most"),
        (["train", "--steps", "1000000000000000000000000000000"], "--steps"),
    ],
)
def test_absurd_numbers_on_the_command_line(args, fragment):
    result = run_command(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_a_folder_where_a_file_goes_is_refused_before_any_work(tmp_path):
    (tmp_path / "score_field_mixture.png").mkdir()
    result = run_command(
        "render", "--fast", "--only", "score_field_mixture", "--out", str(tmp_path)
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "score_field_mixture.png") in result.stderr
    (tmp_path / "ncsn_two_gaussians.pt").mkdir()
    result = run_command(
        "train", "--only", "ncsn_two_gaussians", "--out", str(tmp_path), "--overwrite"
    )
    assert result.returncode == 2
    assert "is a folder" in result.stderr
    assert "training" not in result.stderr  # refused before training started


def test_an_unreadable_checkpoint_is_one_line(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("score_net_two_gaussians", "ncsn_two_gaussians"):
        (folder / f"{name}.pt").write_bytes(b"garbage\nwith\nlines")
    result = run_command("reproduce", "--fast", "--no-zoo", "--checkpoints", str(folder))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert str(folder) in errors[0]


def _overflowing(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    # what a network does on points that ran away
    raise NonFiniteOutputError("the network overflowed")


@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("Langevin dynamics", lambda: langevin_dynamics(lambda x: _overflowing(x), X0, 0.1, 3)),
        (
            "annealed Langevin dynamics",
            lambda: annealed_langevin_dynamics(_overflowing, X0, SIGMAS, 0.1, 3),
        ),
        (
            "consistent annealed sampling",
            lambda: consistent_annealed_sampling(_overflowing, X0, SIGMAS, 0.5),
        ),
        ("reverse SDE", lambda: reverse_sde_sampling(_overflowing, X0, VESDE(0.2, 2.0), 3)),
        (
            "predictor-corrector",
            lambda: predictor_corrector_sampling(_overflowing, X0, VESDE(0.2, 2.0), 3),
        ),
        (
            "probability flow",
            lambda: probability_flow_sampling(_overflowing, X0, VESDE(0.2, 2.0), 3),
        ),
        ("ODE log-likelihood", lambda: ode_log_likelihood(_overflowing, X0, VESDE(0.2, 2.0), 3)),
    ],
)
def test_a_network_that_overflows_mid_run_is_the_run_diverging(name, run):
    """The sampler reports it: SamplerDivergedError, naming itself and the step.

    The network's error is its cause.
    """
    with pytest.raises(SamplerDivergedError, match=name) as info:
        run()
    assert "step 1/" in str(info.value)
    assert isinstance(info.value.__cause__, NonFiniteOutputError)


@pytest.mark.parametrize(
    ("calls", "where"),
    [
        (1, "the update of step 1/3"),
        (2, "the Euler point of step 1/3"),
        (3, "the update of step 2/3"),
    ],
)
def test_a_network_overflow_in_the_probability_flow_names_the_evaluation(calls, where):
    """Heun evaluates at a step's start, then at its Euler point: the overflowing call is named."""
    count = []

    def overflows_at_call(x: torch.Tensor, sigma: float) -> torch.Tensor:
        count.append(sigma)
        return _overflowing(x) if len(count) == calls else -x / (1 + sigma**2)

    with pytest.raises(SamplerDivergedError, match=where):
        probability_flow_sampling(overflows_at_call, X0, VESDE(0.2, 2.0), 3)


def test_a_real_network_overflowing_in_langevin_names_the_step():
    # finite, but beyond what the network's layers can carry in float32
    start = torch.full((4, 2), 3e38)
    with pytest.raises(SamplerDivergedError, match="at step 1/2") as info:
        langevin_dynamics(seeded_init(0, ScoreNet), start, 0.1, 2)
    assert isinstance(info.value.__cause__, NonFiniteOutputError)


def test_more_frames_than_states_records_every_state_once():
    """record=F beyond the run's T + 1 states keeps each state once (fast even for F = 10**9)."""
    run = langevin_dynamics(P.score, X0, 0.1, 5, record=10**9)
    assert run.steps.tolist() == [0, 1, 2, 3, 4, 5]
