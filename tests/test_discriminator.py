"""The density-ratio machinery: known KLs, and pooled vs conditional forms."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import bbh_tf


def _train(discriminator, sample_generated, prior, codes, steps, draws=256):
    """Fit ``discriminator`` by logistic regression; return the KL estimate."""
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-2, steps, alpha=0.01)
    )
    shape = tf.shape(sample_generated(1))

    @tf.function
    def step():
        generated = sample_generated(draws)
        from_prior = prior.sample(tf.shape(generated))
        with tf.GradientTape() as tape:
            loss, _ = bbh_tf.discriminator_loss(
                discriminator(generated, codes), discriminator(from_prior, codes)
            )
        variables = discriminator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    discriminator.build((None,) + tuple(shape.numpy()[1:]), codes.shape)
    for _ in range(steps):
        step()
    # KL estimate: E_q[sum over positions of T], on fresh draws.
    logits = discriminator(sample_generated(2000), codes)
    return float(tf.reduce_mean(tf.reduce_sum(logits, axis=[1, 2])))


@pytest.mark.parametrize("conditional", [False, True])
def test_recovers_the_kl_of_a_gaussian_against_a_gaussian_prior(conditional):
    mu, s = 0.8, 0.5
    positions = 4
    # Closed form KL(N(mu, s^2) || N(0, 1)) per value, times the positions.
    expected = positions * (-math.log(s) + (s**2 + mu**2 - 1) / 2)
    codes = tf.random.normal((1, 4))

    def sample(n):
        return mu + s * tf.random.normal((n, 1, positions))

    estimate = _train(
        bbh_tf.Discriminator(conditional=conditional),
        sample,
        bbh_tf.GaussianPrior(1.0),
        codes,
        steps=1500,
    )
    assert estimate == pytest.approx(expected, rel=0.15)


def test_only_the_conditional_form_sees_narrow_per_position_posteriors():
    # 128 positions, each a narrow N(mu_i, 0.1^2), with the mu_i spread like
    # the prior: pooled over positions the values look like N(0, 1.01).
    positions = 128
    rng = np.random.default_rng(0)
    means = tf.constant(rng.normal(size=(1, 1, positions)), tf.float32)
    expected = float(tf.reduce_sum(-math.log(0.1) + (0.01 + means**2 - 1) / 2))

    def sample(n):
        return means + 0.1 * tf.random.normal((n, 1, positions))

    codes = tf.random.normal((1, 4))
    prior = bbh_tf.GaussianPrior(1.0)
    pooled = _train(
        bbh_tf.Discriminator(conditional=False), sample, prior, codes, 1000, draws=64
    )
    conditional = _train(
        bbh_tf.Discriminator(conditional=True), sample, prior, codes, 1000, draws=64
    )
    assert expected > 250
    assert abs(pooled) < 0.1 * expected
    assert conditional > 0.8 * expected


def test_discriminator_loss_and_accuracy_values():
    loss, accuracy = bbh_tf.discriminator_loss(
        tf.constant([2.0, -1.0]), tf.constant([-3.0, 0.5])
    )
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = (softplus(-2) + softplus(1)) / 2 + (softplus(-3) + softplus(0.5)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(accuracy) == pytest.approx(0.5)


def test_output_shape_config_and_errors():
    disc = bbh_tf.Discriminator(hidden_units=(20, 20))
    assert disc(tf.zeros((5, 3, 16)), tf.zeros((3, 4))).shape == (5, 3, 16)
    clone = bbh_tf.Discriminator.from_config(disc.get_config())
    assert clone.get_config() == disc.get_config()
    with pytest.raises(ValueError, match="hidden_units"):
        bbh_tf.Discriminator(hidden_units=(0,))
    with pytest.raises(ValueError, match="position codes"):
        bbh_tf.Discriminator().build((None, 3, 16), None)
