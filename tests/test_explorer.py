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
from ncsn_toy.figures import explorer as explorer_module
from ncsn_toy.figures.explore_core import Cancelled, ExploreSettings, Networks, explore, samplers
from ncsn_toy.figures.explore_picture import ExplorePicture
from ncsn_toy.figures.explorer import Explorer, explorer
from ncsn_toy.recipes import DEFAULT_CHECKPOINTS

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
