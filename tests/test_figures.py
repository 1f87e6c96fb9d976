"""`render --fast` writes every figure, correctly shaped; writes are atomic and deterministic."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_TIMEOUT
from PIL import Image

from ncsn_toy import figures
from ncsn_toy.figures import FIGURES, RenderConfig, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("gif")
    result = subprocess.run(
        [sys.executable, "-m", "ncsn_toy", "render", "--fast", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=HANG_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def frames_of(path):
    with Image.open(path) as im:
        frames = []
        durations = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info.get("duration", 0))
        return frames, durations, im.info.get("loop")


def test_every_figure_is_written_and_reported(rendered):
    out, stdout = rendered
    assert sorted(p.name for p in out.iterdir()) == sorted(FIGURES)
    for name in FIGURES:
        assert str(out / name) in stdout  # each file is listed with its size
    assert "files," in stdout
    assert " s" in stdout.splitlines()[-1]


@pytest.mark.parametrize("name", [n for n in FIGURES if n.endswith(".gif")])
def test_gifs_loop_with_real_frames(rendered, name):
    frames, durations, loop = frames_of(rendered[0] / name)
    assert len(frames) >= 3
    assert loop == 0  # loops forever
    assert min(durations) >= 20  # browsers treat shorter frames as 100 ms
    assert durations[-1] > durations[0]  # the last frame is held longer
    for frame in frames:  # no blank frame: a figure has ink on it, in several colours
        assert frame.std() > 10
        packed = frame[::2, ::2].astype(np.int64) @ np.array([65536, 256, 1])
        assert len(np.unique(packed)) > 5
    assert 350 <= frames[0].shape[0] <= 700


@pytest.mark.parametrize("name", [n for n in FIGURES if n.endswith(".png")])
def test_pngs_have_panel_sized_dimensions(rendered, name):
    with Image.open(rendered[0] / name) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("RGB"))
    assert 350 <= height <= 1300  # one or two rows of ~460 px panels
    assert 400 <= width <= 3000  # one to five panels and a colour bar
    assert pixels.std() > 10


def test_rendering_is_deterministic(tmp_path):
    config = RenderConfig.fast()
    names = ["sampler_comparison.png", "langevin_exact_score.gif"]
    first = render(tmp_path / "a", config, only=names, progress=False)
    second = render(tmp_path / "b", config, only=names, progress=False)
    for (a, _), (b, _) in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_interrupted_render_keeps_the_old_file(tmp_path, monkeypatch):
    config = RenderConfig.fast()
    ((path, _),) = render(tmp_path, config, only=["forward_noising"], progress=False)
    before = path.read_bytes()

    def interrupted(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"GIF89a half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render(tmp_path, config, only=["forward_noising.gif"], progress=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_unknown_figure():
    with pytest.raises(ValueError, match="unknown figure"):
        render("unused", RenderConfig.fast(), only=["nope.gif"], progress=False)
    assert callable(figures.FIGURES["score_error.png"])


def test_committed_figures_are_complete_and_small():
    for name in FIGURES:
        path = ROOT / "gif" / name
        assert path.is_file(), f"{name} is not committed; run `python -m ncsn_toy render`"
        assert path.stat().st_size <= 2 * 1024**2


def test_titles_say_what_they_show(tmp_path, monkeypatch):
    """The one-level ScoreNet is not titled as noise-conditional s(x, sigma); no title shows NaN."""
    from ncsn_toy.figures.plotting import Panel

    titles = []
    original = Panel.set_title

    def record(self, text, *args, **kwargs):
        titles.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Panel, "set_title", record)
    render(
        tmp_path,
        RenderConfig.fast(),
        only=["score_network_training", "noise_conditional_training"],
        progress=False,
    )
    score_net = [t for t in titles if t.startswith("ScoreNet")]
    ncsn = [t for t in titles if t.startswith("NCSN")]
    assert score_net
    assert ncsn
    assert not any("s_θ(x, σ)" in t for t in score_net)
    assert all("s_θ(x, σ)" in t for t in ncsn)
    assert not any("nan" in t.lower() for t in titles)
    assert "untrained" in score_net[0]
