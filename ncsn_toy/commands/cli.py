"""Command line: ``python -m ncsn_toy render|train|reproduce|bench|explore``.

Each command has ``--help``. The work lives in the modules the commands name; this file only
parses arguments, checks every output location before any work starts, applies the thread
policy (:class:`ncsn_toy.runtime.ThreadPolicy`) and reports. Paths given on the command line are
relative to the current directory; the defaults are the repository's own folders. ``train``,
``reproduce`` and ``bench`` never replace an existing file unless given ``--overwrite``;
``render`` regenerates its figures (they are deterministic), so it replaces them. Ctrl-C (SIGINT)
and SIGTERM stop a command alike: the file being written is not replaced, its temporary file is
removed, and the exit status is 130 or 143.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..runtime import ThreadPolicy, repository_root
from . import explore

__all__ = ["main", "build_parser", "UsageError"]

ROOT = repository_root()
# what a command stopped by Ctrl-C or SIGTERM leaves
UNWOUND = "files already written are complete; the one being written was not replaced"


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m ncsn_toy``: one subcommand per command, each with ``--help``."""
    from ..figures import FIGURES
    from ..recipes import RECIPES
    from ..targets import TARGETS
    from .measure import ReproduceConfig

    parser = argparse.ArgumentParser(
        prog="python -m ncsn_toy",
        description="The NCSN toy experiment (Song & Ermon 2019): figures, training, numbers, "
        "speed.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads (default: the cores not busy with other work, measured as it runs)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    names = ", ".join(Path(name).stem for name in FIGURES)
    render = commands.add_parser(
        "render",
        parents=[common],
        help="render every figure into gif/",
        description="Render the figure set (GIFs and PNGs), from the committed checkpoints. "
        "Figures are deterministic: rendering again replaces them with the same bytes.",
    )
    render.add_argument(
        "--out", type=str, default=ROOT / "gif", help=f"output folder (default: {ROOT / 'gif'})"
    )
    render.add_argument(
        "--fast", action="store_true", help="fewer frames and particles (for tests)"
    )
    render.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"render only these figures, out of: {names}"
    )
    render.add_argument(
        "--retrain",
        action="store_true",
        help="train the networks from scratch instead of loading checkpoints/",
    )
    render.add_argument(
        "--target",
        nargs="+",
        choices=TARGETS,
        metavar="NAME",
        help="also render annealed_langevin_NAME.gif for these targets, out of: "
        f"{', '.join(TARGETS)} (from checkpoints/ncsn_NAME.pt, or fitted on the spot)",
    )

    train = commands.add_parser(
        "train",
        parents=[common],
        help="train the committed checkpoints from scratch",
        description="Train the networks of checkpoints/ from scratch, deterministically (the same "
        "bytes every run), and save them. Existing files are kept unless --overwrite is given.",
    )
    train.add_argument(
        "--out",
        type=str,
        default=ROOT / "checkpoints",
        help=f"output folder (default: {ROOT / 'checkpoints'})",
    )
    train.add_argument(
        "--only",
        nargs="+",
        choices=sorted(RECIPES),
        metavar="NAME",
        help=f"train only these, out of: {', '.join(sorted(RECIPES))}",
    )
    train.add_argument(
        "--steps", type=int, help="override the number of Adam steps (for quick runs)"
    )
    train.add_argument(
        "--target",
        nargs="+",
        choices=TARGETS,
        metavar="NAME",
        help="instead, train these targets and save ncsn_NAME.pt (by their recipe where one "
        f"exists, else by fit()), out of: {', '.join(TARGETS)}",
    )
    train.add_argument("--overwrite", action="store_true", help="replace existing checkpoint files")

    reproduce = commands.add_parser(
        "reproduce",
        parents=[common],
        help="the paper's numbers as Markdown tables",
        description="Mode weights, sample distances, score errors, evaluations and the "
        "sigma-input study.",
    )
    reproduce.add_argument(
        "--fast",
        action="store_true",
        help="a quick check with few particles, seeds and training steps: its numbers are rough",
    )
    reproduce.add_argument(
        "--seeds",
        type=int,
        help="seeds of every sampler table (the zoo study keeps its own): each row runs once per "
        "seed, and its '±' is the standard deviation over them (default: "
        f"{ReproduceConfig.n_headline_seeds} for the samplers of the paper's Fig. 3, "
        f"{ReproduceConfig.n_seeds} for the others; {ReproduceConfig.fast().n_seeds} with --fast)",
    )
    reproduce.add_argument(
        "--json",
        type=str,
        help="where to write the numbers (default: "
        f"{ROOT / 'results' / 'reproduce.json'}; none with --fast)",
    )
    reproduce.add_argument(
        "--checkpoints", type=str, default=ROOT / "checkpoints", help="checkpoint folder"
    )
    reproduce.add_argument(
        "--retrain", action="store_true", help="train the networks instead of loading them"
    )
    reproduce.add_argument(
        "--targets",
        nargs="+",
        choices=TARGETS,
        metavar="NAME",
        help=f"targets of the zoo study (default: all), out of: {', '.join(TARGETS)}",
    )
    reproduce.add_argument(
        "--no-zoo", action="store_true", help="skip the zoo study (fit, Fig. 2, dimensions)"
    )
    reproduce.add_argument("--overwrite", action="store_true", help="replace an existing JSON file")

    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="speed against a straightforward baseline",
        description="Time our implementation against a plain baseline, side by side.",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, few repeats: a smoke test that judges no target",
    )
    bench.add_argument("--json", type=str, help="also write the numbers as JSON to this file")
    bench.add_argument("--overwrite", action="store_true", help="replace an existing JSON file")
    explore.add_parser(commands, parents=[common])
    return parser


