"""Uncertainty metrics: plain functions on arrays and Keras metric classes.

The functions take numpy-convertible arrays of class probabilities
``probs`` of shape ``(n, num_classes)`` (a predictive mean, e.g. from
``predict_distribution``) or per-draw probabilities ``sample_probs`` of shape
``(num_samples, n, num_classes)`` (from ``predict_samples``), and integer
``labels`` of shape ``(n,)``. Every input is checked first, so a wrong shape
or a probability outside ``[0, 1]`` is reported by name.

Example:

>>> mean, _ = model.predict_distribution(x_test, num_samples=100)
>>> bbh_tf.metrics.expected_calibration_error(mean, y_test)
0.0123
>>> samples = model.predict_samples(x_test, num_samples=100)
>>> mi = bbh_tf.metrics.mutual_information(samples)       # (n,)
>>> bbh_tf.metrics.ood_auroc(mi_in_distribution, mi_out_of_distribution)
0.91
"""

import keras
import numpy as np

# Probabilities are clipped here before logarithms: log(0) would make one
# confidently wrong example an infinite NLL.
_LOG_EPSILON = 1e-12
# Rows of ``probs`` may sum to 1 up to float32 round-off.
_SUM_TOLERANCE = 1e-3


def _as_array(name, value, ndim, what):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be a numeric array {what}: {error}") from None
    if array.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {what}, got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _probabilities(name, value, ndim):
    what = "(n, num_classes)" if ndim == 2 else "(num_samples, n, num_classes)"
    probs = _as_array(name, value, ndim, what)
    if probs.shape[-2] == 0 or probs.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have shape {what} with n >= 1 and num_classes "
            f">= 2, got {probs.shape}."
        )
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError(
            f"`{name}` must hold probabilities in [0, 1], got values in "
            f"[{probs.min():.4g}, {probs.max():.4g}]."
        )
    sums = probs.sum(axis=-1)
    if np.max(np.abs(sums - 1)) > _SUM_TOLERANCE:
        raise ValueError(
            f"Each row of `{name}` must sum to 1 (class probabilities, e.g. "
            f"a softmax output), got sums in [{sums.min():.4g}, {sums.max():.4g}]."
        )
    return probs


def _labels(labels, probs):
    array = np.asarray(labels)
    n, num_classes = probs.shape
    if array.shape != (n,):
        raise ValueError(
            f"`labels` must have shape ({n},) to match `probs` {probs.shape}, "
            f"got {array.shape}."
        )
    if array.dtype.kind not in "iu":
        if array.dtype.kind != "f" or not np.all(array == np.round(array)):
            raise TypeError(
                f"`labels` must hold integer class indices, got dtype {array.dtype}."
            )
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(
            f"`labels` must be class indices in [0, {num_classes - 1}], got "
            f"values in [{array.min()}, {array.max()}]."
        )
    return array


def _check_num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)):
        raise TypeError(f"`num_bins` must be an integer >= 1, got {num_bins!r}.")
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be an integer >= 1, got {num_bins}.")
    return int(num_bins)


def accuracy(probs, labels):
    """Fraction of examples whose most probable class is the label."""
    probs = _probabilities("probs", probs, 2)
    labels = _labels(labels, probs)
    return float(np.mean(probs.argmax(axis=1) == labels))


def negative_log_likelihood(probs, labels):
    """Mean ``-log p(label)`` in nats (probabilities clipped at 1e-12)."""
    probs = _probabilities("probs", probs, 2)
    labels = _labels(labels, probs)
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(picked, _LOG_EPSILON))))


def brier_score(probs, labels):
    """Mean over examples of ``sum_k (p_k - [k == label])**2``, in [0, 2]."""
    probs = _probabilities("probs", probs, 2)
    labels = _labels(labels, probs)
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))


def calibration_bins(probs, labels, num_bins=15):
    """Per-bin statistics of the top-1 confidence, for reliability diagrams.

    Bins are equal-width intervals ``((b - 1) / B, b / B]`` of the
    confidence ``max_k p_k`` (the first also takes 0).

    Returns:
        A dict of numpy arrays of length ``num_bins``: ``count``,
        ``confidence`` (mean confidence in the bin) and ``accuracy``
        (fraction correct in the bin); both are NaN for empty bins, and
        ``edges`` of length ``num_bins + 1``.
    """
    probs = _probabilities("probs", probs, 2)
    labels = _labels(labels, probs)
    num_bins = _check_num_bins(num_bins)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(
        np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1
    )
    count = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, num_bins) / count
        mean_accuracy = np.bincount(index, correct, num_bins) / count
    return {
        "count": count,
        "confidence": mean_confidence,
        "accuracy": mean_accuracy,
        "edges": np.linspace(0.0, 1.0, num_bins + 1),
    }


def expected_calibration_error(probs, labels, num_bins=15):
    """ECE: ``sum_b (n_b / n) * |accuracy_b - confidence_b|`` over equal-width
    bins of the top-1 confidence (see :func:`calibration_bins`)."""
    bins = calibration_bins(probs, labels, num_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(weights * gaps))


def predictive_entropy(probs):
    """Entropy ``-sum_k p_k log p_k`` of each row, in nats: ``(n,)``.

    Of a predictive mean, it is the total uncertainty.
    """
    probs = _probabilities("probs", probs, 2)
    return _entropy(probs)


