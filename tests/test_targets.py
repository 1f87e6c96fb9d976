"""The zoo of named targets: each a valid mixture with the documented modes and weights; options.

Bad options are refused by name.
"""

import math

import pytest
import torch

from ncsn_toy import GaussianMixture
from ncsn_toy.targets import TARGETS, anisotropic, grid, ring, spiral, target, uniform_in_box


@pytest.mark.parametrize("name", TARGETS)
def test_every_target_is_a_valid_2d_mixture(name):
    mixture = target(name)
    assert isinstance(mixture, GaussianMixture)
    assert mixture.dim == 2
    assert mixture.weights.dtype == torch.float32
    assert abs(mixture.weights.double().sum().item() - 1) < 1e-6
    assert bool((mixture.weights > 0).all())
    eigenvalues = torch.linalg.eigvalsh(mixture.covariances.double())
    assert bool((eigenvalues > 0).all())
    x = mixture.sample(100, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(mixture.score(x, 0.5)).all()
    assert target(name, dtype=torch.float64).means.dtype == torch.float64


def test_the_zoo_holds_the_documented_targets():
    assert set(TARGETS) >= {
        "two_gaussians",
        "four_gaussians",
        "ring",
        "grid",
        "spiral",
        "anisotropic",
    }


def test_ring_has_eight_equal_modes_on_a_circle():
    mixture = ring()
    assert mixture.n_components == 8
    torch.testing.assert_close(mixture.weights, torch.full((8,), 1 / 8))
    torch.testing.assert_close(mixture.means.norm(dim=1), torch.full((8,), 10.0))
    angles = torch.atan2(mixture.means[:, 1].double(), mixture.means[:, 0].double()) % (2 * math.pi)
    torch.testing.assert_close(angles, 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8)
    torch.testing.assert_close(mixture.covariances, torch.eye(2).expand(8, 2, 2))


def test_ring_options():
    mixture = ring(n_modes=5, radius=3.0, std=0.5)
    assert mixture.n_components == 5
    torch.testing.assert_close(mixture.means.norm(dim=1), torch.full((5,), 3.0))
    torch.testing.assert_close(mixture.covariances, 0.25 * torch.eye(2).expand(5, 2, 2))


def test_grid_has_twenty_five_equal_modes_on_a_square_grid():
    mixture = grid()
    assert mixture.n_components == 25
    torch.testing.assert_close(mixture.weights, torch.full((25,), 1 / 25))
    ticks = torch.tensor([-12.0, -6.0, 0.0, 6.0, 12.0])
    expected = torch.cartesian_prod(ticks, ticks)[:, [1, 0]]  # x fastest, y from bottom to top
    torch.testing.assert_close(mixture.means, expected)
    options = grid(n_per_side=3, spacing=2.0, std=0.1)
    assert options.n_components == 9
    torch.testing.assert_close(options.means[:, 0].unique(), torch.tensor([-2.0, 0.0, 2.0]))
    torch.testing.assert_close(options.covariances[0], 0.01 * torch.eye(2))


def test_spiral_is_an_equally_spaced_chain_with_growing_weights():
    mixture = spiral()
    k = mixture.n_components
    assert k == 40
    steps = (mixture.means[1:] - mixture.means[:-1]).norm(dim=1)
    assert steps.max() / steps.min() < 1.05  # equal arc length (chords of a gently curved spiral)
    assert bool((mixture.weights[1:] > mixture.weights[:-1]).all())
    ratio = (mixture.weights[-1] / mixture.weights[0]).item()
    assert ratio == pytest.approx(4.0, rel=1e-5)
    radii = mixture.means.norm(dim=1)
    assert radii[0].item() == pytest.approx(2.0, abs=1e-5)
    assert radii[-1].item() == pytest.approx(12.0, abs=1e-5)
    assert bool((radii[1:] > radii[:-1]).all())  # moving outwards along the chain
    # 1.5 turns: the last mode sits at angle 3 pi, i.e. on the negative x axis
    torch.testing.assert_close(mixture.means[-1], torch.tensor([-12.0, 0.0]), atol=1e-4, rtol=0)
    options = spiral(
        n_modes=10, turns=2.0, inner_radius=1.0, outer_radius=5.0, std=0.2, weight_ratio=1.0
    )
    torch.testing.assert_close(options.weights, torch.full((10,), 0.1))
    # 2 whole turns
    torch.testing.assert_close(options.means[-1], torch.tensor([5.0, 0.0]), atol=1e-4, rtol=0)


def test_anisotropic_has_the_documented_condition_number_and_axis():
    mixture = anisotropic()
    assert mixture.n_components == 1
    # as built, in float64
    covariance = torch.tensor(mixture.to_dict()["covariances"][0], dtype=torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    assert (eigenvalues[1] / eigenvalues[0]).item() == pytest.approx(100.0, rel=1e-6)
    assert eigenvalues[1].item() == pytest.approx(25.0, rel=1e-6)
    major = eigenvectors[:, 1] * torch.sign(eigenvectors[0, 1])
    torch.testing.assert_close(
        major, torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)], dtype=torch.float64)
    )
    options = anisotropic(condition_number=4.0, major_std=2.0, angle=0.0)
    torch.testing.assert_close(options.covariances[0], torch.diag(torch.tensor([4.0, 1.0])))