# ------------------------------------------------------------------------------ argument checks
# the options that name a path, and what each names
PATH_OPTIONS = {"out": "folder", "json": "file", "checkpoints": "folder"}


def _paths(args: argparse.Namespace) -> None:
    """Turn the path options given on the command line into ``Path`` objects, in place.

    An empty one is refused: ``Path("")`` is the current directory, so ``--out ""`` would write
    there.
    """
    for name, kind in PATH_OPTIONS.items():
        value = getattr(args, name, None)
        if not isinstance(value, str):  # not given (None) or the default (already a Path)
            continue
        if not value:
            raise UsageError(
                f"--{name} is empty; give a {kind}, or leave --{name} out for the default"
            )
        setattr(args, name, Path(value))


def _figure_names(only: list[str] | None) -> None:
    """Check the names of ``render --only`` (with or without extension) before anything is
    created."""
    from ..figures import FIGURES

    stems = {Path(name).stem for name in FIGURES}
    unknown = [name for name in only or () if name not in FIGURES and name not in stems]
    if unknown:
        raise UsageError(
            f"unknown figure(s) {', '.join(unknown)}; expected names out of: "
            f"{', '.join(sorted(stems))}"
        )


def writable_folder(path: Path) -> Path:
    """Check, before any work, that files can be written into ``path`` (created if missing)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".ncsn_toy_probe_"):
            pass
    except OSError as err:
        raise UsageError(f"cannot write into {path}: {err.strerror or err}") from err
    return path


def writable_file(path: Path, overwrite: bool) -> Path:
    """Check, before any work, that ``path`` can be written and is not an existing file kept from
    overwriting."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it, or give another path")
    writable_folder(path.parent)
    return path


@contextlib.contextmanager
def _write_errors_name(path: Path) -> Iterator[None]:
    """An ``OSError`` raised in the block names ``path`` (the file, or the folder, being written).

    A full disk can surface as a bare "[Errno 27] File too large" from a file object's flush.
    """
    try:
        yield
    except OSError as err:
        if str(path) in str(err):
            raise
        raise OSError(f"could not write {path}: {err.strerror or err}") from err


# the largest --steps, --seeds or --threads: far above any honest run; beyond, Python's range()
# and tqdm overflow
MAX_COUNT = 10**9


def _positive(value: int | None, option: str) -> None:
    """Check that an optional count given on the command line is in 1..MAX_COUNT."""
    if value is not None and not 1 <= value <= MAX_COUNT:
        raise UsageError(f"{option} must be a positive integer up to {MAX_COUNT:g}, got {value}")


# ------------------------------------------------------------------------------ commands
def _train(args: argparse.Namespace, threads: ThreadPolicy) -> int:
    """``train``: train the recipes (or the named targets) and save their checkpoints."""
    from ..recipes import RECIPES, save_recipe, train_recipe
    from ..targets import target
    from ..training import fit

    _positive(args.steps, "--steps")
    names = [f"ncsn_{name}" for name in args.target] if args.target else args.only or list(RECIPES)
    writable_folder(args.out)
    for name in names:
        if (args.out / f"{name}.pt").is_dir():
            raise UsageError(
                f"{args.out / f'{name}.pt'} is a folder; remove it or choose another --out"
            )
    existing = [
        str(args.out / f"{name}.pt") for name in names if (args.out / f"{name}.pt").exists()
    ]
    if existing and not args.overwrite:
        raise UsageError(
            f"{', '.join(existing)} exist(s); pass --overwrite to replace, or --out DIR to write "
            "elsewhere"
        )
    for name in names:
        threads.refresh()
        start = time.perf_counter()
        if name in RECIPES:
            # a target with a recipe (two_gaussians, ring, ...) is trained by it, so the gallery
            # finds what it animates
            model = train_recipe(RECIPES[name], steps=args.steps)
        else:
            # fit() on a named target without a recipe
            model = fit(target(name.removeprefix("ncsn_")), steps=args.steps, progress=True)
            model.metadata.update(recipe=name, mixture_name=name.removeprefix("ncsn_"))
        with _write_errors_name(args.out / f"{name}.pt"):
            path = save_recipe(model, args.out)
        kilobytes = path.stat().st_size / 1024
        adam_steps = model.metadata["train"]["steps"]
        print(
            f"wrote {path}  ({kilobytes:.0f} KB, {adam_steps} Adam steps, "
            f"final loss {model.metadata['final_loss']:.4f}, {time.perf_counter() - start:.1f} s)"
        )
    return 0


