"""Saving the tutorial notebook without its outputs, so that running it leaves `git status` clean.

Git takes a tracked file for modified as soon as its size differs from the size it recorded, before
any clean filter runs: a notebook saved with its outputs shows in `git status` as modified even
where a filter such as nbstripout would strip it back to the committed bytes (`git diff` is then
empty). So the outputs must not reach the file. :func:`pre_save_hook` strips the repository's
``NCSN_toy_Example.ipynb`` as Jupyter's server saves it: the outputs, the execution counts, the
kernel's ``language_info`` (it holds the Python version), the widgets' state and the cells' view
state. The file on disk stays byte for byte the committed one until a cell itself changes; the
outputs stay on screen until the notebook is closed. Other notebooks are saved as before.

The module is a Jupyter server extension that registers the hook. ``python -m
ncsn_toy.figures.notebook_save`` enables it, once, for the Jupyter of this Python environment: it
writes ``<sys.prefix>/etc/jupyter/jupyter_server_config.d/ncsn_toy.json``, as ``jupyter server
extension enable --sys-prefix`` would; a Jupyter server started afterwards loads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..runtime import atomic_write

__all__ = ["TUTORIAL", "EXTENSION", "strip", "is_tutorial", "pre_save_hook", "install", "main"]

# the notebook the hook strips, at the root of a checkout (beside the package's folder)
TUTORIAL = "NCSN_toy_Example.ipynb"
# this module, as Jupyter's server names the extension
EXTENSION = "ncsn_toy.figures.notebook_save"
# notebook metadata a run adds: the kernel's language_info, the widgets' state, the trust signature
NOTEBOOK_KEYS = ("language_info", "widgets", "signature")
# cell metadata that is view state or timing, not content (nbstripout's default list, and the
# "jupyter" key where JupyterLab keeps hidden inputs and outputs)
CELL_KEYS = (
    "collapsed",
    "scrolled",
    "ExecuteTime",
    "execution",
    "heading_collapsed",
    "hidden",
    "jupyter",
)
# where install() enables the extension, under the environment's prefix
CONFIG_FILE = Path("etc") / "jupyter" / "jupyter_server_config.d" / "ncsn_toy.json"


def strip(notebook: dict) -> dict:
    """Remove in place, and return, what running and viewing add to a notebook: every code cell's
    outputs and execution count, ``NOTEBOOK_KEYS`` and each cell's ``CELL_KEYS``."""
    for key in NOTEBOOK_KEYS:
        notebook.get("metadata", {}).pop(key, None)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
    return notebook


def is_tutorial(os_path: Path) -> bool:
    """Whether ``os_path`` is the tutorial at the root of a checkout of this project."""
    return os_path.name == TUTORIAL and (os_path.parent / "ncsn_toy" / "figures").is_dir()


def pre_save_hook(model: dict, path: str, contents_manager: object, **kwargs: object) -> None:
    """Jupyter's pre-save hook: strip the tutorial's ``model`` before the server writes it.

    Called by the server as ``hook(model=..., path=..., contents_manager=...)`` with ``path``
    relative to the server's root; any other file is left alone.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = Path(getattr(contents_manager, "root_dir", "."))
    if is_tutorial((root / path.lstrip("/")).resolve()):
        strip(model["content"])


def _jupyter_server_extension_points() -> list[dict]:
    """What Jupyter's server loads when the extension is enabled: this module."""
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: object) -> None:
    """Register the hook with the server's contents manager (beside any other hook)."""
    serverapp.contents_manager.register_pre_save_hook(pre_save_hook)


def install(prefix: str | Path = sys.prefix) -> Path:
    """Enable the extension for the Jupyter of the environment at ``prefix``; return the file."""
    config = {"ServerApp": {"jpserver_extensions": {EXTENSION: True}}}
    text = json.dumps(config, indent=2) + "\n"
    return atomic_write(Path(prefix) / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ncsn_toy.figures.notebook_save [--prefix DIR]``: enable it, and say so."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {EXTENSION}",
        description=f"Make Jupyter save {TUTORIAL} without its outputs (git status stays clean).",
    )
    parser.add_argument(
        "--prefix",
        default=sys.prefix,
        help="the environment whose Jupyter loads the hook (default: this Python's, %(default)s)",
    )
    path = install(parser.parse_args(argv).prefix)
    print(
        f"wrote {path}: Jupyter now saves {TUTORIAL} without its outputs, so that running it "
        "leaves `git status` clean (restart a running Jupyter server for it to take effect)"
    )


if __name__ == "__main__":
    main()
