"""The two score networks: exactly the original notebook's by default; options; sigma handling."""

import pytest
import torch
from torch import nn

from ncsn_toy import NoiseConditionalScoreNet, ScoreNet, geometric_sigmas


def original_network(in_dim: int) -> nn.Sequential:
    """The original notebook's score_network (in_dim=2) / score_network2 (in_dim=3), verbatim."""
    return nn.Sequential(
        nn.Linear(in_dim, 64),
        nn.LogSigmoid(),
        nn.Linear(64, 64),
        nn.LogSigmoid(),
        nn.Linear(64, 64),
        nn.LogSigmoid(),
        nn.Linear(64, 2),
    )


@pytest.mark.parametrize(("model_class", "in_dim"), [(ScoreNet, 2), (NoiseConditionalScoreNet, 3)])
def test_default_is_exactly_the_original_network(model_class, in_dim):
    model = model_class()
    original = original_network(in_dim)
    assert repr(model.net) == repr(original)
    n_parameters = sum(p.numel() for p in original.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_parameters
    model.net.load_state_dict(original.state_dict())  # the original weights load as they are


def test_score_net_matches_the_original_forward():
    torch.manual_seed(0)
    model = ScoreNet()
    original = original_network(2)
    model.net.load_state_dict(original.state_dict())
    x = torch.randn(10, 2)
    torch.testing.assert_close(model(x), original(x))


@pytest.mark.parametrize("sigma_kind", ["float", "0-d", "(n,)"])
def test_noise_conditional_matches_the_original_concatenation(sigma_kind):
    """Folding sigma into the first bias gives the numbers of the original torch.cat input."""
    torch.manual_seed(0)
    model = NoiseConditionalScoreNet()
    original = original_network(3)
    model.net.load_state_dict(original.state_dict())
    x = 5 * torch.randn(50, 2)
    sigma = {"float": 2.5, "0-d": torch.tensor(2.5), "(n,)": torch.full((50,), 2.5)}[sigma_kind]
    expected = original(torch.cat([x, torch.full((50, 1), 2.5)], dim=1))
    # float32 sums in another order: agreement to a few ulps of O(1) activations
    torch.testing.assert_close(model(x, sigma), expected, rtol=1e-5, atol=1e-5)


def test_per_sample_sigmas_equal_one_call_per_sigma():
    model = NoiseConditionalScoreNet(sigma_input="log", divide_by_sigma=True)
    x = torch.randn(6, 2)
    sigmas = torch.tensor([20.0, 20.0, 3.0, 3.0, 1.0, 1.0])
    together = model(x, sigmas)
    for i in range(6):
        torch.testing.assert_close(
            together[i : i + 1], model(x[i : i + 1], float(sigmas[i])), rtol=1e-5, atol=1e-6
        )


def test_sigma_options_change_the_input_and_the_output():
    torch.manual_seed(0)
    raw = NoiseConditionalScoreNet()
    log = NoiseConditionalScoreNet(sigma_input="log")
    divided = NoiseConditionalScoreNet(divide_by_sigma=True)
    log.load_state_dict(raw.state_dict())
    divided.load_state_dict(raw.state_dict())
    x = torch.randn(8, 2)
    torch.testing.assert_close(log(x, 4.0), raw(x, torch.log(torch.tensor(4.0)).item()))
    torch.testing.assert_close(divided(x, 4.0), raw(x, 4.0) / 4.0)


def test_width_depth_activation_options():
    model = ScoreNet(hidden=32, n_hidden_layers=2, activation="silu")
    layers = list(model.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    assert layers[0].out_features == 32
    assert model.architecture == {
        "dim": 2,
        "hidden": 32,
        "n_hidden_layers": 2,
        "activation": "silu",
    }
    assert ScoreNet(dim=3)(torch.zeros(4, 3)).shape == (4, 3)


def test_sigmas_buffer_defaults_to_the_paper_and_is_saved():
    model = NoiseConditionalScoreNet()
    torch.testing.assert_close(model.sigmas, geometric_sigmas(20.0, 1.0, 10))
    assert "sigmas" in model.state_dict()
    custom = NoiseConditionalScoreNet(sigmas=torch.tensor([3.0, 2.0, 1.0]))
    custom.load_state_dict(
        NoiseConditionalScoreNet(sigmas=torch.tensor([5.0, 4.0, 0.5])).state_dict()
    )
    torch.testing.assert_close(custom.sigmas, torch.tensor([5.0, 4.0, 0.5]))


def test_double_precision_model():
    model = NoiseConditionalScoreNet().double()
    out = model(torch.randn(3, 2, dtype=torch.float64), 1.0)
    assert out.dtype == torch.float64


def test_gradients_flow_to_parameters():
    model = NoiseConditionalScoreNet()
    model(torch.randn(5, 2), torch.rand(5) + 0.5).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden": 0}, ValueError, "hidden"),
        ({"n_hidden_layers": 1.5}, TypeError, "n_hidden_layers"),
        ({"activation": "gelu!"}, ValueError, "activation"),
        ({"sigma_input": "sqrt"}, ValueError, "sigma_input"),
        ({"divide_by_sigma": "yes"}, TypeError, "divide_by_sigma"),
        ({"sigmas": torch.tensor([1.0, 2.0])}, ValueError, "strictly decreasing"),
        ({"sigmas": torch.tensor([])}, ValueError, "non-empty"),
        ({"sigmas": torch.tensor([2.0, -1.0])}, ValueError, "> 0"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        NoiseConditionalScoreNet(**kwargs)


@pytest.mark.parametrize(
    ("x", "sigma", "error", "match"),
    [
        (torch.zeros(4, 3), 1.0, ValueError, r"shape \(n, 2\)"),
        (torch.zeros(4), 1.0, ValueError, "shape"),
        ([[0.0, 0.0]], 1.0, TypeError, "torch.Tensor"),
        (torch.zeros(4, 2, dtype=torch.float64), 1.0, TypeError, "float64"),
        (torch.full((4, 2), float("nan")), 1.0, ValueError, "finite"),
        (torch.zeros(4, 2), -1.0, ValueError, "sigma must be >= 0"),
        (torch.zeros(4, 2), torch.ones(3), ValueError, r"\(n,\) tensor with n = 4"),
        (torch.zeros(4, 2), torch.tensor([1.0, 1.0, -1.0, 1.0]), ValueError, "every sigma"),
        (torch.zeros(4, 2), "big", TypeError, "real number"),
        (torch.zeros(4, 2), True, TypeError, "real number"),
        (
            torch.zeros(4, 2),
            torch.ones(4, dtype=torch.bool),
            TypeError,
            "real numbers, got dtype torch.bool",
        ),
        (torch.zeros(4, 2), 1e200, ValueError, r"sigma must be <= 1e\+150"),
        (
            torch.zeros(4, 2),
            torch.full((4,), 1e200, dtype=torch.float64),
            ValueError,
            r"<= 1e\+150",
        ),
    ],
)
def test_bad_forward_input(x, sigma, error, match):
    with pytest.raises(error, match=match):
        NoiseConditionalScoreNet()(x, sigma)


def test_zero_sigma_is_rejected_where_it_cannot_work():
    x = torch.zeros(2, 2)
    NoiseConditionalScoreNet()(x, 0.0)  # raw input: sigma = 0 is a valid input value
    for model in (
        NoiseConditionalScoreNet(sigma_input="log"),
        NoiseConditionalScoreNet(divide_by_sigma=True),
    ):
        with pytest.raises(ValueError, match="> 0"):
            model(x, 0.0)


def test_data_std_scales_the_input():
    """data_std = c feeds x / sqrt(sigma^2 + c^2): the same weights on pre-scaled points."""
    torch.manual_seed(0)
    scaled = NoiseConditionalScoreNet(sigma_input="log", data_std=10.0)
    plain = NoiseConditionalScoreNet(sigma_input="log")
    plain.load_state_dict(scaled.state_dict())
    x = 10 * torch.randn(8, 2)
    for sigma in (0.5, torch.tensor([0.5] * 8)):
        factor = (0.5**2 + 10.0**2) ** -0.5
        torch.testing.assert_close(scaled(x, sigma), plain(x * factor, sigma), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="data_std"):
        NoiseConditionalScoreNet(data_std=0.0)
