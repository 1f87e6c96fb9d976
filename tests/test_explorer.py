"""The explorer: its settings-to-result function against the package called directly.

Also its picture, its widget driven programmatically and its command line (the page in a real
browser is tested in test_explorer_browser.py).
"""

import html
import io
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncsn_toy import (
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    energy_distance,
    geometric_sigmas,
    langevin_dynamics,
    load_checkpoint,
    mode_weights,
    target,
)
from ncsn_toy.commands.cli import build_parser, main
from ncsn_toy.commands.explore import NOTEBOOK, explorer_timings, format_timings
from ncsn_toy.ddpm import DDPMSchedule, ddim_sampling, ddim_timesteps, ddpm_sampling, exact_eps
from ncsn_toy.figures import explorer as explorer_module
from ncsn_toy.figures.explore_controls import CountControl
from ncsn_toy.figures.explore_core import Cancelled, ExploreSettings, Networks, explore, samplers
from ncsn_toy.figures.explore_picture import CURVE_INCHES, ExplorePicture
from ncsn_toy.figures.explorer import Explorer, explorer
from ncsn_toy.figures.plotting import DPI
from ncsn_toy.recipes import DEFAULT_CHECKPOINTS, load_or_train

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120  # s; a run here takes well under a second: this only stops a hang
SMALL = {"n_particles": 300, "n_frames": 6}


def direct(s: ExploreSettings, score_fn=None):
    """The same run, written with the package's functions: start, sampler, reference, metrics."""
    mixture = target(s.target)
    score_fn = score_fn or mixture.score
    g = torch.Generator().manual_seed(s.seed)
    low, high = mixture.box()
    x0 = low + (high - low) * torch.rand(s.n_particles, 2, generator=g)
    sigmas = geometric_sigmas(s.sigma_max, s.sigma_min, s.n_levels)
    if s.sampler == "Langevin dynamics":
        x = langevin_dynamics(lambda x: score_fn(x, s.sigma_min), x0, s.step_size, s.n_steps, g)
    elif s.sampler == "annealed Langevin":
        x = annealed_langevin_dynamics(
            score_fn, x0, sigmas, s.step_size, s.n_steps, g, denoise=s.denoise
        )
    else:
        x = consistent_annealed_sampling(score_fn, x0, sigmas, s.step_size, g)
    reference = mixture.sample(s.n_particles, generator=g)
    return x, mode_weights(mixture, x), energy_distance(x, reference)


@pytest.mark.parametrize(
    ("sampler", "changes", "evaluations"),
    [
        ("Langevin dynamics", {"step_size": 0.1, "n_steps": 200}, 200),
        ("annealed Langevin", {"n_levels": 5, "n_steps": 20, "seed": 3}, 100),
        (
            "annealed Langevin",
            {
                "n_levels": 5,
                "n_steps": 20,
                "denoise": True,
                "target": "four_gaussians",
                "sigma_max": 30.0,
            },
            101,
        ),
        ("consistent annealed sampling", {"n_levels": 60}, 60),
    ],
)
def test_explore_matches_the_package_called_directly(sampler, changes, evaluations):
    s = ExploreSettings(sampler=sampler, **SMALL, **changes)
    result = explore(s)
    x, weights, distance = direct(s)
    assert torch.equal(result.samples, x)  # bitwise: same generator, same order of draws
    assert torch.equal(result.weights, weights)
    max_weight_error = (weights - target(s.target).weights).abs().max().item()
    assert result.max_weight_error == pytest.approx(max_weight_error)
    assert result.energy_distance == pytest.approx(distance, rel=1e-12)
    assert result.evaluations == evaluations == samplers()[sampler].evaluations(s)
    assert torch.equal(result.frames[-1], x)
    assert len(result.frames) == s.n_frames
    assert result.steps[0] == 0
    assert result.steps[-1] == evaluations
    assert result.numbers().startswith(f"weights {weights[0]:.3f}/")
    assert len(result.frame_sigmas) == len(result.frames)
    assert result.frame_sigmas[-1] == pytest.approx(s.sigma_min)


