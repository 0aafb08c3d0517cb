"""IDX datasets: parsing, verification, the search path, downloads (faked: tests never touch the network),
the real files in ../shared/data when present, and the preprocessing that makes datasets interchangeable."""

import dataclasses
import gzip
import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from tasks import datasets
from tasks.datasets import ChecksumError, DatasetError, DatasetNotFoundError, load_dataset, read_idx
from tasks.preprocess import fit_classes, fit_inputs, normalize, resize

REAL_SHARED = datasets.SHARED_DATA
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


def idx_bytes(a: np.ndarray) -> bytes:
    magic = {3: 0x803, 1: 0x801}[a.ndim]
    return struct.pack(f">{1 + a.ndim}I", magic, *a.shape) + a.astype(np.uint8).tobytes()


def write_idx(path: Path, a: np.ndarray, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = idx_bytes(a)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def fake_arrays(seed: int, n=(6, 4), num_classes=10, offset=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 5, 5), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % num_classes + offset).astype(np.uint8)
    return arrays


def install(monkeypatch, folder: Path, name="mnist", seed=0, compress=True, **kw) -> dict[str, np.ndarray]:
    """Write a tiny version of dataset `name` into `folder` and make the catalogue's checksums match it."""
    spec = datasets.CATALOGUE[name]
    arrays = fake_arrays(seed, **kw)
    files = {}
    for role in ROLES:
        file = getattr(spec, role)
        write_idx(folder / (file.name + (".gz" if compress else "")), arrays[role], compress)
        files[role] = dataclasses.replace(file, sha256=hashlib.sha256(idx_bytes(arrays[role])).hexdigest())
    monkeypatch.setitem(datasets.CATALOGUE, name, dataclasses.replace(spec, **files))
    return arrays


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user environment, cache, shared data or network: each test builds the places it needs."""
    monkeypatch.delenv("METALEARN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "SHARED_DATA", tmp_path / "shared")
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": tmp_path / "debian" / "fashion-mnist"})

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(datasets, "DOWNLOADER", no_network)


# --- IDX parsing and its errors ---


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_parses_images_and_labels(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], np.uint8)
    x = read_idx(write_idx(tmp_path / "x", images, compress))
    y = read_idx(write_idx(tmp_path / "y", labels, compress), hashlib.sha256(idx_bytes(labels)).hexdigest())
    assert x.dtype == y.dtype == np.uint8 and x.shape == (2, 3, 4) and y.shape == (2,)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(struct.pack(">II", 0x804, 1) + b"\x00"))
    with pytest.raises(DatasetError, match=r"labels\.gz.*magic number is 0x00000804"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.ones((50, 28, 28), np.uint8) * np.arange(28, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DatasetError, match=r"x\.gz is a truncated gzip file"):
        read_idx(path)


def test_truncated_raw_file(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((3, 4, 4), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"x is truncated.*59 bytes.*64 bytes"):
        read_idx(path)


def test_checksum_mismatch_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    arrays = install(monkeypatch, datasets.SHARED_DATA / "mnist")  # an intact copy later on the search path
    write_idx(tmp_path / "mine" / "mnist" / "train-labels-idx1-ubyte.gz", arrays["train_labels"][::-1])
    with pytest.raises(ChecksumError, match=r"mine/mnist/train-labels-idx1-ubyte\.gz: the sha256"):
        load_dataset("mnist", data_dir=tmp_path / "mine", download=False)


# --- search path ---


def test_missing_files_without_download_list_every_place(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("fashion-mnist", data_dir=tmp_path / "mine", download=False)
    message = str(e.value)
    for place in ("mine/fashion-mnist", "cache/metalearn/fashion-mnist", "shared/fashion-mnist", "debian"):
        assert place in message
    for hint in ("METALEARN_DATA is not set", "download=False", "METALEARN_DATA=<root>", "--data-dir"):
        assert hint in message
    assert "\n" not in message


def test_search_order_data_dir_env_cache_shared(tmp_path, monkeypatch):
    places = {
        "data_dir": tmp_path / "explicit",
        "env": tmp_path / "env",
        "cache": tmp_path / "cache" / "metalearn",
        "shared": datasets.SHARED_DATA,
    }
    written = {key: install(monkeypatch, root / "mnist", seed=i)
               for i, (key, root) in enumerate(places.items())}
    spec = datasets.CATALOGUE["mnist"]  # different data in each place: only the IDX structure can be checked
    unknown = {role: dataclasses.replace(getattr(spec, role), sha256=None) for role in ROLES}
    monkeypatch.setitem(datasets.CATALOGUE, "mnist", dataclasses.replace(spec, **unknown))
    monkeypatch.setenv("METALEARN_DATA", str(places["env"]))

    def source(**kw):
        x = load_dataset("mnist", download=False, **kw).train_x
        return next(key for key, arrays in written.items() if np.array_equal(arrays["train_images"], x))

    assert source(data_dir=places["data_dir"]) == "data_dir"
    assert source() == "env"
    monkeypatch.delenv("METALEARN_DATA")
    assert source() == "cache"
    for file in (places["cache"] / "mnist").iterdir():
        file.unlink()
    assert source() == "shared"


def test_raw_and_debian_files_are_found(tmp_path, monkeypatch):
    arrays = install(monkeypatch, datasets.SYSTEM_DIRS["fashion-mnist"], "fashion-mnist", compress=False)
    ds = load_dataset("fashion-mnist", download=False)
    np.testing.assert_array_equal(ds.test_x, arrays["test_images"])
    assert ds.train_y.dtype == np.int32 and ds.num_classes == 10


def test_loaded_arrays_are_cached_and_read_only(tmp_path, monkeypatch):
    install(monkeypatch, tmp_path / "d" / "mnist")
    a = load_dataset("mnist", data_dir=tmp_path / "d", download=False)
    assert load_dataset("mnist", data_dir=tmp_path / "d", download=False) is a
    with pytest.raises(ValueError, match="read-only"):
        a.train_x[0, 0, 0] = 1


# --- downloads, with pooch's downloader faked ---


def serve(monkeypatch, files: dict[str, bytes]):
    """Answer downloads from `files` (URL -> body); anything else is a network failure."""

    def download(url, output_file, pooch_object):
        if url not in files:
            raise requests.exceptions.ConnectionError("Name or service not known")
        Path(output_file).write_bytes(files[url])

    monkeypatch.setattr(datasets, "DOWNLOADER", download)


def test_download_goes_to_the_cache_via_a_second_mirror(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    arrays = install(monkeypatch, staging, "kmnist")
    mirror = "https://mirror.example/kmnist/"
    spec = datasets.CATALOGUE["kmnist"]
    spec = dataclasses.replace(spec, base_urls=("https://down.example/", mirror))
    monkeypatch.setitem(datasets.CATALOGUE, "kmnist", spec)
    serve(monkeypatch, {mirror + p.name: p.read_bytes() for p in staging.iterdir()})
    ds = load_dataset("kmnist")
    np.testing.assert_array_equal(ds.train_x, arrays["train_images"])
    cached = sorted(p.name for p in (tmp_path / "cache" / "metalearn" / "kmnist").iterdir())
    assert cached == sorted(p.name for p in staging.iterdir())  # no temporary files left behind


def test_download_with_wrong_checksum_is_deleted(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    install(monkeypatch, staging, "mnist")
    spec = datasets.CATALOGUE["mnist"]
    monkeypatch.setitem(datasets.CATALOGUE, "mnist", dataclasses.replace(
        spec, base_urls=("https://m/",), test_images=dataclasses.replace(spec.test_images, sha256="0" * 64)))
    serve(monkeypatch, {"https://m/" + p.name: p.read_bytes() for p in staging.iterdir()})
    with pytest.raises(ChecksumError, match=r"downloaded from https://m/t10k-images.*deleted"):
        load_dataset("mnist")
    assert not (tmp_path / "cache" / "metalearn" / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_failed_download_lists_places_and_how_to_provide_the_data(monkeypatch):
    serve(monkeypatch, {})
    expected = r"shared/mnist.*Downloading into .* failed: .*not known.*METALEARN_DATA=<root>"
    with pytest.raises(DatasetNotFoundError, match=expected):
        load_dataset("mnist")


def test_emnist_letters_from_the_zip_are_upright_and_labelled_from_zero(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    arrays = install(monkeypatch, staging, "emnist-letters", n=(30, 26), num_classes=26, offset=1)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for p in staging.iterdir():
            z.writestr(f"gzip/{p.name}", p.read_bytes())
    serve(monkeypatch, {datasets.CATALOGUE["emnist-letters"].archive_url: archive.getvalue()})
    ds = load_dataset("emnist-letters")
    np.testing.assert_array_equal(ds.train_x, arrays["train_images"].transpose(0, 2, 1))
    assert ds.num_classes == 26 and ds.train_y.min() == 0 and ds.train_y.max() == 25


# --- the real files ---


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_files_in_shared_data(monkeypatch, name):
    if not (REAL_SHARED / name).is_dir():
        pytest.skip(f"{REAL_SHARED / name} is absent")
    monkeypatch.setattr(datasets, "SHARED_DATA", REAL_SHARED)
    ds = load_dataset(name, download=False)  # verifies every payload's sha256
    assert ds.train_x.shape == (60000, 28, 28) and ds.test_x.shape == (10000, 28, 28)
    assert ds.train_x.dtype == np.uint8 and ds.train_y.dtype == np.int32 and ds.num_classes == 10
    if name == "mnist":
        assert np.bincount(ds.train_y)[:2].tolist() == [5923, 6742]
        assert abs(ds.train_x.mean() / 255 - 33.32 / 255) < 0.01
    else:
        assert (np.bincount(ds.train_y) == 6000).all() and (np.bincount(ds.test_y) == 1000).all()


# --- preprocessing ---


def test_resize_by_block_mean_and_bilinear():
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    manual = images.astype(np.float32).reshape(3, 14, 2, 14, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(resize(images, 14), manual, rtol=1e-6)
    assert resize(images, 7).shape == (3, 7, 7)
    flat = resize(np.full((2, 28, 28), 100, np.uint8), 8)
    assert flat.shape == (2, 8, 8) and flat.dtype == np.float32
    np.testing.assert_allclose(flat, 100, rtol=1e-5)


def test_normalize_uses_train_statistics():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (100, 5, 5), dtype=np.uint8)
    test = rng.integers(0, 128, (50, 5, 5), dtype=np.uint8)
    train_n, test_n = normalize(train, test)
    assert train_n.dtype == test_n.dtype == np.float32
    assert abs(train_n.mean()) < 1e-5 and abs(train_n.std() - 1) < 1e-5
    np.testing.assert_allclose(test_n, (test - train.mean()) / train.std(), rtol=1e-4)


def test_fit_inputs_pads_and_crops():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    padded = fit_inputs(x, 12)
    np.testing.assert_array_equal(padded[:, :9], x.reshape(2, 9))
    assert padded.shape == (2, 12) and not padded[:, 9:].any()
    np.testing.assert_array_equal(fit_inputs(x, 4), x.reshape(2, 9)[:, :4])


def test_fit_classes_keeps_labels_below_k():
    x, y = fit_classes(np.arange(6), np.array([0, 5, 1, 4, 2, 3]), 3)
    np.testing.assert_array_equal(x, [0, 2, 4])
    np.testing.assert_array_equal(y, [0, 1, 2])
