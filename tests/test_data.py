"""Tests for bbh_tf.data: the MNIST IDX reader, tfds fallback and toy data."""

import gzip
import os
import sys
import types

import numpy as np
import pytest

from bbh_tf import data
from bbh_tf.data import load_mnist, toy_function, toy_regression

N_FAKE = 3
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _write_idx(path, magic, array):
    """Write ``array`` (uint8) as a gzipped IDX file with the given magic."""
    array = np.asarray(array, dtype=np.uint8)
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def _fake_split(seed):
    """Return uint8 images (N_FAKE, 28, 28) covering 0 and 255, and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N_FAKE, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = np.array([7, 0, 9], dtype=np.uint8)
    return images, labels


def _scaled(raw):
    """The expected float32 pixels for uint8 ``raw`` (float32 division)."""
    return raw.astype(np.float32) / np.float32(255.0)


@pytest.fixture
def mnist_dir(tmp_path):
    """A directory with tiny train/test IDX files; returns (dir, raw arrays)."""
    raw = {}
    for seed, (split, (image_name, label_name)) in enumerate(IDX_NAMES.items()):
        images, labels = _fake_split(seed)
        _write_idx(tmp_path / image_name, 2051, images)
        _write_idx(tmp_path / label_name, 2049, labels)
        raw[split] = (images, labels)
    return tmp_path, raw


@pytest.fixture
def no_tfds(monkeypatch):
    """Make any import of tensorflow_datasets fail (hence no network)."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)


# --- IDX reader --------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_reader_exact_values(mnist_dir, split, no_tfds):
    directory, raw = mnist_dir
    images, labels = load_mnist(split, data_dir=directory)
    raw_images, raw_labels = raw[split]

    assert images.shape == (N_FAKE, 28, 28, 1)
    assert images.dtype == np.float32
    assert labels.shape == (N_FAKE,)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, raw_labels)
    np.testing.assert_array_equal(images[..., 0], _scaled(raw_images))
    assert images.min() == 0.0 and images.max() == 1.0


def test_idx_reader_flatten(mnist_dir, no_tfds):
    directory, raw = mnist_dir
    flat, labels = load_mnist("test", data_dir=str(directory), flatten=True)
    images, _ = load_mnist("test", data_dir=str(directory))

    assert flat.shape == (N_FAKE, 784)
    assert flat.dtype == np.float32
    np.testing.assert_array_equal(flat, images.reshape(N_FAKE, -1))
    np.testing.assert_array_equal(flat[1], _scaled(raw["test"][0][1]).ravel())


def test_env_var_is_used(mnist_dir, monkeypatch, no_tfds):
    directory, raw = mnist_dir
    monkeypatch.setenv("BBH_MNIST_DIR", str(directory))
    _, labels = load_mnist("train")
    np.testing.assert_array_equal(labels, raw["train"][1])


def test_data_dir_overrides_env_var(mnist_dir, monkeypatch, tmp_path_factory):
    directory, raw = mnist_dir
    monkeypatch.setenv("BBH_MNIST_DIR", str(tmp_path_factory.mktemp("empty")))
    _, labels = load_mnist("train", data_dir=directory)
    np.testing.assert_array_equal(labels, raw["train"][1])


def test_data_dir_never_imports_tfds(mnist_dir, no_tfds):
    # With the module blocked in sys.modules, any tfds import raises
    # ImportError, so success proves the IDX path never reaches tfds.
    directory, _ = mnist_dir
    load_mnist("train", data_dir=directory)
    load_mnist("test", data_dir=directory)
    assert sys.modules["tensorflow_datasets"] is None


def test_bad_magic_names_file(mnist_dir):
    directory, _ = mnist_dir
    path = directory / IDX_NAMES["test"][0]
    _write_idx(path, 2049, np.zeros((N_FAKE, 28, 28)))
    with pytest.raises(ValueError, match="magic number") as info:
        load_mnist("test", data_dir=directory)
    assert str(path) in str(info.value)


def test_truncated_payload_names_file(mnist_dir):
    directory, _ = mnist_dir
    path = directory / IDX_NAMES["train"][1]
    with gzip.open(path, "wb") as f:  # header claims 3 labels, holds 2
        f.write(np.array([2049, 3], dtype=">i4").tobytes() + b"\x01\x02")
    with pytest.raises(ValueError, match="data bytes") as info:
        load_mnist("train", data_dir=directory)
    assert str(path) in str(info.value)


def test_not_gzip_names_file(mnist_dir):
    directory, _ = mnist_dir
    path = directory / IDX_NAMES["train"][0]
    path.write_bytes(b"not a gzip file at all")
    with pytest.raises(ValueError) as info:
        load_mnist("train", data_dir=directory)
    assert str(path) in str(info.value)


def test_wrong_image_size(mnist_dir):
    directory, _ = mnist_dir
    _write_idx(directory / IDX_NAMES["test"][0], 2051, np.zeros((N_FAKE, 4, 4)))
    with pytest.raises(ValueError, match="28"):
        load_mnist("test", data_dir=directory)


def test_image_label_count_mismatch(mnist_dir):
    directory, _ = mnist_dir
    _write_idx(directory / IDX_NAMES["test"][1], 2049, np.zeros(N_FAKE + 1))
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        load_mnist("test", data_dir=directory)


def test_missing_file_mentions_env_var(mnist_dir):
    directory, _ = mnist_dir
    path = directory / IDX_NAMES["test"][1]
    os.remove(path)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test", data_dir=directory)
    message = str(info.value)
    assert str(path) in message
    assert "BBH_MNIST_DIR" in message and "data_dir" in message
    assert "t10k-labels-idx1-ubyte.gz" in message