def test_explore_with_the_trained_network_matches_the_checkpoint_called_directly():
    s = ExploreSettings(score="trained", n_levels=4, n_steps=10, **SMALL)
    model = load_checkpoint(DEFAULT_CHECKPOINTS / "ncsn_two_gaussians.pt")
    x, _weights, distance = direct(s, model)
    result = explore(s)
    assert torch.equal(result.samples, x)
    assert result.energy_distance == pytest.approx(distance, rel=1e-12)


def test_progress_reports_every_evaluation_and_can_cancel():
    calls = []
    explore(
        ExploreSettings(n_levels=3, n_steps=4, **SMALL),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(i, 12) for i in range(1, 13)]

    def stop_at_five(done, total):
        if done == 5:
            raise Cancelled

    with pytest.raises(Cancelled):
        explore(ExploreSettings(**SMALL), progress=stop_at_five)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"target": "moon"}, "target"),
        ({"sampler": "gibbs"}, "sampler"),
        ({"score": "learned"}, "score"),
        ({"sigma_max": -1.0}, "sigma_max"),
        ({"n_levels": 0}, "n_levels"),
        ({"step_size": float("nan")}, "step_size"),
        ({"seed": -1}, "seed"),
        ({"n_frames": 1}, "n_frames"),
        ({"eta": -0.5}, "eta"),
    ],
)
def test_bad_settings_are_named(changes, words):
    with pytest.raises((ValueError, TypeError), match=words):
        ExploreSettings(**changes)


def test_trained_score_is_offered_only_where_a_checkpoint_exists(tmp_path):
    assert Networks().scores("two_gaussians") == ("exact", "trained")
    assert Networks(tmp_path).scores("two_gaussians") == ("exact",)
    with pytest.raises(FileNotFoundError):
        explore(ExploreSettings(score="trained", **SMALL), networks=Networks(tmp_path))


@pytest.mark.parametrize(
    ("label", "sampler", "options"),
    [
        ("reverse-time SDE", "reverse_sde", {}),
        ("predictor-corrector", "predictor_corrector", {"n_corrector": 2}),
        ("probability flow ODE (Heun)", "probability_flow", {"method": "heun"}),
        ("probability flow ODE (multistep)", "probability_flow", {"method": "multistep"}),
    ],
)
def test_continuous_time_samplers_are_offered(label, sampler, options):
    """Each sampler of ncsn_toy.sde is an entry, started from the prior N(0, sigma_max^2 I).

    Its first frame is drawn at sigma_max, its last at sigma_min, and it costs what
    score_evaluations says.
    """
    from ncsn_toy.sde import score_evaluations

    s = ExploreSettings(
        sampler=label, sigma_max=15.0, sigma_min=0.5, n_levels=7, n_steps=2, **SMALL
    )
    result = explore(s)
    assert result.frame_sigmas[0] == pytest.approx(15.0)
    assert result.frame_sigmas[-1] == pytest.approx(0.5)
    assert result.frames[0].std() > 5  # the prior, not the data's box
    assert result.evaluations == score_evaluations(sampler, 7, **options)
    # its grid has 8 points: no 'level 8/7'
    assert "level" not in result.frame_title(len(result.steps) - 1)


def test_frame_titles_count_the_levels_of_the_langevin_family():
    s = ExploreSettings(sampler="annealed Langevin", n_levels=4, n_steps=3, **SMALL)
    result = explore(s)
    assert "level 1/4, step 0/12" in result.frame_title(0)
    assert "level 4/4, step 12/12" in result.frame_title(len(result.steps) - 1)


SCHEDULE = DDPMSchedule.linear(1000)  # Ho et al.'s, the one the eps-network is trained for


def direct_vp(s: ExploreSettings, eps_fn):
    """The same DDPM or DDIM run, written with the package's functions; and its reference."""
    mixture = target(s.target)
    g = torch.Generator().manual_seed(s.seed)
    start = torch.randn(s.n_particles, 2, generator=g)  # (n, 2): x_T ~ N(0, I)
    if s.sampler == "DDPM":
        x = ddpm_sampling(eps_fn, start, SCHEDULE, g)
    else:
        x = ddim_sampling(eps_fn, start, SCHEDULE, s.n_levels, s.eta, g)
    reference = mixture.sample(s.n_particles, generator=g)
    return x, mode_weights(mixture, x), energy_distance(x, reference)


