"""Data sets used by the examples and benchmarks: MNIST, a 1-D toy problem
and tabular regression (``synthetic_regression``, ``load_csv``,
``standardized_splits``, from ``bbh_tf.regression_data``).

MNIST is read from the four standard gzipped IDX files when a directory is
given (``data_dir`` or the ``BBH_MNIST_DIR`` environment variable), so offline
machines never need the network; otherwise it is fetched with
``tensorflow-datasets``. The toy regression problem is the classic
``y = x**3 + noise`` benchmark for Bayesian neural networks.
"""

import gzip
import math
import numbers
import os

import numpy as np

from bbh_tf._checks import non_negative_float, positive_int
from bbh_tf.regression_data import load_csv, standardized_splits, synthetic_regression

__all__ = [
    "MNIST_DIR_ENV",
    "load_csv",
    "load_mnist",
    "rotate_images",
    "standardized_splits",
    "synthetic_regression",
    "toy_function",
    "toy_regression",
]

#: Environment variable naming a directory that holds the MNIST IDX files.
MNIST_DIR_ENV = "BBH_MNIST_DIR"

_SPLITS = ("train", "test")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGE_MAGIC = 2051  # unsigned bytes, 3 dimensions (n, rows, cols)
_LABEL_MAGIC = 2049  # unsigned bytes, 1 dimension (n,)
_IMAGE_SIZE = 28


def load_mnist(split="train", data_dir=None, flatten=False):
    """Load one split of MNIST as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    split : {"train", "test"}
        Which split to load: 60000 training or 10000 test examples.
    data_dir : str or os.PathLike, optional
        Directory holding the four gzipped IDX files
        (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``).
        Defaults to the ``BBH_MNIST_DIR`` environment variable; if neither is
        set, the data are loaded (and possibly downloaded) with
        ``tensorflow-datasets``, which offline retries its download for
        minutes before failing. A directory never touches the network.
    flatten : bool, default False
        Return images of shape ``(n, 784)`` instead of ``(n, 28, 28, 1)``.

    Returns
    -------
    images : numpy.ndarray of float32
        Pixel intensities scaled to [0, 1], shape ``(n, 28, 28, 1)`` or
        ``(n, 784)``.
    labels : numpy.ndarray of int64
        Digit classes 0-9, shape ``(n,)``.

    Raises
    ------
    ValueError
        If ``split`` is not "train" or "test", or an IDX file is malformed.
    FileNotFoundError
        If a directory is used and a required file is missing.
    RuntimeError
        If no directory is set and ``tensorflow-datasets`` fails.

    Examples
    --------
    >>> images, labels = load_mnist("test", data_dir="data/mnist")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape  # doctest: +SKIP
    ((10000, 28, 28, 1), dtype('float32'), (10000,))
    """
    if split not in _SPLITS:
        raise ValueError(f"`split` must be one of {_SPLITS}, got {split!r}.")
    if data_dir is None:
        # An empty variable counts as unset, so `BBH_MNIST_DIR=` disables it.
        data_dir = os.environ.get(MNIST_DIR_ENV) or None

    if data_dir is not None:
        images, labels = _load_idx_split(os.fspath(data_dir), split)
    else:
        images, labels = _load_tfds_split(split)

    images = images.reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE, 1)
    images = images.astype(np.float32) / np.float32(255.0)
    if flatten:
        images = images.reshape(len(images), -1)
    return images, labels.astype(np.int64)