@pytest.mark.parametrize("split", ["validation", "TRAIN", "train[:10%]", None])
def test_bad_split(split, tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist(split, data_dir=tmp_path)


# --- tensorflow-datasets fallback -------------------------------------------


def test_tfds_failure_is_wrapped(monkeypatch, no_tfds):
    monkeypatch.delenv("BBH_MNIST_DIR", raising=False)
    with pytest.raises(RuntimeError, match="BBH_MNIST_DIR") as info:
        load_mnist("test")
    assert "data_dir" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_empty_env_var_falls_back_to_tfds(monkeypatch, no_tfds):
    monkeypatch.setenv("BBH_MNIST_DIR", "")
    with pytest.raises(RuntimeError, match="tensorflow-datasets"):
        load_mnist("test")


def test_tfds_path_converts(monkeypatch):
    # A stand-in for tensorflow_datasets, so the conversion is checked offline.
    raw_images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1)
    raw_labels = np.array([4, 2], dtype=np.int64)
    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        return raw_images, raw_labels

    fake = types.SimpleNamespace(load=fake_load, as_numpy=lambda tree: tree)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.delenv("BBH_MNIST_DIR", raising=False)

    images, labels = load_mnist("train", flatten=True)

    assert calls == [("mnist", dict(split="train", batch_size=-1, as_supervised=True))]
    assert images.shape == (2, 784) and images.dtype == np.float32
    np.testing.assert_array_equal(images, _scaled(raw_images).reshape(2, -1))
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, raw_labels)


# --- real MNIST (only with BBH_MNIST_DIR) -----------------------------------


@pytest.mark.skipif(
    not os.environ.get("BBH_MNIST_DIR"), reason="BBH_MNIST_DIR is not set"
)
@pytest.mark.parametrize(
    "split, n, first_label", [("train", 60000, 5), ("test", 10000, 7)]
)
def test_real_mnist(split, n, first_label):
    images, labels = load_mnist(split)

    assert images.shape == (n, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))
    assert labels[0] == first_label  # well-known first label of each split


# --- toy regression -----------------------------------------------------------


def test_toy_regression_shapes_and_dtype():
    x, y = toy_regression()
    assert x.shape == (20, 1) and y.shape == (20, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32


def test_toy_regression_is_deterministic():
    x1, y1 = toy_regression(n=50, seed=3)
    x2, y2 = toy_regression(n=50, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_toy_regression_seeds_differ():
    x1, y1 = toy_regression(n=50, seed=0)
    x2, y2 = toy_regression(n=50, seed=1)
    assert not np.array_equal(x1, x2)
    assert not np.array_equal(y1, y2)


def test_toy_regression_x_range():
    x, _ = toy_regression(n=1000, low=-1.5, high=2.5)
    assert x.min() >= -1.5 and x.max() <= 2.5


def test_toy_regression_noise_level():
    x, y = toy_regression(n=20000, seed=1, noise_std=3.0)
    residual = y.astype(np.float64) - x.astype(np.float64) ** 3
    assert abs(residual.std() - 3.0) < 0.05 * 3.0
    assert abs(residual.mean()) < 0.1


def test_toy_regression_zero_noise():
    x, y = toy_regression(n=10, noise_std=0.0)
    np.testing.assert_allclose(y, toy_function(x), rtol=1e-6)


def test_toy_function():
    np.testing.assert_array_equal(
        toy_function(np.array([-2.0, 0.0, 3.0])), [-8.0, 0.0, 27.0]
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n=0), "n"),
        (dict(n=-5), "n"),
        (dict(low=1.0, high=1.0), "low"),
        (dict(low=2.0, high=-2.0), "low"),
        (dict(high=float("inf")), "high"),
        (dict(noise_std=-1.0), "noise_std"),
        (dict(noise_std=float("nan")), "noise_std"),
        (dict(noise_std=float("inf")), "noise_std"),
    ],
)
def test_toy_regression_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        toy_regression(**kwargs)


def test_toy_regression_non_integer_n():
    with pytest.raises(TypeError, match="`n`"):
        toy_regression(n=2.5)


def test_public_names():
    assert set(data.__all__) >= {"load_mnist", "toy_regression", "toy_function"}
    for name in data.__all__:
        assert hasattr(data, name)


def test_rotate_images_matches_quarter_turns_one_image_or_a_stack():
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    rotate = data.rotate_images
    np.testing.assert_allclose(rotate(image, 0.0), image, atol=1e-6)
    # Counter-clockwise, as numpy's rot90.
    np.testing.assert_allclose(rotate(image, 90.0), np.rot90(image), atol=1e-5)
    np.testing.assert_allclose(rotate(image, 180.0), np.rot90(image, 2), atol=1e-5)
    stack = np.stack([image, image.T])
    np.testing.assert_allclose(rotate(stack, 37.0)[1], rotate(image.T, 37.0))


def test_rotate_images_rejects_bad_input():
    with pytest.raises(ValueError, match="`images` must have shape"):
        data.rotate_images(np.zeros(5), 10.0)
    with pytest.raises(ValueError, match="NaN"):
        data.rotate_images(np.full((3, 3), np.nan), 10.0)
    with pytest.raises(ValueError, match="`degrees`"):
        data.rotate_images(np.zeros((3, 3)), np.inf)
    with pytest.raises(TypeError, match="`degrees`"):
        data.rotate_images(np.zeros((3, 3)), "90")