def trained_eps(x, t):
    with torch.no_grad():
        return load_or_train("ddpm_two_gaussians", progress=False)(x, t)


@pytest.mark.parametrize(
    ("sampler", "score", "changes", "evaluations"),
    [
        ("DDPM", "exact", {}, 1000),  # one evaluation per step of the schedule
        ("DDIM", "exact", {"n_levels": 20}, 20),  # one per step of its subsequence
        ("DDIM", "exact", {"n_levels": 7, "eta": 1.0, "seed": 5}, 7),
        ("DDPM", "trained", {}, 1000),
        ("DDIM", "trained", {"n_levels": 50}, 50),
    ],
)
def test_ddpm_and_ddim_match_the_package_called_directly(sampler, score, changes, evaluations):
    s = ExploreSettings(sampler=sampler, score=score, **SMALL, **changes)
    result = explore(s)
    eps_fn = exact_eps(target(s.target), SCHEDULE) if score == "exact" else trained_eps
    x, weights, distance = direct_vp(s, eps_fn)
    assert torch.equal(result.samples, x)  # bitwise: same generator, same order of draws
    assert torch.equal(result.weights, weights)
    assert result.energy_distance == pytest.approx(distance, rel=1e-12)
    assert result.evaluations == evaluations == samplers()[sampler].evaluations(s)
    assert int(result.steps[-1]) == evaluations
    assert torch.equal(result.frames[-1], x)


@pytest.mark.parametrize(("sampler", "changes"), [("DDPM", {}), ("DDIM", {"n_levels": 20})])
def test_ddpm_frames_carry_the_step_t_of_their_noise_and_say_it(sampler, changes):
    """Frame after k updates: DDPM's particles carry the noise of step T - 1 - k, DDIM's that of
    the k-th step of its subsequence; -1 once clean. The title says t and its VE sigma."""
    s = ExploreSettings(sampler=sampler, **SMALL, **changes)
    result = explore(s)
    if sampler == "DDPM":
        carried = [999 - k for k in range(1001)]
    else:
        carried = [*ddim_timesteps(SCHEDULE, s.n_levels), -1]
    assert result.levels.tolist() == [carried[k] for k in result.steps.tolist()]
    assert result.levels[0] == 999
    assert result.levels[-1] == -1
    assert result.frames[0].std().item() == pytest.approx(1.0, abs=0.1)  # x_T ~ N(0, I)
    for frame in range(len(result.frames) - 1):
        t = int(result.levels[frame])
        sigma = SCHEDULE.sigmas[t].item()
        assert result.frame_sigmas[frame] == pytest.approx(sigma)
        assert result.frame_scales[frame] == pytest.approx(SCHEDULE.scales[t].item())
        title = result.frame_title(frame)
        assert f"{sampler}, exact score: t = {t}, σ = {sigma:.3g}\n" in title
        assert title.endswith("VP coordinates")
    assert result.frame_sigmas[-1] == 0.0
    assert result.frame_scales[-1] == 1.0
    assert "the samples, σ = 0" in result.frame_title(len(result.frames) - 1)
    assert result.frame_title(0).startswith(f"{sampler}, exact score: t = 999, σ = 157\n")


def test_ddpm_frames_are_drawn_over_the_law_of_x_t_with_arrows_minus_eps():
    result = explore(ExploreSettings(sampler="DDPM", **SMALL))
    mixture = target("two_gaussians")
    eps_fn = exact_eps(mixture, SCHEDULE)
    points = torch.tensor([[0.0, 0.0], [1.0, -2.0], [5.0, 5.0]])
    for frame in (0, 3):
        t = int(result.levels[frame])
        law = mixture.perturb(SCHEDULE.scales[t].item(), SCHEDULE.stds[t].item())
        torch.testing.assert_close(result.log_density(points, frame), law.log_prob(points))
        torch.testing.assert_close(result.field(points, frame), -eps_fn(points, t))
    last = len(result.frames) - 1  # clean samples: the data's own law, no noise left to predict
    torch.testing.assert_close(result.log_density(points, last), mixture.log_prob(points))
    assert torch.equal(result.field(points, last), torch.zeros_like(points))


