"""Regression metrics of a predictive mixture over weight draws.

A Bayesian regression model predicts, for each draw ``s`` of its weights, a
distribution of the target with location ``loc[s]`` and scale ``scale[s]``
(Gaussian, or Student-t with ``df`` degrees of freedom); the predictive
distribution is their equal-weight mixture. The functions take

* ``targets``: ``(n,)`` or ``(n, k)``;
* ``sample_locs``, ``sample_scales``: ``(num_samples, n)`` or
  ``(num_samples, n, k)``, e.g. from ``model.predict_samples`` read through
  the likelihood's ``location_and_scale``;
* ``target_scale``: the factor the targets were divided by when they were
  standardised (default 1): RMSE and CRPS are multiplied by it and the
  log-likelihood is shifted by ``-k log(target_scale)``, so the results are
  in the targets' original units.

Example:

>>> samples = model.predict_samples(x_test, num_samples=100)
>>> locs, scales = model.likelihood.location_and_scale(samples)
>>> bbh_tf.metrics.predictive_log_likelihood(y_test, locs, scales, target_scale=y_std)
-2.71
>>> bbh_tf.metrics.interval_coverage(y_test, locs, scales, level=0.9)
0.91
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# Bisection steps for the mixture's quantiles: 2**-60 of the bracket.
_BISECTION_STEPS = 60


def _float_array(name, value):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be a numeric array: {error}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _checked(targets, sample_locs, sample_scales=None):
    """Arrays ``(n, k)`` and ``(S, n, k)``, or an error naming the argument."""
    targets = _float_array("targets", targets)
    if targets.ndim not in (1, 2) or targets.shape[0] == 0:
        raise ValueError(
            f"`targets` must have shape (n,) or (n, k) with n >= 1, got {targets.shape}."
        )
    if targets.ndim == 1:
        targets = targets[:, None]
    arrays = []
    for name, value in (("sample_locs", sample_locs), ("sample_scales", sample_scales)):
        if value is None:
            continue
        array = _float_array(name, value)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[1:] != targets.shape or array.shape[0] == 0:
            raise ValueError(
                f"`{name}` must have shape (num_samples,) + {tuple(targets.shape)} "
                f"to match `targets`, got {np.shape(value)}."
            )
        arrays.append(array)
    if sample_scales is not None and np.any(arrays[1] <= 0):
        raise ValueError("`sample_scales` must be > 0.")
    return (targets, *arrays)


def _positive(name, value):
    if (
        isinstance(value, bool)
        or not np.isscalar(value)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return float(value)


class _Standard:
    """The standard form of one mixture component, Gaussian or Student-t,
    on float64 numpy arrays (TFP distributions underneath)."""

    def __init__(self, df=None):
        zero, one = tf.constant(0.0, tf.float64), tf.constant(1.0, tf.float64)
        if df is None:
            self.distribution = tfd.Normal(zero, one)
        else:
            df = tf.constant(_positive("df", df), tf.float64)
            self.distribution = tfd.StudentT(df, zero, one)

    def logpdf(self, z):
        return self.distribution.log_prob(z).numpy()

    def cdf(self, z):
        return self.distribution.cdf(z).numpy()

    def ppf(self, p):
        return float(self.distribution.quantile(tf.constant(p, tf.float64)))


def predictive_log_likelihood(
    targets, sample_locs, sample_scales, df=None, target_scale=1.0
):
    """Mean log-density of the targets under the mixture over draws.

    ``mean_i log (1/S) sum_s prod_j p(y_ij; loc_sij, scale_sij)`` (log-mean-exp
    over draws, the target dimensions independent given a draw), minus
    ``k log(target_scale)`` for the original units. ``df``: None for Gaussian
    components, else Student-t degrees of freedom.
    """
    targets, locs, scales = _checked(targets, sample_locs, sample_scales)
    target_scale = _positive("target_scale", target_scale)
    log_p = _Standard(df).logpdf((targets - locs) / scales) - np.log(scales)
    per_draw = log_p.sum(axis=-1)  # (S, n)
    mixture = tf.reduce_logsumexp(per_draw, axis=0).numpy() - math.log(len(per_draw))
    return float(np.mean(mixture) - targets.shape[1] * math.log(target_scale))


def rmse(targets, predictive_mean, target_scale=1.0):
    """Root mean squared error of the predictive mean, in original units."""
    targets = _float_array("targets", targets)
    mean = _float_array("predictive_mean", predictive_mean)
    if mean.shape != targets.shape or targets.size == 0:
        raise ValueError(
            f"`predictive_mean` must have the shape of `targets` {targets.shape}, "
            f"got {mean.shape}."
        )
    return float(
        np.sqrt(np.mean((mean - targets) ** 2))
        * _positive("target_scale", target_scale)
    )


def mixture_quantiles(sample_locs, sample_scales, level, df=None):
    """Quantiles at ``level`` (in (0, 1)) of the mixture over the first axis
    of ``sample_locs`` and ``sample_scales`` ``(num_samples, ...)``, shape
    ``(...)``, by bisection on its distribution function."""
    sample_locs = _float_array("sample_locs", sample_locs)
    sample_scales = _float_array("sample_scales", sample_scales)
    family = _Standard(df)
    lo = np.min(sample_locs + family.ppf(level) * sample_scales, axis=0)
    hi = np.max(sample_locs + family.ppf(level) * sample_scales, axis=0)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = np.mean(family.cdf((mid - sample_locs) / sample_scales), axis=0) < level
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def interval_coverage(targets, sample_locs, sample_scales, level=0.95, df=None):
    """Fraction of target values inside the mixture's central interval with
    probability ``level`` (between its ``(1 - level) / 2`` and ``(1 + level)
    / 2`` quantiles). A calibrated model covers about ``level``."""
    targets, locs, scales = _checked(targets, sample_locs, sample_scales)
    if isinstance(level, bool) or not np.isscalar(level) or not 0 < level < 1:
        raise ValueError(f"`level` must be a number in (0, 1), got {level!r}.")
    tail = (1 - level) / 2
    lower = mixture_quantiles(locs, scales, tail, df)
    upper = mixture_quantiles(locs, scales, 1 - tail, df)
    return float(np.mean((targets >= lower) & (targets <= upper)))


def _crps_term(mu, variance):
    """``E|X|`` for ``X ~ N(mu, variance)``."""
    sigma = np.sqrt(variance)
    z = mu / sigma
    # Built here, not at import: a tensor at import time would start
    # TensorFlow before a multi-worker strategy can configure it.
    normal = _Standard()
    return 2 * sigma * np.exp(normal.logpdf(z)) + mu * (2 * normal.cdf(z) - 1)


def crps(targets, sample_locs, sample_scales, target_scale=1.0):
    """Continuous ranked probability score of the Gaussian mixture (lower is
    better), mean over target values, in original units.

    ``CRPS = E|X - y| - E|X - X'| / 2`` in closed form for an equal-weight
    mixture of Gaussians (Grimit et al., 2006): O(S^2) per target value.
    """
    targets, locs, scales = _checked(targets, sample_locs, sample_scales)
    target_scale = _positive("target_scale", target_scale)
    variances = scales**2
    first = np.mean(_crps_term(targets - locs, variances), axis=0)
    second = np.zeros_like(targets)
    for s in range(len(locs)):  # S passes of (S, n, k): memory O(S n k)
        second += np.mean(_crps_term(locs[s] - locs, variances[s] + variances), axis=0)
    second /= len(locs)
    return float(np.mean(first - 0.5 * second) * target_scale)
