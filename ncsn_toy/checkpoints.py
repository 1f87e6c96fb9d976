"""Checkpoints: one small file per trained network, safe to load and safe to write.

A checkpoint holds the weights, the options that rebuild the network (``model.architecture``,
and the ``sigmas`` buffer inside the weights) and free-form metadata (the mixture, the training
settings, the recommended sampler settings, ...). It is read with
``torch.load(..., weights_only=True)``, so loading a file can never run code, and written to a
temporary file that is renamed into place, so an interrupted save never leaves a broken file.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write
from .mixtures import GaussianMixture
from .networks import NoiseConditionalScoreNet, ScoreNet

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_mixture"]

FORMAT = "ncsn_toy-checkpoint"  # marks our files
VERSION = 1
_MODELS: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (ScoreNet, NoiseConditionalScoreNet)}


def _check_metadata(value: object, where: str = "metadata") -> None:
    """Only what ``torch.load(weights_only=True)`` can read back: plain Python values and tensors."""
    if value is None or isinstance(value, (str, bool, numbers.Number, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_metadata(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} keys must be strings, got {key!r}")
            _check_metadata(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} must hold only str, numbers, bools, None, tensors, lists and dicts "
        f"(it is loaded with weights_only=True), got {type(value).__name__}"
    )


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **metadata: object) -> Path:
    """Save ``model`` (a :class:`ScoreNet` or :class:`NoiseConditionalScoreNet`) and ``metadata``.

    Metadata values must be plain Python (str, numbers, bools, None, lists, dicts) or tensors; a
    :class:`GaussianMixture` may be passed as ``mixture=`` and is stored as its ``to_dict()``.
    Returns the path written.
    """
    name = type(model).__name__
    if name not in _MODELS:
        raise TypeError(f"model must be one of {sorted(_MODELS)}, got {name}")
    if isinstance(metadata.get("mixture"), GaussianMixture):
        metadata["mixture"] = metadata["mixture"].to_dict()
    _check_metadata(metadata)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": name,
        "architecture": dict(model.architecture),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network saved at ``path``, in eval mode, with ``model.metadata`` (a dict).

    Raises ``FileNotFoundError`` if there is no file, ``ValueError`` if the file is corrupt or
    is not an ncsn_toy checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated zip, random bytes, a pickle with code, ...
        raise ValueError(f"{path} is not a readable ncsn_toy checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ncsn_toy checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')}, this code reads {VERSION}")
    try:
        cls = _MODELS[payload["model"]]
        state = payload["state_dict"]
        options = dict(payload["architecture"])
        if cls is NoiseConditionalScoreNet:
            options["sigmas"] = state["sigmas"]
        model = cls(**options)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is an ncsn_toy checkpoint but cannot be rebuilt: {err}") from err
    model.metadata = dict(payload.get("metadata") or {})
    return model.to(map_location).eval()


def checkpoint_mixture(model: nn.Module) -> GaussianMixture:
    """The :class:`GaussianMixture` a loaded checkpoint was trained on (``metadata['mixture']``)."""
    data = getattr(model, "metadata", {}).get("mixture")
    if data is None:
        raise ValueError("this model's metadata holds no 'mixture'")
    return GaussianMixture.from_dict(data)