@pytest.mark.parametrize(
    ("sampler", "changes"),
    [("annealed Langevin", {"n_levels": 4, "n_steps": 20}), ("DDPM", {}), ("DDIM", {})],
)
def test_the_weights_along_the_run_say_which_mode_each_particle_lies_in(sampler, changes):
    s = ExploreSettings(sampler=sampler, n_particles=2000, n_frames=8, **changes)
    result = explore(s)
    mixture = target(s.target)
    expected = []
    for frame, particles in enumerate(result.frames):
        scale = 1.0
        if sampler != "annealed Langevin" and result.levels[frame] >= 0:
            scale = SCHEDULE.scales[int(result.levels[frame])].item()  # x_t / sqrt(a_t)
        expected.append(mode_weights(mixture, particles / scale))  # responsibilities under p
    torch.testing.assert_close(result.weights_along, torch.stack(expected))
    assert torch.equal(result.weights_along[-1], result.weights)
    if sampler != "annealed Langevin":
        # x_T / sqrt(a_T) ~ N(0, 157^2 I) is split about evenly by the boundary between the two
        # modes (0.14 off the origin), not by the prior weights 0.2/0.8 that p_sigma would give
        # any cloud: 0.5 within 4 standard errors, 0.5 / sqrt(2000) = 0.011 each
        assert result.weights_along[0, 0].item() == pytest.approx(0.5, abs=4 * 0.5 / 2000**0.5)


def test_the_curve_under_the_picture_is_the_weights_along_the_run_and_marks_the_frame():
    picture = ExplorePicture(grid=9, resolution=40)
    for settings in (
        ExploreSettings(n_levels=3, n_steps=5, **SMALL),
        ExploreSettings(n_levels=3, n_steps=5, seed=1, **SMALL),  # the same axes, new lines
        ExploreSettings(sampler="DDIM", n_levels=12, **SMALL),
        ExploreSettings(target="four_gaussians", sigma_max=30.0, **SMALL),
    ):
        result = explore(settings)
        before = picture.rgb(result, 0)
        after = picture.rgb(result, 2)
        assert np.array_equal(after, ExplorePicture(grid=9, resolution=40).rgb(result, 2))
        steps = result.steps.numpy()
        n_modes = len(result.mixture.weights)
        curves = picture.weight_lines[0::2]  # a line per mode, then its truth (dashed)
        truths = picture.weight_lines[1::2]
        assert len(curves) == len(truths) == n_modes
        for k in range(n_modes):
            assert np.array_equal(curves[k].get_xdata(), steps)
            assert np.array_equal(curves[k].get_ydata(), result.weights_along[:, k].numpy())
            assert truths[k].get_ydata()[0] == pytest.approx(result.mixture.weights[k].item())
        assert list(picture.marker.get_xdata()) == [steps[2], steps[2]]
        labels = [label.get_text() for label in picture.sigma_axis.get_xticklabels()]
        assert labels[0] == f"{result.frame_sigmas[0]:.3g}"
        assert labels[-1] == f"{result.frame_sigmas[-1]:.3g}"
        assert picture.curve.get_xlabel() == "step of the run"
        assert picture.curve.get_ylabel() == "mode weight"
        # the curve's panel (the bottom rows) changed only where the marker moved
        curve_rows = slice(-int(0.9 * CURVE_INCHES * DPI), None)
        changed = np.argwhere((before[curve_rows] != after[curve_rows]).any(axis=-1))
        assert len(changed) > 0
        assert changed[:, 1].max() - changed[:, 1].min() < 0.6 * picture.size()[0]


