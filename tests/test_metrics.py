"""bbh_tf.metrics against values worked out by hand."""

import math

import keras
import numpy as np
import pytest
from conftest import blobs

import bbh_tf
from bbh_tf import metrics

# Four examples, three classes. Predicted classes 0, 1, 2, 0 (the last row's
# tie goes to the first class); labels 0, 2, 2, 1: examples 0 and 2 right.
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
LABELS = np.array([0, 2, 2, 1])


def test_accuracy():
    assert metrics.accuracy(PROBS, LABELS) == 0.5


def test_negative_log_likelihood():
    expected = -(math.log(0.7) + math.log(0.3) + math.log(0.4) + math.log(0.5)) / 4
    assert metrics.negative_log_likelihood(PROBS, LABELS) == pytest.approx(expected)


def test_negative_log_likelihood_is_finite_for_zero_probability():
    nll = metrics.negative_log_likelihood([[1.0, 0.0]], [1])
    assert nll == pytest.approx(-math.log(1e-12))


def test_brier_score():
    # Rows: 0.09+0.04+0.01, 0.01+0.36+0.49, 0.09+0.09+0.36, 0.25+0.25+0.
    assert metrics.brier_score(PROBS, LABELS) == pytest.approx(2.04 / 4)


def test_expected_calibration_error_two_bins():
    # Confidences 0.7, 0.6, 0.4, 0.5. Bin (0, 0.5]: 0.4 right, 0.5 wrong:
    # |0.5 - 0.45| = 0.05. Bin (0.5, 1]: 0.7 right, 0.6 wrong: |0.5 - 0.65|.
    ece = metrics.expected_calibration_error(PROBS, LABELS, num_bins=2)
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.15)


def test_calibration_bins_statistics():
    bins = metrics.calibration_bins(PROBS, LABELS, num_bins=2)
    np.testing.assert_array_equal(bins["count"], [2, 2])
    np.testing.assert_allclose(bins["confidence"], [0.45, 0.65])
    np.testing.assert_allclose(bins["accuracy"], [0.5, 0.5])
    np.testing.assert_allclose(bins["edges"], [0.0, 0.5, 1.0])


def test_calibration_bins_empty_bins_are_nan_and_skipped_by_ece():
    bins = metrics.calibration_bins(PROBS, LABELS, num_bins=15)
    assert bins["count"].sum() == 4
    assert np.isnan(bins["accuracy"][bins["count"] == 0]).all()
    # Each example alone in its bin: |correct - confidence| averaged.
    expected = (0.3 + 0.6 + 0.6 + 0.5) / 4
    assert metrics.expected_calibration_error(PROBS, LABELS) == pytest.approx(expected)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(probs, [0, 1]) == 0.0


def test_predictive_entropy():
    entropy = metrics.predictive_entropy(PROBS)
    assert entropy[3] == pytest.approx(math.log(2))
    expected0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert entropy[0] == pytest.approx(expected0)


def test_mutual_information():
    # Two confident draws that disagree: all the uncertainty is epistemic.
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert metrics.mutual_information(disagree)[0] == pytest.approx(math.log(2))
    # Identical draws (a deterministic network): none is.
    same = np.stack([PROBS, PROBS])
    np.testing.assert_allclose(metrics.mutual_information(same), 0.0, atol=1e-12)


def test_mutual_information_mixed_case():
    samples = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])
    h = lambda p: -sum(q * math.log(q) for q in p)  # noqa: E731
    expected = h([0.7, 0.3]) - 0.5 * (h([0.9, 0.1]) + h([0.5, 0.5]))
    assert metrics.mutual_information(samples)[0] == pytest.approx(expected)


def test_ood_auroc_counts_ties_as_half():
    # Out-of-distribution 0.8 beats all three; 0.4 beats 0.1 and 0.35 and
    # ties 0.4: (3 + 2.5) / 6.
    auroc = metrics.ood_auroc([0.1, 0.4, 0.35], [0.8, 0.4])
    assert auroc == pytest.approx(5.5 / 6)


def test_ood_auroc_extremes():
    assert metrics.ood_auroc([0.0, 0.1], [0.5, 0.9]) == 1.0
    assert metrics.ood_auroc([0.5, 0.9], [0.0, 0.1]) == 0.0
    assert metrics.ood_auroc([0.3, 0.3], [0.3]) == 0.5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.accuracy(np.ones((3,)), [0, 1, 2]), "`probs` must have shape"),
        (lambda: metrics.accuracy([[0.6, 0.6]], [0]), "must sum to 1"),
        (lambda: metrics.accuracy([[1.5, -0.5]], [0]), r"in \[0, 1\]"),
        (lambda: metrics.accuracy([[np.nan, 1.0]], [0]), "NaN"),
        (lambda: metrics.accuracy(PROBS, [0, 1]), "`labels` must have shape"),
        (lambda: metrics.accuracy(PROBS, [0, 1, 2, 3]), r"\[0, 2\]"),
        (lambda: metrics.accuracy(PROBS, [0, 1, 2, 0.5]), "integer class"),
        (lambda: metrics.expected_calibration_error(PROBS, LABELS, 0), "num_bins"),
        (lambda: metrics.mutual_information(PROBS), "`sample_probs` must have shape"),
        (lambda: metrics.ood_auroc([], [1.0]), "at least one"),
        (lambda: metrics.ood_auroc([[1.0]], [1.0]), "in_distribution_scores"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def _random_probs(rng, n, k=4):
    logits = rng.normal(size=(n, k)) * 2
    probs = np.exp(logits)
    return (probs / probs.sum(1, keepdims=True)).astype("float32")


def test_keras_ece_matches_function_over_batches():
    rng = np.random.default_rng(0)
    probs, labels = _random_probs(rng, 200), rng.integers(0, 4, 200)
    metric = metrics.ExpectedCalibrationError(num_bins=10)
    metric.update_state(labels[:120], probs[:120])
    metric.update_state(labels[120:, None], probs[120:])  # (n, 1) labels too
    expected = metrics.expected_calibration_error(probs, labels, num_bins=10)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_keras_brier_matches_function():
    rng = np.random.default_rng(1)
    probs, labels = _random_probs(rng, 50), rng.integers(0, 4, 50)
    metric = metrics.BrierScore()
    metric.update_state(labels, probs)
    assert float(metric.result()) == pytest.approx(
        metrics.brier_score(probs, labels), abs=1e-5
    )


def test_keras_metrics_round_trip_config():
    ece = metrics.ExpectedCalibrationError(num_bins=7, name="my_ece")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ece)
    )
    assert isinstance(restored, metrics.ExpectedCalibrationError)
    assert restored.num_bins == 7 and restored.name == "my_ece"
    brier = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metrics.BrierScore())
    )
    assert isinstance(brier, metrics.BrierScore)


def test_keras_metrics_in_compile_and_fit():
    x, y = blobs()
    model = bbh_tf.MaximumLikelihood(
        keras.Sequential(
            [keras.Input((x.shape[1],)), keras.layers.Dense(3, activation="softmax")]
        )
    )
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=[metrics.ExpectedCalibrationError(), metrics.BrierScore()],
    )
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert 0.0 <= history.history["ece"][-1] <= 1.0
    assert 0.0 <= history.history["brier_score"][-1] <= 2.0