def _entropy(probs):
    return -np.sum(probs * np.log(np.maximum(probs, _LOG_EPSILON)), axis=-1)


def mutual_information(sample_probs):
    """Epistemic uncertainty of each example, in nats: ``(n,)``.

    ``H[mean_s p_s] - mean_s H[p_s]`` for per-draw probabilities
    ``sample_probs`` of shape ``(num_samples, n, num_classes)``: the mutual
    information between the label and the weights. Zero when every draw
    agrees (a deterministic network), large when confident draws disagree.
    """
    sample_probs = _probabilities("sample_probs", sample_probs, 3)
    total = _entropy(sample_probs.mean(axis=0))
    # Round-off can make the difference a hair below zero.
    return np.maximum(total - _entropy(sample_probs).mean(axis=0), 0.0)


def ood_auroc(in_distribution_scores, out_of_distribution_scores):
    """Area under the ROC curve for telling out-of-distribution inputs apart
    by a score that should be higher on them (entropy, mutual information).

    0.5 is chance, 1.0 perfect separation. Ties count one half (the
    Mann-Whitney statistic).
    """
    inside = _as_array("in_distribution_scores", in_distribution_scores, 1, "(n,)")
    outside = _as_array(
        "out_of_distribution_scores", out_of_distribution_scores, 1, "(m,)"
    )
    if inside.size == 0 or outside.size == 0:
        raise ValueError(
            "`in_distribution_scores` and `out_of_distribution_scores` must "
            f"each hold at least one score, got {inside.size} and {outside.size}."
        )
    scores = np.concatenate([inside, outside])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Tied scores share the mean of their ranks.
    _, inverse = np.unique(scores, return_inverse=True)
    ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
    rank_sum = ranks[len(inside) :].sum()
    u = rank_sum - len(outside) * (len(outside) + 1) / 2
    return float(u / (len(inside) * len(outside)))


# --------------------------------------------------------- Keras metrics
@keras.saving.register_keras_serializable(package="bbh_tf")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Streaming ECE for ``compile(metrics=[...])`` with integer labels.

    Accumulates, per equal-width confidence bin, the count, the summed
    confidence and the number correct; ``result()`` is the ECE of everything
    seen since the last reset, equal to :func:`expected_calibration_error`
    on the concatenated batches.

    Args:
        num_bins: Number of bins, >= 1. Default 15.
        name: As for any Keras metric.
        dtype: As for any Keras metric.

    Example:

    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=[bbh_tf.metrics.ExpectedCalibrationError()])
    """

    def __init__(self, num_bins=15, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = _check_num_bins(num_bins)
        self.counts = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="counts"
        )
        self.confidence_sums = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="confidence_sums"
        )
        self.correct_sums = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="correct_sums"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        y_pred = ops.cast(y_pred, self.dtype)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        probs = ops.reshape(y_pred, (-1, ops.shape(y_pred)[-1]))
        confidence = ops.max(probs, axis=-1)
        correct = ops.cast(
            ops.equal(ops.cast(ops.argmax(probs, axis=-1), "int32"), labels),
            self.dtype,
        )
        weight = (
            ops.ones_like(confidence)
            if sample_weight is None
            else ops.cast(ops.reshape(sample_weight, (-1,)), self.dtype)
        )
        index = ops.clip(
            ops.cast(ops.ceil(confidence * self.num_bins), "int32") - 1,
            0,
            self.num_bins - 1,
        )
        one_hot = ops.one_hot(index, self.num_bins, dtype=self.dtype)
        weighted = one_hot * weight[:, None]
        self.counts.assign_add(ops.sum(weighted, axis=0))
        self.confidence_sums.assign_add(ops.sum(weighted * confidence[:, None], axis=0))
        self.correct_sums.assign_add(ops.sum(weighted * correct[:, None], axis=0))

    def result(self):
        ops = keras.ops
        total = ops.maximum(ops.sum(self.counts), 1e-12)
        gaps = ops.abs(self.correct_sums - self.confidence_sums)
        # sum_b (n_b / n) |acc_b - conf_b| == sum_b |correct_b - conf_sum_b| / n
        return ops.sum(gaps) / total

    def reset_state(self):
        for variable in self.variables:
            variable.assign(keras.ops.zeros_like(variable))

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


@keras.saving.register_keras_serializable(package="bbh_tf")
class BrierScore(keras.metrics.MeanMetricWrapper):
    """Streaming Brier score for ``compile(metrics=[...])``, integer labels.

    The mean over examples of ``sum_k (p_k - [k == label])**2``, as
    :func:`brier_score`.

    Example:

    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=[bbh_tf.metrics.BrierScore()])
    """

    def __init__(self, name="brier_score", dtype=None):
        super().__init__(fn=_brier_per_example, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def _brier_per_example(y_true, y_pred):
    ops = keras.ops
    num_classes = ops.shape(y_pred)[-1]
    probs = ops.reshape(y_pred, (-1, num_classes))
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    one_hot = ops.one_hot(labels, num_classes, dtype=probs.dtype)
    return ops.sum(ops.square(probs - one_hot), axis=-1)