def test_a_frame_is_the_full_drawing_whatever_was_drawn_before():
    result = explore(ExploreSettings(n_levels=3, n_steps=5, **SMALL))
    picture = ExplorePicture(grid=9, resolution=40)
    # every level, so later frames are drawn over what is left
    for frame in range(len(result.frames)):
        picture.rgb(result, frame)
    for frame in (0, 2, len(result.frames) - 1):
        fresh = ExplorePicture(grid=9, resolution=40).rgb(result, frame)
        assert np.array_equal(picture.rgb(result, frame), fresh)
    blitted = picture.rgb(result, 3)
    for artist in picture.fig.findobj(lambda a: a.get_animated()):
        artist.set_animated(False)
    picture.fig.canvas.draw()  # the whole figure, the plain way
    assert np.array_equal(np.asarray(picture.fig.canvas.buffer_rgba())[..., :3], blitted)
    png = Image.open(io.BytesIO(ExplorePicture().png(result, 0)))
    assert png.format == "PNG"
    assert png.size == picture.size()
    assert not np.array_equal(fresh, blitted)


@pytest.fixture
def box():
    widget = explorer(ExploreSettings(n_levels=4, n_steps=25, **SMALL))
    assert widget.wait(WAIT)
    yield widget
    widget.close()


def without_seconds(numbers: str) -> str:
    return numbers.rsplit(" · ", 1)[0]  # the last field is the wall time


def test_the_first_result_is_shown_before_explorer_returns():
    # no wait(): a page draws the widgets from this state
    widget = explorer(ExploreSettings(**SMALL))
    try:
        assert widget.numbers.value.startswith("weights")
        assert widget.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        widget.close()


def test_widget_is_built_and_shows_the_numbers_and_a_picture(box):
    assert isinstance(box, Explorer)
    assert box.controls["sampler"].description == "sampler"
    assert list(box.controls["sampler"].options) == list(samplers())
    assert box.numbers.value.startswith("weights")
    assert without_seconds(box.numbers.value) == without_seconds(explore(box.settings()).numbers())
    assert box.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert box.frame.max == box.play.max == SMALL["n_frames"] - 1 == box.frame.value


def test_setting_controls_changes_the_numbers_and_the_picture(box):
    numbers = box.numbers.value
    picture = box.picture.value
    # "set sigma_max to 2 and watch the weights go wrong again"
    box.controls["sigma_max"].value = 2.0
    assert box.wait(WAIT)
    assert box.result.settings.sigma_max == 2.0
    assert box.numbers.value != numbers
    assert box.picture.value != picture
    assert without_seconds(box.numbers.value) == without_seconds(explore(box.settings()).numbers())
    box.set(target="four_gaussians", score="trained", n_particles=200)
    assert box.wait(WAIT)
    assert box.result.settings.target == "four_gaussians"
    assert box.result.settings.score == "trained"
    assert len(box.result.weights) == 4
    assert box.message.value == ""


def test_scrubbing_redraws_without_resampling(box):
    result = box.result
    picture = box.picture.value
    box.frame.value = 0
    assert box.result is result
    assert box.picture.value != picture
    assert "step 0" in box.frame_label.value


def test_choosing_a_sampler_loads_its_preset_and_greys_out_what_it_ignores(box):
    box.controls["sampler"].value = "Langevin dynamics"
    assert box.wait(WAIT)
    assert box.controls["n_steps"].value == samplers()["Langevin dynamics"].preset["n_steps"]
    assert box.controls["sigma_max"].disabled
    assert not box.controls["step_size"].disabled
    assert box.result.settings.sampler == "Langevin dynamics"
    assert box.result.evaluations == box.controls["n_steps"].value


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"sigma_min": 30.0}, "sigma_max must be > sigma_min"),
        ({"step_size": 10.0}, "diverged"),
        ({"sampler": "consistent annealed sampling", "n_levels": 3}, "use more noise levels"),
        ({"sampler": "DDIM", "n_levels": 2000}, "at most the schedule's T = 1000 steps"),
    ],
)
def test_bad_settings_show_a_message_and_the_widget_keeps_working(box, bad, words):
    box.set(**bad)
    assert box.wait(WAIT)
    assert words in html.unescape(box.message.value)
    assert "Traceback" not in box.message.value
    assert box.numbers.value == ""
    box.set(sampler="annealed Langevin", sigma_min=1.0, step_size=0.1)
    assert box.wait(WAIT)
    assert box.numbers.value.startswith("weights")
    assert box.message.value == ""


