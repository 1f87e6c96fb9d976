"""What a checkpoint file holds, read without building it: the archive checked before loading.

``torch.load`` builds every tensor a file declares before anyone can look at it, so a file of a
few KB can ask for gigabytes (a tensor of shape (20000, 20000) with stride (0, 0) over four
numbers, a storage that claims more elements than its entry holds, a compressed entry that
inflates a thousandfold). :func:`read_archive` reads only the zip directory and the pickled
structure, with tensors as :class:`TensorSpec` descriptions, and refuses anything that is not
what ``torch.save`` writes for dense tensors. What it accepts, ``torch.load`` loads by allocating
no more than the file holds.

The archive ``torch.save`` writes: uncompressed entries under one folder, the pickled structure
(data.pkl) and one entry per tensor storage (data/<key>). A checkpoint of this package holds
about twenty entries, a pickle of a few KB and at most a few MB of tensors.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

__all__ = ["read_archive", "TensorSpec", "StorageSpec", "numel", "MAX_PICKLE_BYTES"]

MAX_ENTRIES = 10_000  # entries in the archive
MAX_PICKLE_BYTES = 2**20  # data.pkl: the structure and the metadata
_ARCHIVE_FILES = {"data.pkl", "version", "byteorder", ".format_version", ".storage_alignment"}
_ARCHIVE_FILES |= {".data/serialization_id", ".data/version"}
_STORAGES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class StorageSpec(NamedTuple):
    """A storage as data.pkl declares it: its entry data/<key>, dtype and number of elements."""

    key: str
    dtype: torch.dtype
    numel: int


class TensorSpec(NamedTuple):
    """A tensor as data.pkl declares it, without building it."""

    storage: StorageSpec
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype

    @property
    def nbytes(self) -> int:
        return numel(self.shape) * self.dtype.itemsize


class _ArchiveReader(pickle.Unpickler):
    """Reads data.pkl as plain Python, every tensor a :class:`TensorSpec`: builds nothing of
    torch, and knows no other class (anything else in the pickle is refused)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.tensors: list[TensorSpec] = []

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._tensor
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which no checkpoint holds")

    def persistent_load(self, pid: object) -> StorageSpec:
        """('storage', storage type, key, location, numel): a storage in entry data/<key>."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown reference {pid!r:.100}")
        _, dtype, key, _, numel = pid
        valid_key = isinstance(key, str) and key.isdigit()
        if not (isinstance(dtype, torch.dtype) and valid_key and _is_count(numel)):
            raise pickle.UnpicklingError(f"malformed storage {pid!r:.100}")
        return StorageSpec(key, dtype, numel)

    def _tensor(
        self, storage: object, offset: object, shape: object, stride: object, *rest: object
    ) -> TensorSpec:
        sizes = (shape, stride)
        if not isinstance(storage, StorageSpec) or not _is_count(offset):
            raise pickle.UnpicklingError("malformed tensor")
        if not all(isinstance(s, tuple) and all(_is_count(v) for v in s) for s in sizes):
            raise pickle.UnpicklingError("malformed tensor shape or stride")
        spec = TensorSpec(storage, offset, shape, stride)
        self.tensors.append(spec)
        return spec


def read_archive(path: Path) -> tuple[object, list[TensorSpec]]:
    """data.pkl of the archive at ``path``, read by :class:`_ArchiveReader`, and its tensors;
    ``ValueError`` if the archive or a tensor is not as ``torch.save`` writes them."""
    with open(path, "rb") as handle:
        _check_entry_count(handle)
        with zipfile.ZipFile(handle) as archive:
            entries = archive.infolist()
            folder = entries[0].filename.split("/", 1)[0] if entries else ""
            sizes = {}
            for entry in entries:
                name = entry.filename.removeprefix(f"{folder}/")
                is_storage = name.startswith("data/") and name[5:].isdigit()
                if not entry.filename.startswith(f"{folder}/") or not (
                    is_storage or name in _ARCHIVE_FILES
                ):
                    raise ValueError(f"unexpected entry {entry.filename!r:.100}")
                stored = entry.compress_type == zipfile.ZIP_STORED
                if not stored or entry.compress_size != entry.file_size:
                    raise ValueError(f"compressed entry {entry.filename!r:.100}")
                sizes[name] = entry.file_size
            if sizes.get("data.pkl", MAX_PICKLE_BYTES + 1) > MAX_PICKLE_BYTES:
                raise ValueError(f"no data.pkl of at most {MAX_PICKLE_BYTES} bytes")
            reader = _ArchiveReader(io.BytesIO(archive.read(f"{folder}/data.pkl")))
            payload = reader.load()
    seen = set()
    for tensor in reader.tensors:
        storage = tensor.storage
        if sizes.get(f"data/{storage.key}") != storage.numel * storage.dtype.itemsize:
            raise ValueError(f"storage {storage.key} does not match its entry")
        if storage.key in seen:
            raise ValueError(f"storage {storage.key} is shared by two tensors")
        seen.add(storage.key)
        if tensor.offset != 0 or numel(tensor.shape) != storage.numel:
            raise ValueError(f"a tensor of shape {tensor.shape} does not fill its storage")
        if tensor.stride != _contiguous_stride(tensor.shape):
            raise ValueError(f"a tensor of shape {tensor.shape} has stride {tensor.stride}")
    return payload, reader.tensors


def _check_entry_count(handle: io.BufferedReader) -> None:
    """Refuse an archive of more than ``MAX_ENTRIES`` entries from its end record, before the
    zip directory (a Python object per entry) is read."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 2**16 - 22))
    tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        raise zipfile.BadZipFile("no end of central directory")
    entries = struct.unpack("<H", tail[end + 10 : end + 12])[0]
    if entries > MAX_ENTRIES:  # 0xFFFF: a zip64 archive, which torch writes only past 65535
        raise ValueError(f"{entries} entries")
    handle.seek(0)


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride = []
    step = 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))
