"""``python -m ncsn_toy explore``: the interactive explorer, a web page that Voilà serves locally.

Voilà runs the small notebook shipped in the package (``ncsn_toy/figures/explorer.ipynb``, which
displays :func:`ncsn_toy.figures.explorer.explorer`) in its own kernel and serves its widgets on
127.0.0.1 as a page without code. This module starts it as a child process, waits until the page
answers, prints the address, opens the browser (unless ``--no-browser``) and stops it on Ctrl-C.
Each tab runs its own kernel of about 330 MB, so at most ``--max-pages`` run at once
(:mod:`~ncsn_toy.commands.explore_server`); a tab beyond gets a page that says so.

:func:`explorer_timings` measures the explorer's two speed targets for ``bench``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the figures (and torch) are imported only when timing
    from ..figures.explore_core import ExploreSettings

__all__ = ["add_parser", "run", "free_port", "NOTEBOOK", "explorer_timings", "format_timings"]

NOTEBOOK = Path(__file__).resolve().parents[1] / "figures" / "explorer.ipynb"
# Voilà with a cap on its kernels, run as a script (the server then imports no torch)
SERVER = Path(__file__).resolve().with_name("explore_server.py")
# tabs (each with its kernel, about 330 MB) served at once by default: a few comparisons side by
# side, 1.3 GB at most
MAX_PAGES = 4
START_TIMEOUT = 300  # s until Voilà answers: it starts in about 2 s; only stops a hang
# the JupyterLab extensions that draw ipywidgets in Voilà's page: ipywidgets' own, and Voilà's
# manager of it
WIDGETS_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8")
CULL_S = 300  # s a kernel without a page connected to it is kept
STOP_TIMEOUT = 20  # s for Voilà to shut its kernel down after SIGTERM before it is killed


def _positive_count(text: str) -> int:
    """The ``--max-pages`` argument: a positive integer."""
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"a positive integer, got {text}")
    return count


def _port(text: str) -> int:
    """The ``--port`` argument: an integer in 1..65535."""
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is an integer in 1..65535, got {text}")
    return port


def add_parser(
    subparsers: argparse._SubParsersAction, parents: list | tuple = ()
) -> argparse.ArgumentParser:
    """Register ``explore`` on the command line's subparsers (``parents``: the options every
    command has)."""
    parser = subparsers.add_parser(
        "explore",
        parents=list(parents),
        help="the interactive explorer as a web page",
        description="Serve the interactive explorer (sigma, step size, sampler, target -> "
        "particles and numbers) as a web page on 127.0.0.1 with Voilà. Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=_port, help="port to serve on (default: a free one)")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open a browser, only print the address"
    )
    parser.add_argument(
        "--max-pages",
        type=_positive_count,
        default=MAX_PAGES,
        metavar="N",
        help="tabs served at once, each with its own kernel of about 330 MB; a tab beyond gets "
        f"a page that says so (default: {MAX_PAGES})",
    )
    return parser


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (only a connection: a page
    request would start a kernel)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM (Voilà shuts its kernels down), then SIGKILL if it does not exit in time."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run(args: argparse.Namespace, threads: object = None) -> int:
    """Serve the explorer until Ctrl-C (exit 0) or until Voilà stops (its exit code).

    The kernel applies the package's thread policy itself (``--threads N`` is passed on as
    NCSN_TOY_THREADS).
    """
    missing = [name for name in ("voila", "ipywidgets") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"error: the explorer needs {' and '.join(missing)}: pip install -r requirements.txt "
            "(or pip install 'ncsn-toy[explorer]')",
            file=sys.stderr,
        )
        return 2
    port = args.port or free_port()
    # else the wait below would take another server for ours
    if _listening(port):
        print(
            f"error: port {port} is in use; choose another with --port, or leave it out",
            file=sys.stderr,
        )
        return 2
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        str(SERVER),
        str(NOTEBOOK),
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--no-browser",
        "--Voila.log_level=WARN",
        "--theme=light",
        # only the widgets' own front end: other JupyterLab extensions installed beside it (e.g.
        # notebook's) may not load in Voilà's page and would log errors there
        *(f"--VoilaConfiguration.extension_allowlist={name}" for name in WIDGETS_EXTENSIONS),
        # every page has its own kernel; one whose page was closed (no connection) goes after
        # 5 minutes
        f"--MappingKernelManager.cull_idle_timeout={CULL_S}",
        "--MappingKernelManager.cull_interval=60",
        # at most this many kernels: a tab beyond gets a page that says so
        "--VoilaConfiguration.multi_kernel_manager_class=__main__.CappedKernelManager",
        f"--CappedKernelManager.max_kernels={getattr(args, 'max_pages', MAX_PAGES)}",
    ]
    previous_sigint = signal.getsignal(signal.SIGINT)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    # the kernel follows the thread policy (explorer() applies it, and measures the load again
    # between updates): on a busy 2-core machine an update took 1.3 s with 2 threads, 0.13 s with 1
    env = dict(os.environ)
    if getattr(args, "threads", None):
        env["NCSN_TOY_THREADS"] = str(args.threads)
    server = None
    # the handlers are put back on every way out, also when Voilà cannot be started
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        # its own session: Ctrl-C reaches only this process, which then stops Voilà cleanly; so
        # does SIGTERM
        server = subprocess.Popen(command, start_new_session=True, cwd=NOTEBOOK.parent, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if server.poll() is not None:
                print(
                    f"error: Voilà stopped (exit code {server.returncode}); is port {port} free?",
                    file=sys.stderr,
                )
                return server.returncode or 1
            if time.monotonic() > deadline:
                print(
                    f"error: Voilà did not answer at {url} within {START_TIMEOUT} s",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.2)
        print(f"the explorer is at {url}  (Ctrl-C to stop)", flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        return server.wait()
    except KeyboardInterrupt:
        print("stopping the explorer", flush=True)
        return 0
    finally:
        # on every way out; a second Ctrl-C must not leave Voilà running
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            _stop(server)
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGTERM, previous_sigterm)


def _interrupt(signum: int, frame: object) -> None:
    """The SIGTERM handler: stop the explorer as Ctrl-C does."""
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------- timings for bench
def explorer_timings(repeats: int = 9, settings: ExploreSettings | None = None) -> list[dict]:
    """The explorer's two speed targets, median of ``repeats`` (seconds), for ``settings`` (default:
    the paper's annealed Langevin, exact score, 2000 particles, 1000 score evaluations):

    - an update: settings -> :func:`explore` (annealed Langevin, 10 levels x 100 steps = 1000 score
      evaluations) -> PNG bytes of the last frame, its density and field computed afresh;
    - a scrub: PNG bytes of another recorded frame, through every frame in turn (so the changes
      of noise level, which recompute the density and the field, are in it).
    """
    from ..figures.explore_core import ExploreSettings, explore
    from ..figures.explore_picture import ExplorePicture

    settings = settings or ExploreSettings()
    picture = ExplorePicture()
    # warm-up: the figure is built once per view
    picture.png(explore(settings), 0)

    def update() -> None:
        picture.forget_level()
        result = explore(settings)
        picture.png(result, len(result.frames) - 1)

    updates = []
    for _ in range(repeats):
        start = time.perf_counter()
        update()
        updates.append(time.perf_counter() - start)
    result = explore(settings)
    scrubs = []
    picture.forget_level()
    for frame in range(len(result.frames)):
        start = time.perf_counter()
        picture.png(result, frame)
        scrubs.append(time.perf_counter() - start)
    update_label = (
        f"explorer update ({settings.n_particles} particles, {result.evaluations} "
        f"{settings.score}-score evaluations, to PNG)"
    )
    return [
        {
            "what": update_label,
            "seconds": statistics.median(updates),
            "worst": max(updates),
            "target": 1.0,
        },
        {
            "what": f"explorer scrub ({len(result.frames)} frames, {settings.n_levels} levels)",
            "seconds": statistics.median(scrubs),
            "worst": max(scrubs),
            "target": 0.1,
        },
    ]


def format_timings(rows: list[dict], judge: bool = True) -> str:
    """The rows of :func:`explorer_timings` as a Markdown table (verdicts only when ``judge``)."""
    import torch

    from .report import markdown_table

    def verdict(row: dict) -> str:
        if not judge:
            return "— (quick)"
        return "yes" if row["seconds"] <= row["target"] else "**no**"

    return (
        f"### Explorer (median, ms; torch threads: {torch.get_num_threads()})\n\n"
        + markdown_table(
            ["what", "median (ms)", "worst (ms)", "target (ms)", "met"],
            [
                [
                    r["what"],
                    f"{1000 * r['seconds']:.0f}",
                    f"{1000 * r['worst']:.0f}",
                    f"<= {1000 * r['target']:.0f}",
                    verdict(r),
                ]
                for r in rows
            ],
        )
    )