def test_a_newer_request_wins(box):
    shown = []
    box.numbers.observe(lambda change: shown.append(change["new"]), names="value")
    # 4000 network evaluations, seconds: stopped
    box.set(score="trained", n_particles=5000, n_steps=1000)
    box.set(score="exact", n_particles=100)
    assert box.wait(WAIT)
    assert box.result.settings == box.settings()
    assert box.result.settings.n_particles == 100
    assert len(shown) == 1  # the first run never reached the page


def test_closing_cancels_a_run_in_progress():
    box = explorer(ExploreSettings(**SMALL))
    assert box.wait(WAIT)
    calls = []
    original_get = box.networks.get

    def recording_get(name, *network):
        calls.append(name)  # the run has started
        return original_get(name, *network)

    box.networks.get = recording_get
    shown = box.numbers.value
    # 400 000 network evaluations: minutes
    box.set(score="trained", n_particles=5000, n_steps=100_000)
    deadline = time.monotonic() + WAIT
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    box.close()
    box._thread.join(WAIT)
    assert not box._thread.is_alive()  # stopped at its next evaluation, not after minutes
    assert box.numbers.value == shown  # and showed nothing


def test_the_thread_policy_is_refreshed_after_a_run_not_before():
    """Measuring the load sleeps 0.1 s: done while the result is looked at, it delays no update."""
    from ncsn_toy.runtime import ThreadPolicy

    seen = []  # the particles of the result shown when the policy measured again

    class Recording(ThreadPolicy):
        def refresh(self) -> int:
            seen.append(box.result.settings.n_particles)
            return super().refresh()

    box = explorer(ExploreSettings(**SMALL), threads=Recording(1))
    try:
        box.set(n_particles=123)
        assert box.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [123]
    finally:
        box.close()


def test_a_slow_run_shows_progress_and_the_page_stays_responsive(box, monkeypatch):
    # show the bar from the first evaluation
    monkeypatch.setattr(explorer_module, "PROGRESS_SECONDS", 0.0)
    shown = []
    fractions = []
    box.progress.layout.observe(lambda change: shown.append(change["new"]), names="visibility")
    box.progress.observe(lambda change: fractions.append(change["new"]), names="value")
    result = box.result
    picture = box.picture.value
    box.set(score="trained", n_particles=5000, n_steps=1000)  # 4000 network evaluations: seconds
    deadline = time.monotonic() + WAIT
    while not fractions and time.monotonic() < deadline:  # until the run has started
        time.sleep(0.01)
    box.frame.value = 0  # scrubbing the last result works meanwhile
    assert box.picture.value != picture
    assert box.result is result
    assert not box.wait(0.0)  # the slow run is still going
    box.set(score="exact", n_particles=100)
    assert box.wait(WAIT)
    assert "visible" in shown
    assert box.progress.layout.visibility == "hidden"
    assert 0 < fractions[0] < 0.1


def test_small_counts_are_within_reach_of_the_slider_and_any_count_of_the_box(box):
    levels = box.controls["n_levels"]
    assert isinstance(levels, CountControl)
    stops = [value for _, value in levels.slider.options]
    assert stops[:10] == list(range(1, 11))  # every small count is a stop of its own ...
    assert len(stops) <= 30  # ... a few pixels apart on the slider, not 1000 counts on 170 px
    levels.slider.value = 3  # what a drag to the third stop does
    assert box.wait(WAIT)
    assert levels.value == levels.box.value == 3
    assert box.result.settings.n_levels == 3
    assert box.result.evaluations == 3 * box.controls["n_steps"].value
    assert "level 3/3" in box.result.frame_title(len(box.result.frames) - 1)
    levels.box.value = 12  # typed: between two stops
    assert box.wait(WAIT)
    assert box.result.settings.n_levels == 12
    assert levels.slider.value == 10  # the slider stands at the stop below
    box.set(n_steps=1)
    assert box.wait(WAIT)
    assert box.controls["n_steps"].slider.value == box.controls["n_steps"].box.value == 1
    assert box.result.evaluations == 12


