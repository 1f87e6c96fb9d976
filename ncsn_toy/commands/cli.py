"""Command line: ``python -m ncsn_toy render|train|reproduce|bench``.

Each command has ``--help``. The work lives in the modules the commands name; this file only
parses arguments and reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import explore

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from ..recipes import DEFAULT_CHECKPOINTS, RECIPES

    parser = argparse.ArgumentParser(
        prog="python -m ncsn_toy",
        description="The NCSN toy experiment (Song & Ermon 2019): figures, training, numbers, speed.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    render = commands.add_parser("render", help="render every figure into gif/",
                                 description="Render the figure set (GIFs and PNGs) into gif/.")
    render.add_argument("--out", default="gif", help="output folder (default: gif)")
    render.add_argument("--fast", action="store_true", help="fewer frames and particles (for tests)")
    render.add_argument("--only", nargs="+", metavar="NAME", help="render only these figures")
    render.add_argument("--retrain", action="store_true",
                        help="train the networks from scratch instead of loading checkpoints/")

    train = commands.add_parser(
        "train", help="train the committed checkpoints from scratch",
        description="Train every network of checkpoints/ from scratch, deterministically, and save it.")
    train.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINTS,
                       help=f"output folder (default: {DEFAULT_CHECKPOINTS})")
    train.add_argument("--only", nargs="+", choices=sorted(RECIPES), metavar="NAME",
                       help=f"train only these ({', '.join(sorted(RECIPES))})")
    train.add_argument("--steps", type=int, help="override the number of Adam steps (for quick runs)")

    reproduce = commands.add_parser(
        "reproduce", help="the paper's numbers as Markdown tables",
        description="Mode weights, sample distances, score errors, evaluations and the sigma-input study.")
    reproduce.add_argument("--fast", action="store_true", help="few particles and seeds (a quick check)")
    reproduce.add_argument("--seeds", type=int, help="number of seeds (default: 5, or 2 with --fast)")
    reproduce.add_argument("--json", type=Path, help="where to write the numbers "
                           "(default: results/reproduce.json, or results/reproduce_fast.json with --fast)")
    reproduce.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="checkpoint folder")
    reproduce.add_argument("--retrain", action="store_true", help="train the networks instead of loading them")

    bench = commands.add_parser("bench", help="speed against a straightforward baseline",
                                description="Time our implementation against a plain baseline, side by side.")
    bench.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke test)")
    bench.add_argument("--json", type=Path, help="also write the numbers as JSON to this file")
    explore.add_parser(commands)
    return parser


def _train(args: argparse.Namespace) -> int:
    from ..recipes import RECIPES, save_recipe, train_recipe

    if args.steps is not None and args.steps < 1:
        raise SystemExit("--steps must be a positive integer")
    for name in args.only or RECIPES:
        start = time.perf_counter()
        model = train_recipe(RECIPES[name], steps=args.steps)
        path = save_recipe(model, args.out)
        print(f"{path}  ({path.stat().st_size / 1024:.0f} KB, {model.metadata['train']['steps']} Adam steps, "
              f"final loss {model.metadata['final_loss']:.4f}, {time.perf_counter() - start:.1f} s)")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from ..files import write_json
    from .reproduce import ReproduceConfig, format_tables, reproduce

    changes = {"checkpoints": args.checkpoints, "retrain": args.retrain}
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit("--seeds must be a positive integer")
        changes["n_seeds"] = args.seeds
    config = ReproduceConfig.fast(**changes) if args.fast else ReproduceConfig(**changes)
    result = reproduce(config)
    print(format_tables(result))
    path = args.json or Path("results") / ("reproduce_fast.json" if args.fast else "reproduce.json")
    write_json(path, result)
    print(f"numbers written to {path} ({result['seconds']:.0f} s)")
    return 0


def _render(args: argparse.Namespace) -> int:
    from ..figures import RenderConfig, render

    config = RenderConfig.fast(retrain=args.retrain) if args.fast else RenderConfig(retrain=args.retrain)
    start = time.perf_counter()
    try:
        written = render(args.out, config, only=args.only)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, size in written:
        print(f"{path}  {size / 1024:.0f} KB")
    total = sum(size for _, size in written)
    print(f"{len(written)} files, {total / 1024**2:.1f} MB, in {time.perf_counter() - start:.1f} s")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..files import write_json
    from .bench import BenchConfig, bench, format_bench

    result = bench(BenchConfig.quick() if args.quick else BenchConfig())
    print(format_bench(result))
    if args.json:
        write_json(args.json, result)
        print(f"numbers written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "render":
        return _render(args)
    if args.command == "train":
        return _train(args)
    if args.command == "reproduce":
        return _reproduce(args)
    if args.command == "explore":
        return explore.run(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse only lets the four through
