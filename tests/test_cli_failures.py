"""The command line when something goes wrong: SIGTERM, a full disk, empty or bad paths, bad files.

Each case ends in one line on stderr and a known exit status (2 for what was asked, 143 for
SIGTERM), and leaves no temporary file and no half-written one behind.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import HANG_TIMEOUT, ROOT, run_command
from test_cli import assert_one_line_error

from ncsn_toy.checkpoints import load_checkpoint, save_checkpoint
from ncsn_toy.recipes import DEFAULT_CHECKPOINTS

# the environment that runs this checkout's package from another current directory
THIS_CHECKOUT = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIN_TWO_GAUSSIANS = [sys.executable, "-m", "ncsn_toy", "train", "--only", "ncsn_two_gaussians"]

# `python -m ncsn_toy ARGS`, with SIGTERM sent to itself at the moment a temporary file is complete
# and about to be renamed into place: the moment when a half-written file could be left behind.
SIGTERM_DURING_A_WRITE = """
import os, runpy, signal, sys, time
rename = os.replace
def sigterm_before_the_rename(source, target, **kwargs):
    if str(source).endswith(".tmp"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(600)  # a handled signal interrupts the sleep; without a handler, none is needed
    return rename(source, target, **kwargs)
os.replace = sigterm_before_the_rename
sys.argv = ["ncsn_toy", *sys.argv[1:]]
runpy.run_module("ncsn_toy", run_name="__main__", alter_sys=True)
"""


def run_with_sigterm_during_a_write(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SIGTERM_DURING_A_WRITE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=HANG_TIMEOUT,
    )


def assert_stopped_by_sigterm(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 143, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "terminated (SIGTERM)" in result.stderr


def test_sigterm_while_train_writes_keeps_the_old_checkpoint(tmp_path):
    """Before SIGTERM was handled the process died at once (exit -15), leaving
    ``.ncsn_two_gaussians.pt.<hex>.tmp`` beside the checkpoint."""
    name = "ncsn_two_gaussians"
    old = tmp_path / f"{name}.pt"
    shutil.copyfile(DEFAULT_CHECKPOINTS / f"{name}.pt", old)
    before = old.read_bytes()
    result = run_with_sigterm_during_a_write(
        "train", "--only", name, "--steps", "2", "--out", str(tmp_path), "--overwrite"
    )
    assert_stopped_by_sigterm(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]  # no temporary file
    assert old.read_bytes() == before  # the old checkpoint, whole


def test_sigterm_while_render_writes_leaves_nothing_half_written(tmp_path):
    result = run_with_sigterm_during_a_write(
        "render", "--fast", "--only", "score_field_mixture", "--out", str(tmp_path)
    )
    assert_stopped_by_sigterm(result)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_from_outside_stops_training_with_143(tmp_path):
    """A SIGTERM sent by another process (a scheduler, `kill`) while training runs."""
    log = tmp_path / "stderr.txt"
    out = tmp_path / "out"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [*TRAIN_TWO_GAUSSIANS, "--steps", "1000000", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
        )
    try:
        # the progress bar is written once training runs, and with it the handler is in place
        while process.poll() is None and "training" not in log.read_text():
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(HANG_TIMEOUT) == 143, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "terminated (SIGTERM)" in log.read_text()
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------ a full disk
def limit_file_size() -> None:
    """In the child: files may grow to 50,000 bytes (a checkpoint here is about 200 KB); a write
    past that fails with EFBIG, as on a full disk, instead of killing the process (SIGXFSZ)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))


def test_a_full_disk_during_train_is_one_line_and_leaves_nothing(tmp_path):
    """Was torch's RuntimeError '[enforce fail at inline_container.cc...]' with a traceback."""
    target = tmp_path / "ncsn_two_gaussians.pt"
    result = subprocess.run(
        [*TRAIN_TWO_GAUSSIANS, "--steps", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=HANG_TIMEOUT,
        preexec_fn=limit_file_size,
        # no bytecode files written under the limit
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert_one_line_error(result, f"could not write {target}")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ checkpoints
def checkpoints_with_bad_metadata(folder):
    """A copy of the committed checkpoints in which ncsn_two_gaussians.pt is hash-valid but its
    step size is 'abc' (not what `train` writes); returns that file."""
    shutil.copytree(DEFAULT_CHECKPOINTS, folder)
    path = folder / "ncsn_two_gaussians.pt"
    model = load_checkpoint(path)
    save_checkpoint(model, path, **{**model.metadata, "step_size": "abc"})
    return path


def test_reproduce_with_a_checkpoint_of_bad_metadata_is_one_line(tmp_path):
    bad = checkpoints_with_bad_metadata(tmp_path / "checkpoints")
    result = run_command("reproduce", "--fast", "--checkpoints", str(bad.parent))
    assert_one_line_error(result, str(bad), "train --only ncsn_two_gaussians")
    assert "### Samplers" not in result.stdout


def test_render_with_a_checkpoint_of_bad_metadata_is_one_line(tmp_path):
    """`render` reads the checkpoints of the checkout it runs from: here a copy of the package
    outside any checkout, which reads ./checkpoints (``runtime.repository_root``)."""
    shutil.copytree(
        ROOT / "ncsn_toy", tmp_path / "ncsn_toy", ignore=shutil.ignore_patterns("__pycache__")
    )
    bad = checkpoints_with_bad_metadata(tmp_path / "checkpoints")
    result = run_command(
        "render", "--fast", "--only", "noise_conditional_fields", "--out", "figs", cwd=tmp_path
    )
    assert_one_line_error(result, str(bad), "train --only ncsn_two_gaussians")
    assert list((tmp_path / "figs").iterdir()) == []


# ------------------------------------------------------------------------------ paths
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["render", "--fast", "--only", "score_field_mixture", "--out", ""], "--out"),
        (["train", "--steps", "2", "--only", "ncsn_two_gaussians", "--out", ""], "--out"),
        (["reproduce", "--fast", "--json", ""], "--json"),
        (["reproduce", "--fast", "--checkpoints", ""], "--checkpoints"),
        (["bench", "--quick", "--json", ""], "--json"),
    ],
)
def test_an_empty_path_is_refused_and_nothing_is_written(tmp_path, args, option):
    """`render --out ""` wrote the figures into the current directory (Path("") is ".")."""
    result = run_command(*args, cwd=tmp_path, env=THIS_CHECKOUT)
    assert_one_line_error(result, f"{option} is empty")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["render", "--fast", "--only", "bogus", "--out", "{new}"],
        ["reproduce", "--fast", "--checkpoints", "{missing}", "--json", "{new}/r.json"],
    ],
)
def test_a_bad_argument_is_refused_before_any_folder_is_made(tmp_path, args):
    """`render --only bogus --out NEW` refused the name, but after it had made NEW."""
    new = tmp_path / "new"
    missing = tmp_path / "missing"
    result = run_command(*[a.format(new=new, missing=missing) for a in args])
    assert_one_line_error(result, "bogus" if "bogus" in args else str(missing))
    assert not new.exists()
