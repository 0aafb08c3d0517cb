"""MNIST-family image datasets from IDX files: find them, download them if needed, verify and parse them.

Each file is looked up on a search path (see `search_dirs`), gzip-compressed or raw. What is verified is the
sha256 of the decompressed payload: it is the same for every mirror, for Debian's recompressed copies and
for an uncompressed file, where the `.gz` bytes are not. A file that is found but fails verification is an
error, never skipped in favour of another location, so a corrupt copy cannot go unnoticed. Downloads go
through pooch into the cache, mirror after mirror; the catalogue (what each dataset is) is `catalogue.py`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pooch

from tasks.catalogue import ROLES, CATALOGUE, DatasetSpec, IdxFile

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Folders that hold a dataset's files directly (no <folder>/ level), e.g. Debian's `dataset-fashion-mnist`.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
DOWNLOAD_TIMEOUT_S = 30

_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801  # uint8 data, 3 and 1 dimensions
# pooch fetches (atomic writes, progress bar); what is checked is the payload, below, so no file hash is
# given to pooch: a hash of the .gz bytes would tie each file to one mirror's compression.
DOWNLOADER = pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT_S, progressbar=True)
_REPAIR = (
    "Replace it with an intact copy of the original file, or delete it so that load_dataset downloads a "
    "fresh one into the cache."
)


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not the data it is named after; the message says what to do."""


class ChecksumError(DatasetError):
    """The decompressed payload does not have the catalogue's sha256."""


class DatasetNotFoundError(DatasetError):
    """No place on the search path has the file and it could not (or may not) be downloaded."""


