"""Uncertainty metrics: classification (``bbh_tf.metrics.classification``)
and regression (``bbh_tf.metrics.regression``), all importable from here.

Example:

>>> mean, _ = model.predict_distribution(x_test, num_samples=100)
>>> bbh_tf.metrics.expected_calibration_error(mean, y_test)
>>> locs, scales = model.likelihood.location_and_scale(
...     model.predict_samples(x_test, num_samples=100))
>>> bbh_tf.metrics.crps(y_test, locs, scales)
"""

from bbh_tf.metrics.classification import (
    BrierScore,
    ExpectedCalibrationError,
    accuracy,
    brier_score,
    calibration_bins,
    expected_calibration_error,
    mutual_information,
    negative_log_likelihood,
    ood_auroc,
    predictive_entropy,
)
from bbh_tf.metrics.regression import (
    crps,
    interval_coverage,
    mixture_quantiles,
    predictive_log_likelihood,
    rmse,
)

__all__ = [
    "BrierScore",
    "ExpectedCalibrationError",
    "accuracy",
    "brier_score",
    "calibration_bins",
    "crps",
    "expected_calibration_error",
    "interval_coverage",
    "mixture_quantiles",
    "mutual_information",
    "negative_log_likelihood",
    "ood_auroc",
    "predictive_entropy",
    "predictive_log_likelihood",
    "rmse",
]
