"""The thread policy and the repository's folders (ncsn_toy.runtime)."""

import subprocess
import sys
import threading
import time

import pytest
import torch

from ncsn_toy import annealed_langevin_dynamics
from ncsn_toy.runtime import ThreadPolicy, allowed_cpus, busy_cores, choose_threads, repository_root


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def clean_environment(monkeypatch):
    for name in ("NCSN_TOY_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_a_busy_neighbour_is_seen_and_leaves_one_thread(restore_threads):
    """With another process spinning, at least half a core is busy and at most cores - 1 threads.

    Whatever else the machine is doing: more load can only lower the choice.
    """
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.2) >= 0.5
        assert choose_threads(0.2) <= max(1, len(allowed_cpus()) - 1)
    finally:
        spinner.kill()
        spinner.wait()


def _quietest(readings: int = 3) -> float:
    """The least of a few readings: a moment's load elsewhere on the machine raises only one."""
    return min(busy_cores(0.2) for _ in range(readings))


@pytest.mark.parametrize("how", ["a Python thread", "torch's workers"])
def test_our_own_threads_do_not_count_as_a_neighbour(how, restore_threads):
    """Our own CPU time is subtracted from the load.

    Our own: a thread of ours spinning through the whole window, or torch's workers, which keep
    spinning after a parallel region. The reading stays within half a core of the reading without
    it, where a neighbour process doing the same adds a whole core (>= 0.5 in the test above).
    """
    quiet = _quietest()
    stop = threading.Event()

    def keep_busy():
        if how == "torch's workers":
            torch.set_num_threads(len(allowed_cpus()))
            x = torch.randn(600, 600)
            while not stop.is_set():
                x @ x
        while not stop.is_set():
            pass

    worker = threading.Thread(target=keep_busy)
    worker.start()
    try:
        time.sleep(0.1)
        ours = _quietest()
    finally:
        stop.set()
        worker.join()
    assert ours < quiet + 0.5


def test_explicit_threads_win(restore_threads, clean_environment):
    assert ThreadPolicy(1).apply() == 1
    assert torch.get_num_threads() == 1


def test_environment_wins(restore_threads, clean_environment, monkeypatch):
    monkeypatch.setenv("NCSN_TOY_THREADS", "1")
    assert ThreadPolicy().apply() == 1
    torch.set_num_threads(2)
    monkeypatch.delenv("NCSN_TOY_THREADS")
    # torch read it at start-up; the policy leaves the count alone
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert ThreadPolicy().apply() == 2


def test_a_later_user_choice_is_respected_by_refresh(restore_threads, clean_environment):
    policy = ThreadPolicy(interval=0.0)
    policy.apply()
    torch.set_num_threads(3)  # the user changes it
    assert policy.refresh() == 3
    assert torch.get_num_threads() == 3


def test_refresh_measures_again_after_the_interval(restore_threads, clean_environment, monkeypatch):
    calls = []

    def counting_choose_threads(window=0.1):
        calls.append(1)
        return 1

    monkeypatch.setattr("ncsn_toy.runtime.choose_threads", counting_choose_threads)
    policy = ThreadPolicy(interval=3600.0)
    policy.apply()
    policy.refresh()
    assert len(calls) == 1  # within the interval: no new measurement
    policy.interval = 0.0
    policy.refresh()
    assert len(calls) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts(bad, clean_environment):
    with pytest.raises(ValueError, match="threads"):
        ThreadPolicy(bad)


def test_bad_thread_variable(clean_environment, monkeypatch):
    monkeypatch.setenv("NCSN_TOY_THREADS", "zero")
    with pytest.raises(ValueError, match="NCSN_TOY_THREADS"):
        ThreadPolicy()


def test_repository_root_is_this_checkout():
    assert (repository_root() / "pyproject.toml").is_file()
    assert (repository_root() / "ncsn_toy" / "runtime.py").is_file()


def test_atomic_write_syncs_through_a_writable_handle(tmp_path, monkeypatch):
    """Windows refuses os.fsync on a read-only handle: every synced descriptor is open for writing.

    Checked here with fcntl, as Windows would. The file must be synced before its rename, and the
    rename itself (the folder) after it.
    """
    import os

    import ncsn_toy.runtime as runtime

    fcntl = pytest.importorskip("fcntl")  # POSIX only

    synced = []

    def fsync(descriptor):
        mode = fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE
        synced.append((mode, (tmp_path / "out.txt").exists()))

    monkeypatch.setattr(runtime.os, "fsync", fsync)
    runtime.write_json(tmp_path / "out.txt", {"a": 1})
    assert synced[0] == (os.O_RDWR, False)  # the temporary file, writable, before the rename
    assert synced[-1][1]  # the folder, after it
    assert (tmp_path / "out.txt").read_text() == '{\n  "a": 1\n}\n'


