"""Hostile checkpoint files are refused cheaply: before torch.load builds what they declare.

Each crafted file is a few KB (or, for the zip bomb, a few hundred KB) that asks for gigabytes:
a tensor with zero strides over four numbers, a storage that claims more than its entry holds, a
compressed entry, shared lists nested to visit 2^60 values when hashed, and so on. Every one
must raise one ``ValueError`` naming the file, and loading all of them in one process must not
raise its peak memory by 200 MB (measured with ``resource``; see the last test).
"""

import json
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from ncsn_toy import load_checkpoint
from ncsn_toy.recipes import DEFAULT_CHECKPOINTS

HONEST = DEFAULT_CHECKPOINTS / "ncsn_two_gaussians.pt"
ROOT = Path(__file__).resolve().parents[1]


def honest_payload() -> dict:
    return torch.load(HONEST, weights_only=True)


def save(payload: dict, path: Path) -> Path:
    with open(path, "wb") as handle:
        torch.save(payload, handle)
    return path


def strided_in_state(path: Path, shape: tuple[int, int] = (20_000, 20_000)) -> Path:
    payload = honest_payload()
    payload["state_dict"]["net.0.weight"] = torch.zeros(4).as_strided(shape, (0, 0))
    return save(payload, path)


def strided_in_metadata(path: Path, shape: tuple[int, int] = (20_000, 20_000)) -> Path:
    payload = honest_payload()
    payload["metadata"]["hidden"] = torch.zeros(4).as_strided(shape, (0, 0))
    return save(payload, path)


def overlapping_strides(path: Path) -> Path:
    payload = honest_payload()
    payload["metadata"]["hidden"] = torch.zeros(20_000).as_strided((10_000, 10_000), (1, 1))
    return save(payload, path)


def rewrite_entries(source: Path, path: Path, replace: dict) -> Path:
    """Copy the zip at ``source`` to ``path``, entry by entry, with ``replace[name](zip_out)``
    writing the named entries instead."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for entry in old.infolist():
            if entry.filename in replace:
                replace[entry.filename](new, entry.filename)
            else:
                new.writestr(entry, old.read(entry.filename))
    return path


def truncated_storage(path: Path) -> Path:
    """A storage entry shorter than the numel its pickle declares (torch would read past it)."""
    with zipfile.ZipFile(HONEST) as archive:
        data = archive.read("archive/data/9")

    def short(new: zipfile.ZipFile, name: str) -> None:
        new.writestr(name, data[:64])

    return rewrite_entries(HONEST, path, {"archive/data/9": short})


def zip_bomb(path: Path, inflated_mb: int = 512) -> Path:
    """The training snapshots' storage replaced by a deflated entry of ``inflated_mb`` MB."""
    chunk = bytes(2**20)

    def bomb(new: zipfile.ZipFile, name: str) -> None:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with new.open(info, "w", force_zip64=True) as handle:
            for _ in range(inflated_mb):
                handle.write(chunk)

    return rewrite_entries(HONEST, path, {"archive/data/9": bomb})


def huge_declared_storage(path: Path) -> Path:
    """A pickle that declares a storage of 10^12 floats over a 60-byte entry."""
    with zipfile.ZipFile(HONEST) as archive:
        pickled = archive.read("archive/data.pkl")
    # the first storage (sigmas, 15 floats) as pickled: ... 'cpu' BINPUT K 15 (BININT1)
    old = b"X\x03\x00\x00\x00cpuq\x18K\x0f"
    assert old in pickled
    patched = pickled.replace(old, b"X\x03\x00\x00\x00cpuq\x18\x8a\x06\x00\x10\xa5\xd4\xe8\x00", 1)

    def patch(new: zipfile.ZipFile, name: str) -> None:
        new.writestr(name, patched)

    return rewrite_entries(HONEST, path, {"archive/data.pkl": patch})