class Dataset(NamedTuple):
    """Images [N, H, W] uint8 and labels [N] int32 in [0, num_classes); read-only, shared by every caller."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


def read_idx(path: str | Path, sha256: str | None = None) -> np.ndarray:
    """A read-only uint8 array from an IDX file, gzip-compressed or not (told by content, not by name).

    With `sha256`, the decompressed payload must match it; the structure is checked either way.
    """
    return _decode(Path(path).read_bytes(), str(path), sha256, _REPAIR)


def _decode(raw: bytes, source: str, sha256: str | None, advice: str) -> np.ndarray:
    """Decompress, verify, parse; each failure is one DatasetError naming `source` and ending in `advice`."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError as e:
            raise DatasetError(f"{source} is a truncated gzip file (it ends mid-stream). {advice}") from e
        except (OSError, zlib.error) as e:
            raise DatasetError(f"{source} is a corrupt gzip file ({e}). {advice}") from e
    if sha256 is not None and (actual := hashlib.sha256(raw).hexdigest()) != sha256:
        raise ChecksumError(
            f"{source}: the sha256 of its decompressed payload is {actual}, expected {sha256}; the file is "
            f"corrupt or is not the data it is named after. {advice}"
        )
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in (_IMAGES_MAGIC, _LABELS_MAGIC):
        shown = "missing" if magic is None else f"0x{magic:08x}"
        raise DatasetError(
            f"{source} is not an IDX file of uint8 images or labels: its magic number is {shown}, expected "
            f"0x{_IMAGES_MAGIC:08x} (images) or 0x{_LABELS_MAGIC:08x} (labels). {advice}"
        )
    header = 4 + 4 * raw[3]
    shape = struct.unpack(f">{raw[3]}I", raw[4:header]) if len(raw) >= header else None
    if shape is None or len(raw) != header + math.prod(shape):
        expected = "a longer header" if shape is None else f"{header + math.prod(shape)} bytes, shape {shape}"
        raise DatasetError(
            f"{source} is truncated or has trailing data: its payload is {len(raw)} bytes but its header "
            f"calls for {expected}. {advice}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def cache_dir() -> Path:
    """Where downloads go: $XDG_CACHE_HOME/metalearn, else ~/.cache/metalearn."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "metalearn"


def search_dirs(folder: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders that may hold a dataset's files, first match wins: explicit, environment, cache, shared, OS."""
    roots = [data_dir, os.environ.get("METALEARN_DATA") or None, cache_dir(), SHARED_DATA]
    dirs = [Path(root).expanduser() / folder for root in roots if root is not None]
    return dirs + ([SYSTEM_DIRS[folder]] if folder in SYSTEM_DIRS else [])


def _find(file: IdxFile, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / f"{file.name}.gz", d / file.name):
            if candidate.is_file():
                return candidate
    return None


def _save(stream, dest: Path) -> None:
    """Copy `stream` into `dest` through a temporary file, so that an interruption leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def _fetch(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    pooch.retrieve(url, known_hash=None, fname=dest.name, path=dest.parent, downloader=DOWNLOADER)


def _verify_download(path: Path, file: IdxFile, url: str) -> Path:
    """Check a fresh download; a bad one is deleted, so that the next attempt downloads it again."""
    try:
        _decode(path.read_bytes(), f"{path} (downloaded from {url})", file.sha256, "It has been deleted.")
    except DatasetError:
        path.unlink()
        raise
    return path


def _download_file(spec: DatasetSpec, file: IdxFile) -> Path:
    """Try each mirror in turn; only network failures move on to the next one, a bad payload raises."""
    dest = cache_dir() / spec.folder / f"{file.name}.gz"
    failures = []
    for base in spec.base_urls:
        url = base + file.name + ".gz"
        try:
            _fetch(url, dest)
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"{url}: {e}")
            continue
        return _verify_download(dest, file, url)
    raise OSError("; ".join(failures))


def _download_from_archive(spec: DatasetSpec, files: list[IdxFile]) -> list[Path]:
    """Fetch the zip once (kept in the cache for the other files it holds) and extract `files` from it."""
    folder = cache_dir() / spec.folder
    archive = folder / Path(spec.archive_url).name
    if not archive.is_file():
        _fetch(spec.archive_url, archive)
    paths = []
    try:
        with zipfile.ZipFile(archive) as z:
            for file in files:
                dest = folder / f"{file.name}.gz"
                with z.open(f"gzip/{file.name}.gz") as member:
                    _save(member, dest)
                paths.append(_verify_download(dest, file, spec.archive_url))
    except DatasetError:
        archive.unlink()  # it holds the wrong data: fetch it afresh next time
        raise
    except (zipfile.BadZipFile, KeyError) as e:
        archive.unlink()
        raise DatasetError(
            f"{archive} (downloaded from {spec.archive_url}) is not the expected zip ({e}); it has been "
            "deleted, so that the next attempt downloads it again."
        ) from e
    return paths


def _download(spec: DatasetSpec, files: list[IdxFile]) -> list[Path]:
    if spec.archive_url is not None:
        return _download_from_archive(spec, files)
    return [_download_file(spec, file) for file in files]


def _not_found(name: str, spec: DatasetSpec, files: list[IdxFile], dirs: list[Path], why: str) -> Exception:
    looked = "; ".join(map(str, dirs))
    env = "" if os.environ.get("METALEARN_DATA") else " (METALEARN_DATA is not set)"
    wanted = ", ".join(f"{f.name}[.gz]" for f in files)
    return DatasetNotFoundError(
        f"Dataset {name!r}: {wanted} not found in any of: {looked}{env}. {why} To provide the data, put the "
        f"files (gzip-compressed or not) in <root>/{spec.folder}/ and pass data_dir=<root> (--data-dir on "
        "the command line) or set METALEARN_DATA=<root>."
    )


def _locate(name: str, spec: DatasetSpec, data_dir: str | Path | None, download: bool) -> list[Path]:
    files = [getattr(spec, role) for role in ROLES]
    dirs = search_dirs(spec.folder, data_dir)
    found = [_find(file, dirs) for file in files]
    missing = [file for file, path in zip(files, found) if path is None]
    if not missing:
        return found
    if not download:
        raise _not_found(name, spec, missing, dirs, "Downloading is disabled (download=False).")
    try:
        fetched = dict(zip(missing, _download(spec, missing)))
    except (OSError, http.client.HTTPException) as e:
        raise _not_found(name, spec, missing, dirs, f"Downloading into {cache_dir()} failed: {e}.") from e
    return [path or fetched[file] for file, path in zip(files, found)]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _read_split(spec: DatasetSpec, split: str, x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split's images (upright) and labels (from 0), checked to be what the catalogue says they are."""
    x = read_idx(x_path, getattr(spec, f"{split}_images").sha256)
    y = read_idx(y_path, getattr(spec, f"{split}_labels").sha256)
    for path, a, ndim, kind in ((x_path, x, 3, "images [N, rows, cols]"), (y_path, y, 1, "labels [N]")):
        if a.ndim != ndim:
            raise DatasetError(f"{path} holds an array of shape {a.shape}, not {kind}. {_REPAIR}")
    if len(x) != len(y):
        raise DatasetError(f"{x_path} holds {len(x)} images but {y_path} {len(y)} labels. {_REPAIR}")
    y = y.astype(np.int32) - spec.label_offset
    if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
        stored = f"[{spec.label_offset}, {spec.num_classes + spec.label_offset})"
        raise DatasetError(f"{y_path} has labels outside {stored}. {_REPAIR}")
    if spec.transposed:
        x = _frozen(np.ascontiguousarray(x.transpose(0, 2, 1)))
    return x, _frozen(y)


@functools.lru_cache(maxsize=8)
def _parse(spec: DatasetSpec, stamped: tuple[tuple[Path, int], ...]) -> Dataset:
    """Keyed by the files' paths and modification times as well, so that a replaced file is read again."""
    paths = [path for path, _ in stamped]
    train_x, train_y = _read_split(spec, "train", *paths[:2])
    test_x, test_y = _read_split(spec, "test", *paths[2:])
    return Dataset(train_x, train_y, test_x, test_y, spec.num_classes)


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """A catalogue dataset, found on the search path or downloaded into the cache, verified and parsed once.

    Raises DatasetError (ChecksumError, DatasetNotFoundError) with a message that says what to do.
    """
    if name not in CATALOGUE:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(CATALOGUE))}")
    spec = CATALOGUE[name]
    paths = _locate(name, spec, data_dir, download)
    return _parse(spec, tuple((p, p.stat().st_mtime_ns) for p in paths))