# ------------------------------------------------------------- threads inside the library's calls
@pytest.fixture
def fresh_library_threads(monkeypatch, clean_environment, restore_threads):
    """A new LibraryThreads in place of the package's, taking the count now as torch's own."""
    return install_library_threads(monkeypatch)


def install_library_threads(monkeypatch):
    from ncsn_toy import runtime, samplers, training

    threads = runtime.LibraryThreads()
    monkeypatch.setattr(samplers, "LIBRARY_THREADS", threads)
    monkeypatch.setattr(training, "LIBRARY_THREADS", threads)
    return threads


def threads_seen_by_a_sampler() -> int:
    """The thread count while annealed Langevin runs (read inside its score function)."""
    seen = []

    def score(x, sigma):
        seen.append(torch.get_num_threads())
        return -x / (1 + sigma**2)

    annealed_langevin_dynamics(score, torch.zeros(4, 2), torch.tensor([2.0, 1.0]), 0.1, 2)
    return seen[0]


def test_a_library_call_on_a_busy_machine_runs_one_thread_and_restores(
    monkeypatch, fresh_library_threads
):
    """The first call goes by the load average: every core busy leaves one thread."""
    monkeypatch.setattr(
        "ncsn_toy.runtime._load_average_of_others", lambda: float(len(allowed_cpus()))
    )
    before = torch.get_num_threads()
    assert threads_seen_by_a_sampler() == 1
    assert torch.get_num_threads() == before


def test_a_library_call_on_an_idle_machine_uses_every_core(
    monkeypatch, clean_environment, restore_threads
):
    # torch's own count as a fresh process has it, one thread per core: the suite's thread policy
    # may have lowered it for the load (pytest -n 2 runs a second worker beside this one)
    torch.set_num_threads(len(allowed_cpus()))
    install_library_threads(monkeypatch)
    monkeypatch.setattr("ncsn_toy.runtime._load_average_of_others", lambda: 0.0)
    assert threads_seen_by_a_sampler() == len(allowed_cpus())


def test_the_users_choice_wins(monkeypatch, fresh_library_threads):
    """A count set with torch.set_num_threads after import, or in the environment, is kept."""
    monkeypatch.setattr(
        "ncsn_toy.runtime._load_average_of_others", lambda: float(len(allowed_cpus()))
    )
    torch.set_num_threads(3)
    assert threads_seen_by_a_sampler() == 3
    monkeypatch.setattr(fresh_library_threads, "_torch_default", 3)
    monkeypatch.setenv("NCSN_TOY_THREADS", "3")
    assert threads_seen_by_a_sampler() == 3


def test_the_count_is_restored_when_the_call_fails(monkeypatch, fresh_library_threads):
    monkeypatch.setattr(
        "ncsn_toy.runtime._load_average_of_others", lambda: float(len(allowed_cpus()))
    )
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="must return a tensor"):
        annealed_langevin_dynamics(
            lambda x, s: x[:, :1], torch.zeros(4, 2), torch.tensor([2.0, 1.0]), 0.1, 2
        )
    assert torch.get_num_threads() == before


def test_nested_calls_share_one_setting(monkeypatch, fresh_library_threads):
    """fit trains inside a library call: the inner call neither re-measures nor restores."""
    monkeypatch.setattr(
        "ncsn_toy.runtime._load_average_of_others", lambda: float(len(allowed_cpus()))
    )
    before = torch.get_num_threads()
    with fresh_library_threads.call():
        assert torch.get_num_threads() == 1
        assert threads_seen_by_a_sampler() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.skipif(len(allowed_cpus()) < 2, reason="needs two cores to tell one from two")
def test_a_busy_neighbour_seen_during_a_call_lowers_the_next_calls_threads(
    monkeypatch, fresh_library_threads
):
    """Measured over the call itself, with no waiting: the first call (load average 0) takes
    every core; a process spinning through a 0.3 s call is a busy core for the next call."""
    monkeypatch.setattr("ncsn_toy.runtime._load_average_of_others", lambda: 0.0)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with fresh_library_threads.call():
            assert torch.get_num_threads() == min(len(allowed_cpus()), torch.get_num_threads())
            time.sleep(0.3)
        assert threads_seen_by_a_sampler() <= len(allowed_cpus()) - 1
    finally:
        spinner.kill()
        spinner.wait()