def shared_lists(path: Path) -> Path:
    """Lists shared 60 levels deep: a small file, 2^60 values when walked."""
    payload = honest_payload()
    nested = [0.0]
    for _ in range(60):
        nested = [nested, nested]
    payload["metadata"]["nested"] = nested
    return save(payload, path)


def large_pickle(path: Path) -> Path:
    payload = honest_payload()
    payload["metadata"]["numbers"] = list(range(600_000))  # about 3 MB of pickle
    return save(payload, path)


def code_in_pickle(path: Path) -> Path:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("this must never run",))

    payload = honest_payload()
    payload["metadata"]["evil"] = Evil()
    return save(payload, path)


def many_entries(path: Path) -> Path:
    def extra(new: zipfile.ZipFile, name: str) -> None:
        new.writestr(name, b"2\n")
        for i in range(20_000):
            new.writestr(f"archive/data/{100_000 + i}", b"")

    return rewrite_entries(HONEST, path, {"archive/version": extra})


def not_a_zip(path: Path) -> Path:
    path.write_bytes(zlib.compress(bytes(2**16)))
    return path


HOSTILE = {
    "zero strides (20000, 20000) in the weights": strided_in_state,
    "zero strides (20000, 20000) in the metadata": strided_in_metadata,
    "zero strides (10^6, 10^6) in the weights": lambda p: strided_in_state(p, (10**6, 10**6)),
    "zero strides (10^6, 10^6) in the metadata": lambda p: strided_in_metadata(p, (10**6, 10**6)),
    "overlapping strides (1, 1)": overlapping_strides,
    "a storage entry shorter than declared": truncated_storage,
    "a storage of 10^12 elements declared": huge_declared_storage,
    "a 512 MB zip bomb": zip_bomb,
    "a 64 MB zip bomb": lambda p: zip_bomb(p, 64),
    "lists shared 60 levels deep": shared_lists,
    "a pickle over 1 MB": large_pickle,
    "code in the pickle": code_in_pickle,
    "20000 entries": many_entries,
    "compressed bytes, not a zip": not_a_zip,
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    return {name: craft(folder / f"case{i}.pt") for i, (name, craft) in enumerate(HOSTILE.items())}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_is_one_value_error_naming_it(hostile_files, name):
    path = hostile_files[name]
    with pytest.raises(ValueError, match="case") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", HOSTILE)
def test_the_crafted_files_are_small(hostile_files, name):
    """What makes them hostile: at most a few MB (most a few KB) that declare gigabytes."""
    assert hostile_files[name].stat().st_size < 4 * 2**20


def test_honest_files_still_load():
    for path in sorted(DEFAULT_CHECKPOINTS.glob("*.pt")):
        load_checkpoint(path)


MEASURE = """
import json, resource, sys, time
import torch
from ncsn_toy import load_checkpoint
load_checkpoint(sys.argv[1])  # warm up: the honest file, and every lazy import
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seconds = {}
for path in sys.argv[2:]:
    start = time.perf_counter()
    try:
        load_checkpoint(path)
        outcome = "loaded"
    except ValueError:
        outcome = "refused"
    seconds[path] = [time.perf_counter() - start, outcome]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_mb": (peak - base) / 1024, "seconds": seconds}))
"""


def test_refusing_every_hostile_file_takes_little_memory(hostile_files):
    """All of them loaded in one fresh process: its peak resident memory (ru_maxrss, in KB on
    Linux) may grow by at most 200 MB over the peak after an honest load. The peak only grows,
    so this bounds each file's own peak. Times are printed (a benchmark's business, not a test's:
    each takes milliseconds; before the archive was inspected, seconds and gigabytes)."""
    paths = [str(hostile_files[name]) for name in HOSTILE]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(HONEST), *paths],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    measured = json.loads(result.stdout)
    for path, (seconds, outcome) in measured["seconds"].items():
        print(f"{Path(path).name}: {outcome} in {seconds * 1000:.1f} ms")
        assert outcome == "refused"
    assert measured["extra_mb"] < 200
