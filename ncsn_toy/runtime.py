"""How the package meets the machine: files an interrupted run cannot lose, threads for the load.

- Every file the package writes (checkpoints, figures, JSON) goes through :func:`atomic_write`:
  a temporary file beside the target, renamed into place.
- :class:`ThreadPolicy` sets torch's thread count from the cores that are actually free; every
  command, the explorer, the notebooks and the test suite use it.
- :data:`LIBRARY_THREADS` does the same around the library's long calls (samplers, training,
  ``fit``, the ODE likelihood) from a plain script, for the call only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "atomic_write",
    "write_json",
    "ThreadPolicy",
    "LibraryThreads",
    "LIBRARY_THREADS",
    "threads_for",
    "choose_threads",
    "busy_cores",
    "allowed_cpus",
    "repository_root",
]


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic on POSIX and Windows, so readers see the old file or the new one,
    never half of one; on any error (or Ctrl-C) the temporary file is removed and ``path`` is
    left as it was. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name beside the target (same file system, so the rename is atomic); created by
    # ``write`` itself, so the file gets the usual permissions (mkstemp would make it 0600)
    tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
    try:
        write(tmp)
        # make the bytes durable before the rename (through a writable handle: Windows refuses
        # to flush a read-only one)
        with open(tmp, "r+b") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: fsync the directory; Windows cannot open one)."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        # a folder we may write into but not read: the rename stands, only less durably
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse to sync a directory
        pass
    finally:
        os.close(descriptor)


def write_json(path: str | os.PathLike, data: object) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# ------------------------------------------------------------------------------------ threads
# a user's explicit choice of thread count
THREAD_ENV_VARS = ("NCSN_TOY_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# torch.set_num_threads(100_000) crashes the interpreter; more than this never helps
MAX_THREADS_PER_CPU = 8


def busy_cores(window: float = 0.1) -> float:
    """How many of this process's allowed cores *other* processes keep busy, over ``window`` s.

    From the per-CPU counters of ``/proc/stat`` (time neither idle nor waiting for I/O) minus this
    process's own CPU time (``/proc/self/stat``: torch's worker threads keep spinning for a while
    after a parallel region, and must not count as a neighbour). 0.0 where ``/proc`` does not
    exist (the policy then assumes an idle machine).
    """
    before = cpu_ticks()
    time.sleep(window)
    after = cpu_ticks()
    return busy_between(before, after) or 0.0


class CpuTicks(NamedTuple):
    """A reading of the CPU counters (in clock ticks) of the allowed cores and of this process."""

    busy: int  # ticks the allowed CPUs spent neither idle nor waiting for I/O
    total: int  # all their ticks
    ours: int  # utime + stime of every thread of this process
    cpus: int  # how many CPUs were read


def cpu_ticks() -> CpuTicks | None:
    """Read the counters now (two small files; no waiting); ``None`` without ``/proc``."""
    names = {f"cpu{cpu}" for cpu in allowed_cpus()}
    try:
        with open("/proc/stat") as handle:
            lines = [line.split() for line in handle if line.split()[0] in names]
        with open("/proc/self/stat") as handle:
            # the fields after the command name, which may hold spaces
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    busy = 0
    total = 0
    for line in lines:
        values = [int(v) for v in line[1:9]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    ours = int(fields[11]) + int(fields[12])
    return CpuTicks(busy, total, ours, len(lines))


def busy_between(before: CpuTicks | None, after: CpuTicks | None) -> float | None:
    """Cores other processes kept busy between two readings; ``None`` if nothing was measured."""
    if before is None or after is None or after.total <= before.total or not after.cpus:
        return None
    others = (after.busy - before.busy) - (after.ours - before.ours)
    per_cpu = (after.total - before.total) / after.cpus  # the ticks one CPU had in the window
    return max(0.0, others / per_cpu)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def choose_threads(window: float = 0.1) -> int:
    """Threads for this package's workloads: the allowed cores that are at least 75% idle (>= 1).

    Why: the tensors here are small ((10 000, 64) at most), so a second thread gains about 1.3x on
    an idle machine, but two threads that wait for each other lose their time slices to any busy
    process and run 3x (one busy neighbour) to 50x (two) slower than one thread (docs/speed.md).
    """
    return threads_for(busy_cores(window))


def threads_for(busy: float) -> int:
    """The thread count for ``busy`` cores kept busy by others: the free cores, rounded up from
    three quarters of a core, between 1 and the allowed cores."""
    cores = len(allowed_cpus())
    free = cores - busy
    return max(1, min(cores, int(free + 0.25)))


class ThreadPolicy:
    """Sets torch's intra-op threads for the load of the machine, unless the user chose.

    ``threads``: an explicit number (``--threads N``), which always wins; so do the environment
    variables ``NCSN_TOY_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``. Otherwise
    :meth:`apply` sets :func:`choose_threads`, and :meth:`refresh` measures the load again between
    units of work (a figure, a table row, a test module) at most every ``interval`` seconds. A call
    of ``torch.set_num_threads`` made after :meth:`apply` is respected too: :meth:`refresh` leaves
    the count alone once it differs from what the policy last set.
    """

    def __init__(self, threads: int | None = None, *, interval: float = 2.0) -> None:
        env = {name: os.environ[name] for name in THREAD_ENV_VARS if os.environ.get(name)}
        if threads is None and "NCSN_TOY_THREADS" in env:
            text = env["NCSN_TOY_THREADS"]
            threads = int(text) if text.strip().isdigit() else text
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(
                "threads (--threads or NCSN_TOY_THREADS) must be a positive integer, "
                f"got {threads!r}"
            )
        most = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)  # torch crashes past some
        if threads is not None and threads > most:
            raise ValueError(
                "threads (--threads or NCSN_TOY_THREADS) must be at most "
                f"{MAX_THREADS_PER_CPU} per CPU ({most} here), got {threads}"
            )
        self.explicit = threads  # the user's number, or None
        # OMP/MKL_NUM_THREADS: torch already obeys them
        self.from_environment = threads is None and bool(env)
        self.interval = interval
        self._set: int | None = None  # what this policy last set
        self._checked = -math.inf  # time.monotonic() of the last measurement

    def apply(self) -> int:
        """Set the thread count now (measuring the load unless the user chose); return it."""
        import torch

        if self.explicit is not None:
            torch.set_num_threads(self.explicit)
        elif not self.from_environment:
            torch.set_num_threads(choose_threads())
            self._checked = time.monotonic()
        self._set = torch.get_num_threads()
        return self._set

    def refresh(self) -> int:
        """Between units of work: measure again if ``interval`` has passed; return the count."""
        import torch

        current = torch.get_num_threads()
        chosen_by_someone_else = self._set is not None and current != self._set
        if (
            self.explicit is not None
            or self.from_environment
            or chosen_by_someone_else
            or time.monotonic() - self._checked < self.interval
        ):
            return current
        return self.apply()


class LibraryThreads:
    """Threads for the load inside the library's long calls, when no command chose them.

    A plain script that calls a sampler, ``fit`` or the ODE likelihood has no command around it
    to set torch's threads, and torch's default (every core) runs several times slower beside a
    busy process (docs/speed.md). So each of those calls runs in :meth:`call`: unless the user
    chose a count (``torch.set_num_threads``, ``NCSN_TOY_THREADS``, ``OMP_NUM_THREADS``,
    ``MKL_NUM_THREADS``), it sets the count the load calls for and puts the user's back
    afterwards. The load costs no waiting: it is measured over each call itself (two readings
    of ``/proc``, before and after), and the first call of a process goes by the load average.
    Nested and concurrent calls share one setting; the outermost restores it.
    """

    def __init__(self) -> None:
        import torch

        self._lock = threading.Lock()
        self._active = 0  # calls running now
        self._restore: int | None = None  # the count to put back when the last call ends
        self._start: CpuTicks | None = None  # the reading at the start of the outermost call
        self._started = 0.0  # time.monotonic() then
        self._choice: int | None = None  # threads for the load last seen
        # torch's own count when the package was imported: another count was chosen by someone
        # (a count set before the import looks like torch's own: set it after, or use the
        # environment variables)
        self._torch_default = torch.get_num_threads()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Run the body with threads for the load (see the class); restore the count after."""
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> None:
        import torch

        with self._lock:
            self._active += 1
            if self._active > 1:
                return
            current = torch.get_num_threads()
            self._restore = None
            self._start = None
            if current != self._torch_default or any(os.environ.get(v) for v in THREAD_ENV_VARS):
                return  # the user chose
            if self._choice is None:
                self._choice = threads_for(_load_average_of_others())
            self._start = cpu_ticks()
            self._started = time.monotonic()
            if self._choice != current:
                torch.set_num_threads(self._choice)
                self._restore = current

    def _exit(self) -> None:
        import torch

        with self._lock:
            self._active -= 1
            if self._active > 0:
                return
            # ticks are 10 ms: a call of 50 ms and more says how busy the machine is
            if self._start is not None and time.monotonic() - self._started >= 0.05:
                busy = busy_between(self._start, cpu_ticks())
                if busy is not None:
                    self._choice = threads_for(busy)
            if self._restore is not None:
                torch.set_num_threads(self._restore)


def _load_average_of_others() -> float:
    """Busy cores by the 1-minute load average: where a process has measured nothing yet."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): assume an idle machine
        return 0.0


# The one piece of state the package keeps for the process: how busy the machine looked during
# the last long call (so that a script's second call starts from a measurement).
LIBRARY_THREADS = LibraryThreads()


def repository_root() -> Path:
    """The checkout this package runs from, or the current directory outside a checkout.

    The checkout is where ``gif/``, ``checkpoints/`` and ``results/`` live.
    """
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