def _reproduce(args: argparse.Namespace, threads: ThreadPolicy) -> int:
    """``reproduce``: measure every table, print them, write the JSON (none with ``--fast``)."""
    from ..runtime import write_json
    from .reproduce import ReproduceConfig, format_tables, reproduce

    _positive(args.seeds, "--seeds")
    if not args.retrain and not args.checkpoints.is_dir():
        raise UsageError(
            f"no checkpoint folder {args.checkpoints}; give --checkpoints or --retrain"
        )
    path = args.json or (None if args.fast else ROOT / "results" / "reproduce.json")
    if path is not None:
        writable_file(path, args.overwrite)
    changes = {
        "checkpoints": args.checkpoints,
        "retrain": args.retrain,
        "zoo": not args.no_zoo,
        "targets": tuple(args.targets) if args.targets else None,
    }
    if args.seeds is not None:
        changes["n_seeds"] = args.seeds
        changes["n_headline_seeds"] = args.seeds
    config = ReproduceConfig.fast(**changes) if args.fast else ReproduceConfig(**changes)
    result = reproduce(config, between=threads.refresh)
    print(format_tables(result))
    if path is not None:
        with _write_errors_name(path):
            write_json(path, result)
        print(f"wrote {path} ({result['seconds']:.0f} s)")
    return 0


def _render(args: argparse.Namespace, threads: ThreadPolicy) -> int:
    """``render``: write the figure set into ``--out``."""
    from ..figures import RenderConfig, render

    _figure_names(args.only)
    writable_folder(args.out)
    config = (
        RenderConfig.fast(retrain=args.retrain) if args.fast else RenderConfig(retrain=args.retrain)
    )
    start = time.perf_counter()
    with _write_errors_name(args.out):
        written = render(
            args.out, config, only=args.only, between=threads.refresh, targets=args.target or ()
        )
    for path, size in written:
        print(f"wrote {path}  {size / 1024:.0f} KB")
    total = sum(size for _, size in written)
    print(f"{len(written)} files, {total / 1024**2:.1f} MB, in {time.perf_counter() - start:.1f} s")
    return 0


def _bench(args: argparse.Namespace, threads: ThreadPolicy) -> int:
    """``bench``: time our hot paths against their baselines, print the tables."""
    from ..runtime import write_json
    from .bench import BenchConfig, bench, format_bench

    if args.json:
        writable_file(args.json, args.overwrite)
    result = bench(BenchConfig.quick_check() if args.quick else BenchConfig(), threads=threads)
    print(format_bench(result))
    if args.json:
        with _write_errors_name(args.json):
            write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, ThreadPolicy], int]] = {
    "render": _render,
    "train": _train,
    "reproduce": _reproduce,
    "bench": _bench,
    "explore": explore.run,
}


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the command as Ctrl-C does (a ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` stops it on the way out)."""


def _terminate(signum: int, frame: object) -> None:
    """The SIGTERM handler: unwind the command, which removes the temporary file being written."""
    # a second SIGTERM must not interrupt the removal of that file
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block; the previous handler is put back
    after (signal handlers can only be set from the main thread: elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; problems with what was asked (a path, a number, a missing or bad file)
    are printed as one line on stderr with exit status 2, never as a traceback.

    Ctrl-C returns 130 and SIGTERM 143 (128 + the signal's number, as a shell reports a process
    the signal stopped), both after removing the temporary file of the write under way.
    """
    from ..training import TrainingDivergedError

    with _sigterm_unwinds():
        try:
            args = build_parser().parse_args(argv)
            _positive(args.threads, "--threads")
            _paths(args)
            threads = ThreadPolicy(args.threads)
            threads.apply()
            return COMMANDS[args.command](args, threads)
        # ValueError: a bad checkpoint or setting, reported by the package with its path or name;
        # OSError: a file system refusal the checks could not foresee (a disk that fills up, a
        # folder where a file was to go)
        except (UsageError, TrainingDivergedError, ValueError, OSError) as err:
            # one line, whatever the message holds
            print("error: " + " ".join(str(err).split()), file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted: {UNWOUND}", file=sys.stderr)
            return 128 + signal.SIGINT
        except Terminated:
            print(f"terminated (SIGTERM): {UNWOUND}", file=sys.stderr)
            return 128 + signal.SIGTERM
