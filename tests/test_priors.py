"""Priors: samples, log-densities against closed forms, serialization, errors."""

import math

import keras
import numpy as np
import pytest

import bbh_tf


def _normal_pdf(x, sigma):
    return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def test_scale_mixture_log_prob_matches_closed_form():
    prior = bbh_tf.ScaleMixturePrior(pi=0.3, sigma1=1.5, sigma2=0.1)
    w = np.linspace(-3, 3, 13).astype("float32")
    expected = np.log(0.3 * _normal_pdf(w, 1.5) + 0.7 * _normal_pdf(w, 0.1))
    np.testing.assert_allclose(prior.log_prob(w).numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_mixture_log_prob_equals_the_tfp_mixture(dtype):
    # Far in the tails one component underflows; the sum must not.
    prior = bbh_tf.ScaleMixturePrior()
    w = np.array([0.0, 1e-4, -0.003, 0.5, -2.0, 30.0, -200.0], dtype=dtype)
    expected = prior.distribution(dtype).log_prob(w).numpy()
    actual = prior.log_prob(w).numpy()
    assert actual.dtype == dtype and np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_mixture_log_prob_gradient_equals_the_tfp_mixture(dtype):
    # log_prob's written-out gradient against autodiff through TFP's mixture,
    # across both components, the crossover between them and the tails.
    import tensorflow as tf

    prior = bbh_tf.ScaleMixturePrior()
    # Values on every scale a weight or a generated value takes (a first
    # version lost 1 % of the gradient to cancellation at |w| ~ 0.01-1).
    rng = np.random.default_rng(0)
    scales = np.repeat([1e-4, 1e-3, 3e-3, 1e-2, 0.1, 1.0, 3.0, 30.0], 500)
    w = tf.constant(rng.normal(0.0, scales), dtype=dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(w)
        ours = 3.0 * prior.log_prob(w)
        theirs = 3.0 * prior.distribution(dtype).log_prob(w)
    np.testing.assert_allclose(
        tape.gradient(ours, w).numpy(),
        tape.gradient(theirs, w).numpy(),
        rtol=2e-5 if dtype == "float32" else 1e-10,
        atol=1e-6 if dtype == "float32" else 1e-12,
    )
    half = tf.constant([0.0, 0.004, -0.01, 0.3], dtype="float16")
    with tf.GradientTape() as tape:
        tape.watch(half)
        value = prior.log_prob(half)
    assert value.dtype == tf.float16
    assert np.all(np.isfinite(tape.gradient(value, half).numpy()))


def test_gaussian_log_prob_matches_closed_form():
    prior = bbh_tf.GaussianPrior(sigma=0.7)
    w = np.linspace(-2, 2, 9).astype("float32")
    np.testing.assert_allclose(
        prior.log_prob(w).numpy(), np.log(_normal_pdf(w, 0.7)), rtol=1e-5
    )


@pytest.mark.parametrize(
    "prior, std",
    [
        (
            bbh_tf.ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=0.01),
            math.sqrt(0.5 + 0.5e-4),
        ),
        (bbh_tf.GaussianPrior(sigma=2.0), 2.0),
    ],
)
def test_samples_have_shape_and_spread(prior, std):
    samples = prior.sample((200, 500)).numpy()
    assert samples.shape == (200, 500) and samples.dtype == np.float32
    assert abs(samples.std() - std) < 0.03 * std
    assert abs(samples.mean()) < 0.02
    assert prior.stddev == pytest.approx(std, rel=1e-6)


def test_scale_mixture_is_diagonal_and_bimodal_in_scale():
    prior = bbh_tf.ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
    samples = np.abs(prior.sample((100000,)).numpy())
    # About half the mass in the narrow component.
    assert 0.45 < np.mean(samples < 0.01) < 0.55


@pytest.mark.parametrize(
    "prior", [bbh_tf.ScaleMixturePrior(0.25, 2.0, 0.5), bbh_tf.GaussianPrior(0.3)]
)
def test_priors_round_trip_through_keras_serialization(prior):
    config = keras.saving.serialize_keras_object(prior)
    assert config["registered_name"].startswith("bbh_tf>")
    restored = keras.saving.deserialize_keras_object(config)
    assert restored == prior and restored is not prior


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"pi": 0.0}, "pi"),
        ({"pi": 1.0}, "pi"),
        ({"pi": float("nan")}, "pi"),
        ({"sigma1": 0.0}, "sigma1"),
        ({"sigma1": -1.0}, "sigma1"),
        ({"sigma2": float("inf")}, "sigma2"),
        ({"sigma2": float("nan")}, "sigma2"),
    ],
)
def test_scale_mixture_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        bbh_tf.ScaleMixturePrior(**kwargs)


@pytest.mark.parametrize("sigma", [0.0, -2.0, float("nan"), float("inf")])
def test_gaussian_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="`sigma`"):
        bbh_tf.GaussianPrior(sigma)


def test_prior_rejects_non_numbers():
    with pytest.raises(TypeError, match="`sigma1`"):
        bbh_tf.ScaleMixturePrior(sigma1="wide")


def test_scale_mixture_samples_follow_its_tfp_distribution():
    prior = bbh_tf.ScaleMixturePrior(pi=0.3, sigma1=2.0, sigma2=0.05)
    ours = np.sort(prior.sample((50000,)).numpy())
    reference = np.sort(prior.distribution().sample(50000).numpy())
    # Two-sample Kolmogorov-Smirnov statistic on a common grid.
    grid = np.linspace(-6, 6, 2001)
    gap = (
        np.abs(np.searchsorted(ours, grid) - np.searchsorted(reference, grid)).max()
        / 50000
    )
    assert gap < 0.015
    assert np.mean(np.abs(ours) < 0.1) == pytest.approx(
        0.7 * 0.954 + 0.3 * 0.04, abs=0.01
    )
