"""Checkpoints: one small file per trained network, safe to load and safe to write.

A checkpoint holds the weights, the options that rebuild the network (``model.architecture``,
and the ``sigmas`` buffer inside the weights), free-form metadata (the mixture, the training
settings, the recommended sampler settings, ...) and a SHA-256 hash of all of it.

Loading trusts nothing in the file: it is read with ``torch.load(..., weights_only=True)`` (no
code runs), the hash must match (a flipped byte is caught), the architecture must agree with the
tensors actually present (their number and shapes) before anything is built (so a file that
claims a million layers costs nothing), and the weights must be finite. Saving converts what is
safely convertible to plain Python, refuses the rest before writing, writes to a temporary file,
reads that file back with every check, and only then renames it into place: a save never replaces
a loadable file with one it cannot load back. The archive inside has a fixed name, so saving the
same model twice gives the same bytes.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .archive import TensorSpec, numel, read_archive
from .mixtures import GaussianMixture
from .networks import ACTIVATIONS, SIGMA_INPUTS, EpsilonNet, NoiseConditionalScoreNet, ScoreNet
from .runtime import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_mixture"]

FORMAT = "ncsn_toy-checkpoint"  # marks our files
METADATA_TENSOR_BYTES = 16 * 2**20  # tensors in the metadata (the training snapshots: ~150 KB)
MAX_NODES = 50_000  # values in a payload, a shared one counted each time hashing visits it
VERSION = 2  # 2: with a content hash; 1 (ncsn_toy 0.1) had none
MAX_DEPTH = 100  # metadata nesting (deeper is a mistake, or a list that contains itself)
_MODELS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (ScoreNet, NoiseConditionalScoreNet, EpsilonNet)
}
# the architecture options of each model, and what each must be
_OPTIONS = {
    "ScoreNet": {"dim": int, "hidden": int, "n_hidden_layers": int, "activation": str},
    "EpsilonNet": {
        "dim": int,
        "hidden": int,
        "n_hidden_layers": int,
        "activation": str,
        "n_steps": int,
        "data_std": (float, type(None)),
    },
    "NoiseConditionalScoreNet": {
        "dim": int,
        "hidden": int,
        "n_hidden_layers": int,
        "activation": str,
        "sigma_input": str,
        "divide_by_sigma": bool,
        "data_std": (float, type(None)),
    },
}


# ---------------------------------------------------------------------------------------- saving
def save_checkpoint(model: nn.Module, path: str | os.PathLike, **metadata: object) -> Path:
    """Save ``model`` (one of this package's networks) and ``metadata``.

    Metadata values may be str, numbers, bools, None, tensors, lists, tuples and dicts with str
    keys; NumPy scalars and arrays, subclasses of those types (e.g. ``OrderedDict``) and paths are
    converted to them, a :class:`GaussianMixture` passed as ``mixture=`` is stored as its
    ``to_dict()``; anything else (enums, sets, objects) raises ``TypeError`` naming the key,
    before anything is written. Non-finite weights raise ``ValueError``. Returns the path written.
    """
    _check_path(path)
    name = type(model).__name__
    if name not in _MODELS or type(model) is not _MODELS[name]:
        raise TypeError(f"model must be one of {sorted(_MODELS)}, got {type(model).__name__}")
    if isinstance(metadata.get("mixture"), GaussianMixture):
        metadata["mixture"] = metadata["mixture"].to_dict()
    metadata = _plain(metadata, "metadata")
    state = {sys.intern(key): _dense_copy(value) for key, value in model.state_dict().items()}
    for key, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"cannot save {name}: its tensor {key!r} holds NaN or infinite values")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": name,
        "architecture": _plain(model.architecture),
        "state_dict": state,
        "metadata": metadata,
    }
    payload["sha256"] = _digest(payload)

    def write(tmp: str) -> None:
        # a file object: the archive inside is named "archive", not after tmp
        with open(tmp, "wb") as handle:
            try:
                torch.save(payload, handle)
            except RuntimeError as err:
                # torch's writer reports a full disk (or a file size limit) as its own error
                raise OSError(f"could not write {path}: {_one_line(err)}") from err
        # the proof: it loads back and rebuilds
        _build(_read(Path(tmp), shown_as=Path(path)), Path(path))

    return atomic_write(path, write)


def _plain(value: object, where: str = "architecture", depth: int = 0) -> object:
    """``value`` as what ``torch.load(weights_only=True)`` reads back.

    ``TypeError`` naming ``where`` if it cannot be.
    """
    if depth > MAX_DEPTH:  # also what a list that contains itself comes to
        raise TypeError(f"{where} is nested more than {MAX_DEPTH} levels deep (or contains itself)")
    if type(value) is str:
        # interned: equal strings are one object, so pickle's memo (which goes by identity)
        # writes the same bytes whoever built the metadata
        return sys.intern(value)
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, enum.Enum):
        # an IntEnum is an int, but it would not come back as one
        raise TypeError(f"{where} is an enum member ({value!r}); store its .value or .name instead")
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where, depth)
    if isinstance(value, np.generic):  # NumPy scalars: np.float64(0.1) -> 0.1
        return _plain(value.item(), where, depth)
    if isinstance(value, torch.Tensor):
        if (
            value.layout != torch.strided
            or value.is_nested
            or value.device.type == "meta"
            or value.is_quantized
        ):
            raise TypeError(
                f"{where} is a {value.layout} / nested / meta / quantized tensor; store a dense one"
            )
        return _dense_copy(value).as_subclass(torch.Tensor)
    # subclasses of the plain types
    for kind, plain in ((numbers.Integral, int), (float, float), (str, str)):
        if isinstance(value, kind):
            return _plain(plain(value), where, depth)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} keys must be strings, got {key!r}")
            out[sys.intern(str(key))] = _plain(item, f"{where}[{key!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint metadata may hold only str, numbers, "
        "bools, None, tensors, lists, tuples and dicts with str keys (it is loaded with "
        "weights_only=True)"
    )


def _dense_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy on the CPU, with a storage of its own: what a checkpoint holds."""
    return tensor.detach().cpu().clone(memory_format=torch.contiguous_format)


def _digest(payload: dict) -> str:
    """SHA-256 of everything in ``payload`` but its own hash, in a canonical encoding."""
    hasher = hashlib.sha256()
    visits = 0

    def feed(value: object, depth: int = 0) -> None:
        nonlocal visits
        visits += 1
        # a list shared a thousand times is visited a thousand times
        if visits > MAX_NODES:
            raise ValueError(f"its metadata holds more than {MAX_NODES} values")
        # the payload and its metadata dict around metadata nested up to MAX_DEPTH
        if depth > MAX_DEPTH + 2:
            raise ValueError(f"its metadata is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous().reshape(-1)
            hasher.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
            # the tensor's own bytes, through the buffer protocol: no copy
            hasher.update(data.view(torch.uint8).numpy())
        elif isinstance(value, dict):
            hasher.update(f"d{len(value)}:".encode())
            for key in sorted(value, key=str):
                feed(str(key), depth + 1)
                feed(value[key], depth + 1)
        elif isinstance(value, (list, tuple)):
            hasher.update(f"{'l' if isinstance(value, list) else 't'}{len(value)}:".encode())
            for item in value:
                feed(item, depth + 1)
        elif isinstance(value, float):
            hasher.update(f"f{value.hex()};".encode())
        else:  # None, bool, int, str (bool before int: repr tells them apart)
            text = repr(value)
            hasher.update(f"{type(value).__name__}{len(text)}:{text}".encode())

    feed({key: item for key, item in payload.items() if key != "sha256"})
    return hasher.hexdigest()


# --------------------------------------------------------------------------------------- loading
def load_checkpoint(
    path: str | os.PathLike,
    *,
    expect: type[nn.Module] | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild the network saved at ``path``, with ``model.metadata`` (a dict).

    The model comes in eval mode and in the dtype it was saved in.

    Args:
        path: a file written by :func:`save_checkpoint`.
        expect: the model class the caller needs (``ScoreNet``, ``NoiseConditionalScoreNet`` or
            ``EpsilonNet``);
            a file of the other kind raises ``ValueError`` naming both.
        map_location: device to put the model on.

    Raises ``FileNotFoundError`` if there is no file, and ``ValueError`` naming the file if it is
    not an ncsn_toy checkpoint, is corrupt (its contents do not match their hash), holds
    non-finite weights, or describes an architecture its tensors do not have.
    """
    _check_path(path)
    if expect is not None and expect not in _MODELS.values():
        raise TypeError(f"expect must be None or one of {sorted(_MODELS)}, got {expect!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = _read(path)
    cls = _MODELS[payload["model"]]
    if expect is not None and cls is not expect:
        raise ValueError(f"{path} holds a {cls.__name__}, but a {expect.__name__} was expected")
    return _build(payload, path).to(map_location).eval()


def _build(payload: dict, path: Path) -> nn.Module:
    """The network a checked payload describes, in the saved dtype, with ``metadata``."""
    cls = _MODELS[payload["model"]]
    state = payload["state_dict"]
    options = dict(payload["architecture"])
    if cls is NoiseConditionalScoreNet:
        options["sigmas"] = state["sigmas"]
    try:
        # keep the saved dtype (float64 stays float64)
        model = cls(**options).to(state["net.0.weight"].dtype)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is an ncsn_toy checkpoint but cannot be rebuilt: {err}") from err
    model.metadata = payload["metadata"]
    return model


def _check_path(path: object) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or an os.PathLike, got {type(path).__name__}")


def _read(path: Path, shown_as: Path | None = None) -> dict:
    """The checked payload of the file at ``path``; ``ValueError`` if anything is off.

    The archive is inspected before ``torch.load`` builds a single tensor (:func:`_inspect`), so
    a hostile file is refused cheaply. Errors name the file ``shown_as`` (default ``path``).
    """
    shown_as = shown_as or path
    _inspect(path, shown_as)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, random bytes, a pickle with code, ...
        reason = _one_line(err)
        raise ValueError(f"{shown_as} is not a readable ncsn_toy checkpoint ({reason})") from err
    # again on what was loaded: the file may have changed since it was inspected
    _check_payload(payload, shown_as)
    try:
        digest = _digest(payload)
    except ValueError as err:  # a crafted file: metadata nested thousands deep
        raise ValueError(f"{shown_as} is not a valid ncsn_toy checkpoint: {err}") from err
    if payload.get("sha256") != digest:
        raise ValueError(
            f"{shown_as} is corrupted: its contents do not match the hash stored in it"
        )
    for key, value in payload["state_dict"].items():
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{shown_as}: tensor {key!r} holds NaN or infinite values")
    return payload


def _inspect(path: Path, shown_as: Path) -> None:
    """Refuse a hostile or broken file before ``torch.load`` allocates anything for it.

    Checks, reading only the zip directory and data.pkl: at most ``MAX_ENTRIES`` uncompressed
    entries of the names ``torch.save`` writes; a pickle of at most ``MAX_PICKLE_BYTES`` that
    refers to nothing but tensors, storages and dicts; every tensor dense (its own storage, in
    order, no stride tricks) over a storage entry of exactly its size; the payload of this
    package, with the tensors its architecture implies (``check_payload``), and at most
    ``METADATA_TENSOR_BYTES`` of tensors besides them. So loading allocates no more than the
    file holds.
    """
    try:
        payload, tensors = read_archive(path)
    except Exception as err:  # not a zip, a crafted pickle, a storage of the wrong size, ...
        reason = _one_line(err)
        raise ValueError(f"{shown_as} is not a readable ncsn_toy checkpoint ({reason})") from err
    _check_payload(payload, shown_as)
    state_tensors = {id(t) for t in payload["state_dict"].values()}
    extra = sum(t.nbytes for t in tensors if id(t) not in state_tensors)
    if extra > METADATA_TENSOR_BYTES:
        raise ValueError(
            f"{shown_as} holds {extra} bytes of tensors besides the weights; a checkpoint of "
            f"this package holds at most {METADATA_TENSOR_BYTES}"
        )


def _one_line(err: BaseException) -> str:
    """An error as one short line (torch's messages run over several)."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def _check_payload(payload: object, path: Path) -> None:
    """A payload of this package: its marker, version, model, and an architecture that the
    tensors in the file agree with (their number and shapes). Works on what :func:`_inspect`
    reads (tensors as :class:`TensorSpec`) as on what ``torch.load`` builds."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ncsn_toy checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{path} has checkpoint format {payload.get('version')!r}; this code reads format "
            f"{VERSION} (files of format 1 have no content hash: retrain with "
            "`python -m ncsn_toy train`)"
        )
    if payload.get("model") not in _MODELS:
        raise ValueError(
            f"{path}: unknown model {payload.get('model')!r}; expected one of {sorted(_MODELS)}"
        )
    for key in ("architecture", "state_dict", "metadata"):
        if not isinstance(payload.get(key), dict):
            raise ValueError(
                f"{path}: '{key}' must be a dict, got {type(payload.get(key)).__name__}"
            )
    _check_architecture(payload["model"], payload["architecture"], path)
    _check_state(payload["model"], payload["architecture"], payload["state_dict"], path)


def _check_architecture(name: str, arch: dict, path: Path) -> None:
    """The architecture options must be those of ``name``, of the right types and values."""
    expected_options = _OPTIONS[name]
    if set(arch) != set(expected_options):
        raise ValueError(
            f"{path}: architecture options {sorted(arch)} are not those of a {name} "
            f"({sorted(expected_options)})"
        )
    for key, kind in expected_options.items():
        if not isinstance(arch[key], kind) or (kind is int and isinstance(arch[key], bool)):
            raise ValueError(f"{path}: architecture option {key}={arch[key]!r} has the wrong type")
    if arch["activation"] not in ACTIVATIONS or arch.get("sigma_input", "raw") not in SIGMA_INPUTS:
        raise ValueError(f"{path}: unknown activation or sigma input in {arch}")
    if min(arch["dim"], arch["hidden"], arch["n_hidden_layers"]) < 1:
        raise ValueError(
            f"{path}: the architecture says dimension {arch['dim']}, width {arch['hidden']} and "
            f"{arch['n_hidden_layers']} hidden layers; each must be at least 1"
        )


def _check_state(name: str, arch: dict, state: dict, path: Path) -> None:
    """The tensors must be exactly those the architecture implies, before anything is built."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state keys must be strings, got {key!r}")
        tensor_like = isinstance(value, (torch.Tensor, TensorSpec))
        if not tensor_like or value.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{path}: state entry {key!r} is not a float32 or float64 tensor")
    if len({value.dtype for value in state.values()}) > 1:
        raise ValueError(f"{path}: tensors of mixed dtypes")
    n_linear = sum(key.endswith(".weight") for key in state)
    if arch["n_hidden_layers"] + 1 != n_linear:
        raise ValueError(
            f"{path}: architecture says {arch['n_hidden_layers']} hidden layers of width "
            f"{arch['hidden']}, but the file holds {n_linear} weight matrices"
        )
    # the noise-conditional networks take sigma (or the step) as one more input
    conditional = name in ("NoiseConditionalScoreNet", "EpsilonNet")
    widths = [arch["dim"] + conditional, *[arch["hidden"]] * arch["n_hidden_layers"], arch["dim"]]
    shapes = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        shapes[f"net.{2 * i}.weight"] = (fan_out, fan_in)
        shapes[f"net.{2 * i}.bias"] = (fan_out,)
    if name == "NoiseConditionalScoreNet":
        sigmas = state.get("sigmas")
        shapes["sigmas"] = (numel(sigmas.shape),) if sigmas is not None else None
    found = {key: tuple(value.shape) for key, value in state.items()}
    if found != shapes:
        raise ValueError(
            f"{path}: the tensors {found} do not match the architecture {arch} ({shapes})"
        )


def checkpoint_mixture(model: nn.Module) -> GaussianMixture:
    """The :class:`GaussianMixture` a loaded checkpoint was trained on (``metadata['mixture']``)."""
    data = getattr(model, "metadata", {}).get("mixture")
    if data is None:
        raise ValueError("this model's metadata holds no 'mixture'")
    return GaussianMixture.from_dict(data)