def test_ddim_in_the_widget_reads_its_steps_and_eta_and_offers_the_trained_eps_network(box):
    box.controls["sampler"].value = "DDIM"
    assert box.wait(WAIT)
    preset = samplers()["DDIM"].preset
    assert box.result.settings.n_levels == preset["n_levels"] == box.result.evaluations
    assert not box.controls["n_levels"].disabled
    assert not box.controls["eta"].disabled
    assert box.controls["sigma_max"].disabled
    assert box.controls["step_size"].disabled
    assert box.frame_label.value.startswith("the samples, σ = 0")
    assert "VP coordinates" in html.unescape(box.note.value)
    deterministic = box.result.samples
    box.controls["eta"].value = 1.0
    assert box.wait(WAIT)
    assert box.result.settings.eta == 1.0
    assert not torch.equal(box.result.samples, deterministic)  # fresh noise at every step
    assert [k for _, k in box.controls["score"].options] == ["exact", "trained"]
    box.controls["score"].value = "trained"
    assert box.wait(WAIT)
    assert box.result.settings.score == "trained"
    assert box.message.value == ""
    box.controls["target"].value = "four_gaussians"  # no eps-network for it
    assert box.wait(WAIT)
    assert [k for _, k in box.controls["score"].options] == ["exact"]
    assert box.result.settings.score == "exact"
    assert len(box.result.weights) == 4


def test_samplers_from_the_prior_load_sigma_max_800_and_say_why(box):
    box.controls["sampler"].value = "probability flow ODE (multistep)"
    assert box.wait(WAIT)
    assert box.result.settings.sigma_max == 800.0
    assert box.result.settings.sigma_min == 0.2
    note = html.unescape(box.note.value)
    assert "prior N(0, σ_max² I)" in note
    assert "σ_max = 800" in note
    # a trained network is started at its largest training level, not where it never learned
    box.controls["score"].value = "trained"
    assert box.wait(WAIT)
    assert box.result.settings.sigma_max == box.networks.largest_sigma("two_gaussians") == 20.0
    box.controls["sampler"].value = "annealed Langevin"  # the paper's levels again
    assert box.wait(WAIT)
    assert (box.result.settings.sigma_max, box.result.settings.sigma_min) == (20.0, 1.0)
    assert "p_σ at the frame's noise level" in html.unescape(box.note.value)


def test_explore_command_line(capsys):
    # the whole command runs in test_explorer_browser.py; its parsing and checks here
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["explore", "--help"])
    assert "--no-browser" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["explore", "--port", "0"])
    assert "1..65535" in capsys.readouterr().err
    args = parser.parse_args(["explore", "--no-browser"])
    assert args.port is None
    assert args.no_browser
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["explore", "--no-browser", "--port", str(busy.getsockname()[1])]) == 2
    assert "in use" in capsys.readouterr().err


def test_explore_puts_the_signal_handlers_back_when_voila_cannot_start(monkeypatch, capsys):
    import signal

    import ncsn_toy.commands.explore as command

    def cannot_start(*args, **kwargs):
        raise OSError(8, "Exec format error")

    monkeypatch.setattr(command.subprocess, "Popen", cannot_start)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["explore", "--no-browser"]) == 2
    assert "Exec format error" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_notebook_ships_with_the_package_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "explorer()" in "".join(code[-1]["source"])
    package_data = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    assert re.search(rf'^"ncsn_toy.figures" = \[[^]]*"{NOTEBOOK.name}"', package_data, re.MULTILINE)


def test_timings_for_bench_run_and_format():
    rows = explorer_timings(repeats=1, settings=ExploreSettings(n_levels=2, n_steps=5, **SMALL))
    assert [r["target"] for r in rows] == [1.0, 0.1]
    assert all(0 < r["seconds"] <= r["worst"] for r in rows)
    assert format_timings(rows).count("| explorer ") == 2