def _load_idx_split(data_dir, split):
    """Read the uint8 images and labels of ``split`` from IDX files."""
    image_name, label_name = _IDX_FILES[split]
    image_path = os.path.join(data_dir, image_name)
    label_path = os.path.join(data_dir, label_name)
    for path in (image_path, label_path):
        if not os.path.isfile(path):
            expected = ", ".join(name for pair in _IDX_FILES.values() for name in pair)
            raise FileNotFoundError(
                f"MNIST file {path!r} not found. The directory given by "
                f"`data_dir` or ${MNIST_DIR_ENV} must hold the gzipped IDX "
                f"files: {expected}."
            )
    images = _read_idx(image_path, _IMAGE_MAGIC, ndim=3)
    labels = _read_idx(label_path, _LABEL_MAGIC, ndim=1)
    if images.shape[1:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ValueError(
            f"MNIST file {image_path!r} holds images of shape "
            f"{images.shape[1:]}, expected ({_IMAGE_SIZE}, {_IMAGE_SIZE})."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"MNIST files {image_path!r} and {label_path!r} disagree: "
            f"{len(images)} images but {len(labels)} labels."
        )
    return images, labels


def _read_idx(path, magic, ndim):
    """Parse a gzipped IDX file of unsigned bytes into a uint8 array.

    The header is a big-endian int32 magic number followed by one big-endian
    int32 per dimension; the payload is the raw bytes in C order.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # not gzip, or truncated
        raise ValueError(f"Cannot read MNIST file {path!r}: {err}") from err

    header_size = 4 * (1 + ndim)
    if len(raw) < header_size:
        raise ValueError(
            f"MNIST file {path!r} is too short for an IDX header ({len(raw)} bytes)."
        )
    header = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if header[0] != magic:
        raise ValueError(
            f"MNIST file {path!r} has magic number {header[0]}, expected {magic}."
        )
    shape = tuple(int(d) for d in header[1:])
    if min(shape) < 0:
        raise ValueError(f"MNIST file {path!r} declares a negative dimension: {shape}.")
    # math.prod of Python ints cannot overflow, unlike a numpy product.
    n_bytes = math.prod(shape)
    if len(raw) - header_size != n_bytes:
        raise ValueError(
            f"MNIST file {path!r} declares shape {shape} ({n_bytes} bytes) "
            f"but holds {len(raw) - header_size} data bytes."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _load_tfds_split(split):
    """Load ``split`` with tensorflow-datasets as uint8 images and labels."""
    try:
        # Imported here: tensorflow_datasets is slow to import and is not
        # needed when the IDX files are available locally.
        import tensorflow_datasets as tfds

        images, labels = tfds.as_numpy(
            tfds.load("mnist", split=split, batch_size=-1, as_supervised=True)
        )
    except Exception as err:
        raise RuntimeError(
            f"Loading MNIST with tensorflow-datasets failed ({err}). Offline "
            f"users should pass `data_dir` or set ${MNIST_DIR_ENV} to a "
            "directory holding the four MNIST IDX .gz files."
        ) from err
    return np.asarray(images), np.asarray(labels)


def toy_function(x):
    """Return the noise-free toy regression target ``x**3``.

    Parameters
    ----------
    x : array_like or tensor
        Inputs; anything supporting ``**``.

    Returns
    -------
    Same type as ``x``
        ``x**3``, elementwise.

    Examples
    --------
    >>> toy_function(np.array([-1.0, 2.0]))
    array([-1.,  8.])
    """
    return x**3


def toy_regression(n=20, seed=0, low=-4.0, high=4.0, noise_std=3.0):
    """Sample the 1-D toy regression data set ``y = x**3 + noise``.

    Parameters
    ----------
    n : int, default 20
        Number of points, at least 1.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``; equal seeds give equal data.
    low, high : float, default -4.0, 4.0
        Inputs are drawn uniformly from ``[low, high)``; needs ``low < high``.
    noise_std : float, default 3.0
        Standard deviation of the Gaussian noise added to ``x**3``; finite
        and >= 0.

    Returns
    -------
    x, y : numpy.ndarray of float32
        Inputs and noisy targets, each of shape ``(n, 1)``.

    Examples
    --------
    >>> x, y = toy_regression(n=5, seed=1)
    >>> x.shape, y.shape, x.dtype
    ((5, 1), (5, 1), dtype('float32'))
    """
    n = positive_int("n", n)
    noise_std = non_negative_float("noise_std", noise_std)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`{name}` must be a finite number, got {value!r}.")
        if not math.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, got {value}.")
    if not low < high:
        raise ValueError(
            f"`low` must be smaller than `high`, got low={low}, high={high}."
        )

    rng = np.random.default_rng(seed)
    # Sample in float64 and cast once, so x**3 is not computed in float32.
    x = rng.uniform(low, high, size=(n, 1))
    y = toy_function(x) + rng.normal(0.0, noise_std, size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def rotate_images(images, degrees):
    """``images`` rotated counter-clockwise about their centre by ``degrees``.

    For shifted test sets (the rotated-digit experiments): ``images`` is one
    image ``(height, width)`` or a stack ``(..., height, width)``, finite.
    Bilinear interpolation, zero outside the image: each output pixel reads
    the input at the inversely rotated position. Returns float32 of the
    same shape.

    Examples
    --------
    >>> rotate_images(x_test[:100, :, :, 0], 45.0).shape  # doctest: +SKIP
    (100, 28, 28)
    """
    image = np.asarray(images, dtype=np.float64)
    if image.ndim < 2 or 0 in image.shape:
        raise ValueError(
            "`images` must have shape (height, width) or (..., height, "
            f"width), got {image.shape}."
        )
    if not np.all(np.isfinite(image)):
        raise ValueError("`images` contains NaN or infinite values.")
    if isinstance(degrees, bool) or not isinstance(degrees, numbers.Real):
        raise TypeError(f"`degrees` must be a finite number, got {degrees!r}.")
    if not math.isfinite(degrees):
        raise ValueError(f"`degrees` must be a finite number, got {degrees}.")
    height, width = image.shape[-2:]
    theta = np.deg2rad(degrees)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = rows - (height - 1) / 2, cols - (width - 1) / 2
    src_x = x * np.cos(theta) - y * np.sin(theta) + (width - 1) / 2
    src_y = x * np.sin(theta) + y * np.cos(theta) + (height - 1) / 2
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    fx, fy = src_x - x0, src_y - y0

    def pixel(r, c):
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        return np.where(
            inside, image[..., np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)], 0.0
        )

    return (
        (1 - fy) * ((1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1))
        + fy * ((1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1))
    ).astype(np.float32)
