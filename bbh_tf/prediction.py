"""What ``predict_distribution`` returns, and how draws that do not fit one
vectorised pass are split across passes and their moments pooled."""

import numpy as np

from bbh_tf import metrics


class Prediction(tuple):
    """What ``predict_distribution`` returns: unpacks as ``(mean, std)``.

    Attributes:
        mean, std: The predictive mean and standard deviation, numpy float32
            arrays ``(n, ...)``. For a model compiled with a likelihood loss
            (``bbh_tf.GaussianLikelihood``...) they are those of the targets,
            the total over draws and noise; otherwise those of the network's
            outputs over draws.
        aleatoric_std: With a likelihood, the std of the noise alone
            (``sqrt(E[noise variance])``); None otherwise.
        epistemic_std: With a likelihood, the std of the mean over weight
            draws; None otherwise. ``std**2 == aleatoric_std**2 +
            epistemic_std**2``.
    """

    def __new__(cls, mean, std, aleatoric_std=None, epistemic_std=None):
        prediction = super().__new__(cls, (mean, std))
        prediction.aleatoric_std = aleatoric_std
        prediction.epistemic_std = epistemic_std
        return prediction

    mean = property(lambda self: self[0])
    std = property(lambda self: self[1])


# Most input values one vectorised prediction pass holds (draws x batch rows
# x values per row); beyond it the draws are split across passes, which also
# keeps every row index far inside int32.
_PASS_VALUES = 2**26


def draws_per_pass(num_samples, batch_size, row_shape):
    """How many of ``num_samples`` draws one pass over ``batch_size`` rows of
    ``row_shape`` runs."""
    row = max(1, int(np.prod(row_shape)))
    return max(1, min(num_samples, _PASS_VALUES // (batch_size * row)))


def pass_sizes(num_samples, batch_size, row_shape):
    """The draws of each pass for ``num_samples`` draws over ``batch_size``
    rows of ``row_shape``."""
    per_pass = draws_per_pass(num_samples, batch_size, row_shape)
    sizes = [per_pass] * (num_samples // per_pass)
    if num_samples % per_pass:
        sizes.append(num_samples % per_pass)
    return sizes


def joined(kind, parts, counts):
    """One batch's results from its passes' ``parts`` (lists of numpy
    arrays) of ``counts`` draws: samples joined along the draws, moments
    pooled."""
    if kind == "samples":
        return [np.concatenate(p, axis=0) for p in zip(*parts)]
    return pooled_moments(parts, counts)


def pooled_moments(parts, counts):
    """The moments of all draws from per-pass moments ``parts`` (each
    ``(mean, std)`` or ``(mean, std, aleatoric_std, epistemic_std)``) of
    ``counts`` draws each."""
    if len(parts) == 1:
        return parts[0]
    weights = np.asarray(counts, np.float64) / sum(counts)

    def average(values):
        return sum(w * v.astype(np.float64) for w, v in zip(weights, values))

    means = [p[0] for p in parts]
    mean = average(means)

    def pooled_std(stds):
        second = average(
            [
                s.astype(np.float64) ** 2 + m.astype(np.float64) ** 2
                for s, m in zip(stds, means)
            ]
        )
        return np.sqrt(np.maximum(second - mean**2, 0.0))

    pooled = [mean, pooled_std([p[1] for p in parts])]
    if len(parts[0]) == 4:
        pooled.append(np.sqrt(average([p[2].astype(np.float64) ** 2 for p in parts])))
        pooled.append(pooled_std([p[3] for p in parts]))
    return [v.astype(np.float32) for v in pooled]


def evaluation_metrics(likelihood, outputs, targets):
    """The Bayesian model average's metrics (``evaluate_distribution``):
    of mean class probabilities ``outputs`` ``(n, classes)`` without a
    ``likelihood``, else of the draws' outputs ``(draws, n, ...)`` under it."""
    if likelihood is None:
        labels = np.asarray(targets).reshape(-1)
        return {
            "accuracy": float(metrics.accuracy(outputs, labels)),
            "nll": float(metrics.negative_log_likelihood(outputs, labels)),
            "brier": float(metrics.brier_score(outputs, labels)),
            "ece": float(metrics.expected_calibration_error(outputs, labels)),
        }
    locs, scales = (np.asarray(t) for t in likelihood.location_and_scale(outputs))
    targets = np.asarray(targets, np.float32)
    if targets.size == np.prod(locs.shape[1:]):
        targets = targets.reshape(locs.shape[1:])  # (n,) for one target column
    return {
        "rmse": float(metrics.rmse(targets, locs.mean(axis=0))),
        "log_likelihood": float(
            metrics.predictive_log_likelihood(targets, locs, scales)
        ),
        "coverage_95": float(metrics.interval_coverage(targets, locs, scales)),
        "crps": float(metrics.crps(targets, locs, scales)),
    }
