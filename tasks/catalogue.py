"""The datasets `load_dataset` knows: file names, payload checksums, mirrors, label and layout fix-ups."""

from __future__ import annotations

import dataclasses

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """One file of a dataset, identified by what it holds rather than by how it was compressed."""

    name: str  # without ".gz"; on disk either `name.gz` or `name` is accepted
    sha256: str | None  # of the decompressed payload; None: unknown, only the IDX structure is checked


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and comes from; how its stored form becomes upright images and 0-based labels."""

    folder: str
    num_classes: int
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    base_urls: tuple[str, ...] = ()  # mirrors, tried in order: a file is fetched from base + name + ".gz"
    archive_url: str | None = None  # instead: one zip that holds every file as gzip/<name>.gz
    label_offset: int = 0  # subtracted from the stored labels so that they start at 0
    transposed: bool = False  # images stored column-major; transposed on load so that they look upright


def _idx_files(prefix: str, train: str, test: str, sha256=(None,) * 4) -> dict[str, IdxFile]:
    kinds = ("images-idx3-ubyte", "labels-idx1-ubyte")
    names = [f"{prefix}{split}-{kind}" for split in (train, test) for kind in kinds]
    return {role: IdxFile(name, digest) for role, name, digest in zip(ROLES, names, sha256)}


_EMNIST_ZIP = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"

CATALOGUE: dict[str, DatasetSpec] = {
    # sha256 of the decompressed payloads from ../shared/data/README.md.
    "mnist": DatasetSpec(
        folder="mnist",
        num_classes=10,
        base_urls=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        **_idx_files("", "train", "t10k", (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        )),
    ),
    "fashion-mnist": DatasetSpec(
        folder="fashion-mnist",
        num_classes=10,
        base_urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        **_idx_files("", "train", "t10k", (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        )),
    ),
    # KMNIST and EMNIST: payload checksums not known for certain, so None: only the IDX structure (magic
    # number, size matching the header, labels in range) is verified. Fill them in from a trusted copy.
    "kmnist": DatasetSpec(
        folder="kmnist",
        num_classes=10,
        base_urls=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        **_idx_files("", "train", "t10k"),
    ),
    "emnist-letters": DatasetSpec(
        folder="emnist",
        num_classes=26,
        archive_url=_EMNIST_ZIP,
        label_offset=1,  # letters are labelled 1..26
        transposed=True,
        **_idx_files("emnist-letters-", "train", "test"),
    ),
    "emnist-balanced": DatasetSpec(
        folder="emnist",
        num_classes=47,
        archive_url=_EMNIST_ZIP,
        transposed=True,
        **_idx_files("emnist-balanced-", "train", "test"),
    ),
}
