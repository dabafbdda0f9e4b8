"""Tabular regression data: a generated set, CSV files and the standard splits.

The protocol of the small regression benchmarks (Hernandez-Lobato & Adams,
2015): random 90/10 train/test splits from a fixed seed, inputs and targets
standardised by the training split's statistics. Exported through
``bbh_tf.data``.
"""

import csv

import numpy as np

from bbh_tf._checks import positive_int


def synthetic_regression(n=400, num_features=8, seed=0):
    """A generated regression set with input-dependent noise.

    ``y = sin(x @ a) + 0.5 * (x @ b) + noise``, with the noise's std
    ``0.1 + 0.2 * |x_0|`` (heteroscedastic), ``x ~ N(0, I)``.

    Returns:
        ``(x, y)``: float32 arrays ``(n, num_features)`` and ``(n,)``.
    """
    n = positive_int("n", n)
    num_features = positive_int("num_features", num_features)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=num_features) / np.sqrt(num_features)
    b = rng.normal(size=num_features) / np.sqrt(num_features)
    x = rng.normal(size=(n, num_features))
    noise = (0.1 + 0.2 * np.abs(x[:, 0])) * rng.normal(size=n)
    y = np.sin(2 * x @ a) + 0.5 * x @ b + noise
    return x.astype("float32"), y.astype("float32")


def load_csv(path, target):
    """Features and target of a CSV file with a header row.

    Every column must be numeric; ``target`` names the target column, the
    others are the features. Returns float32 arrays ``(n, features)`` and
    ``(n,)``, and the feature names.
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row.")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise ValueError(
            f"`target` {target!r} is not a column of {path}; its columns are {header}."
        )
    try:
        values = np.array(rows[1:], dtype=np.float64)
    except ValueError:
        for line, row in enumerate(rows[1:], start=2):
            for name, cell in zip(header, row):
                try:
                    float(cell)
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}: column {name!r} holds {cell!r}, "
                        "not a number (every column must be numeric)."
                    ) from None
        raise ValueError(f"{path}: every row must have {len(header)} cells.") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path}: holds missing, NaN or infinite values.")
    column = header.index(target)
    features = [name for i, name in enumerate(header) if i != column]
    x = np.delete(values, column, axis=1).astype("float32")
    return x, values[:, column].astype("float32"), features


def standardized_splits(x, y, num_splits=5, test_fraction=0.1, seed=0):
    """Yield the protocol's random splits, standardised by the training part.

    Yields dicts with ``x_train``, ``y_train``, ``x_test``, ``y_test``
    (float32; ``y`` as ``(n, 1)``), and ``y_mean``, ``y_std`` to undo the
    targets' standardisation. Split ``i`` is the same for every method.
    """
    num_splits = positive_int("num_splits", num_splits)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"`x` must have shape (n, features) and `y` (n,), got {x.shape} and {y.shape}."
        )
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}.")
    num_test = max(1, int(round(test_fraction * len(x))))
    if len(x) - num_test < 2:
        raise ValueError(f"Too few rows ({len(x)}) to split.")
    rng = np.random.default_rng(seed)
    for _ in range(num_splits):
        order = rng.permutation(len(x))
        test, train = order[:num_test], order[num_test:]
        x_mean, x_std = x[train].mean(0), x[train].std(0)
        x_std = np.where(x_std > 0, x_std, 1.0)  # constant columns stay 0
        y_mean, y_std = float(y[train].mean()), float(y[train].std() or 1.0)
        yield {
            "x_train": ((x[train] - x_mean) / x_std).astype("float32"),
            "y_train": ((y[train] - y_mean) / y_std)[:, None].astype("float32"),
            "x_test": ((x[test] - x_mean) / x_std).astype("float32"),
            "y_test": ((y[test] - y_mean) / y_std)[:, None].astype("float32"),
            "y_mean": y_mean,
            "y_std": y_std,
        }