@pytest.mark.parametrize(
    ("name", "options", "error", "argument"),
    [
        ("ring", {"n_modes": 0}, ValueError, "n_modes"),
        ("ring", {"n_modes": 2.5}, TypeError, "n_modes"),
        ("ring", {"radius": -1.0}, ValueError, "radius"),
        ("ring", {"std": float("nan")}, ValueError, "std"),
        ("grid", {"n_per_side": True}, TypeError, "n_per_side"),
        ("grid", {"spacing": 0.0}, ValueError, "spacing"),
        ("spiral", {"turns": -1.0}, ValueError, "turns"),
        ("spiral", {"inner_radius": 5.0, "outer_radius": 4.0}, ValueError, "outer_radius"),
        ("spiral", {"weight_ratio": "big"}, TypeError, "weight_ratio"),
        ("anisotropic", {"condition_number": 0.5}, ValueError, "condition_number"),
        ("anisotropic", {"major_std": 0.0}, ValueError, "major_std"),
        ("anisotropic", {"angle": None}, TypeError, "angle"),
        ("ring", {"colour": "red"}, TypeError, "colour"),
    ],
)
def test_bad_options_name_the_argument(name, options, error, argument):
    with pytest.raises(error, match=argument):
        target(name, **options)


def test_unknown_target():
    with pytest.raises(ValueError, match="unknown target 'moon'"):
        target("moon")
    with pytest.raises(TypeError, match="name"):
        target(3)


def test_zoo_figures_render_in_fast_mode(tmp_path):
    """targets.png and the annealed Langevin GIF of a fitted target, at RenderConfig.fast() size."""
    from PIL import Image

    from ncsn_toy.figures.parts import Context, RenderConfig
    from ncsn_toy.figures.zoo import ZOO_FIGURES, target_figures, targets

    ctx = Context(RenderConfig.fast())
    targets(ctx, tmp_path / "targets.png")
    with Image.open(tmp_path / "targets.png") as im:
        assert im.size[0] > im.size[1] > 350  # three columns, two rows
    ZOO_FIGURES["annealed_langevin_ring.gif"](ctx, tmp_path / "ring.gif")
    with Image.open(tmp_path / "ring.gif") as im:
        assert im.n_frames == ctx.config.n_frames
    assert list(target_figures(["spiral"])) == ["annealed_langevin_spiral.gif"]
    with pytest.raises(ValueError, match="unknown target"):
        target_figures(["moon"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_in_box_is_the_samplers_start(dtype):
    """Uniform over mixture.box(), in the mixture's dtype, seeded.

    The box is [-8, 8]^2 for the paper's two modes.
    """
    mixture = target("two_gaussians", dtype=dtype)
    x = uniform_in_box(mixture, 20_000, torch.Generator().manual_seed(1))
    assert x.shape == (20_000, 2)
    assert x.dtype == dtype
    assert x.min() >= -8
    assert x.max() <= 8
    # each coordinate's mean is 0 +- 16 / sqrt(12 * 20 000) = 0.033 (one SE): 5 SE
    assert x.mean(dim=0).abs().max() < 5 * 16 / math.sqrt(12 * 20_000)
    assert torch.equal(
        uniform_in_box(mixture, 5), uniform_in_box(mixture, 5, torch.Generator().manual_seed(0))
    )
    with pytest.raises(ValueError, match="n must be a positive integer"):
        uniform_in_box(mixture, 0)
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture"):
        uniform_in_box("two_gaussians", 5)
