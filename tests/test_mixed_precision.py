"""The layers and training steps under Keras mixed-precision policies (CPU).

Variables stay float32, the network computes in the policy's dtype, the
discriminator (the density ratio) in float32, and predictions come back as
float32 arrays.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs

import bbh_tf


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def _hyper_net(mode):
    hypernet = bbh_tf.HyperNetwork(noise_dim=8, hidden_units=(16, 32), output_dim=32)
    return keras.Sequential(
        [
            keras.Input((6,)),
            bbh_tf.HyperDense(16, activation="relu", mode=mode, hypernet=hypernet),
            bbh_tf.HyperDense(3, mode=mode, hypernet=hypernet),
            # Softmax in float32, as Keras recommends under mixed precision.
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize(
    "mode,estimator", [("weight_norm", "semi_implicit"), ("full", "adversarial")]
)
def test_bayes_by_hypernet_trains_under_mixed_precision(policy, mode, estimator):
    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = bbh_tf.BayesByHypernet(
        _hyper_net(mode), num_examples=len(x), kl_estimator=estimator
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
    )
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history
    compute = policy.split("_")[1]
    hidden = model.network.layers[0]
    assert hidden.compute_dtype == compute
    assert all(v.dtype == "float32" for v in model.network.weights)
    assert all(v.dtype == "float32" for v in model.kl_estimator.weights)
    if estimator == "adversarial":
        assert model.kl_estimator.discriminator.compute_dtype == "float32"
    assert hidden(x[:4]).dtype == compute
    assert np.all(np.isfinite(history["loss"])) and np.all(np.isfinite(history["kl"]))
    assert history["nll"][-1] < 0.8 * history["nll"][0]
    mean, std = model.predict_distribution(x[:10], num_samples=5)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-2)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_conv_and_baselines_under_bfloat16(policy):
    keras.utils.set_random_seed(0)
    x, y = blobs()
    images = np.tile(x[:, None, None, :], (1, 6, 6, 1))
    hypernet = bbh_tf.HyperNetwork(noise_dim=8, hidden_units=(16, 32), output_dim=32)
    conv = bbh_tf.HyperConv2D(4, 3, activation="relu", hypernet=hypernet)
    assert conv(images[:2]).dtype == tf.bfloat16
    bbb_conv = bbh_tf.BayesByBackpropConv2D(4, 3)
    assert bbb_conv(images[:2]).dtype == tf.bfloat16
    assert bbb_conv.kernel_mu.dtype == "float32"
    assert bbb_conv.monte_carlo_kl().dtype == tf.float32
    net = keras.Sequential(
        [
            keras.Input((6,)),
            bbh_tf.BayesByBackpropDense(16, activation="relu"),
            bbh_tf.BayesByBackpropDense(3),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model = bbh_tf.BayesByBackprop(net, num_examples=len(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy"
    )
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    assert history["nll"][-1] < 0.8 * history["nll"][0]
    ml = bbh_tf.MaximumLikelihood(
        keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(3, activation="softmax")]
        )
    )
    ml.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ml.fit(x, y, epochs=1, verbose=0)
    mean, std = ml.predict_distribution(x[:4], num_samples=3)
    assert mean.dtype == np.float32 and np.all(std == 0)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_a_nan_batch_is_skipped_under_loss_scaling(policy):
    # The loss-scaling optimizer handles its own overflows; a NaN loss is
    # still skipped by the model's step, weights untouched.
    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = bbh_tf.BayesByHypernet(_hyper_net("scale"), num_examples=len(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy"
    )
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    before = [v.numpy() for v in model.trainable_variables]
    bad = x.copy()
    bad[:] = np.nan
    # A dataset: fit rejects NaN arrays before any step.
    data = tf.data.Dataset.from_tensor_slices((bad, y)).batch(32)
    history = model.fit(data, epochs=1, verbose=0).history
    assert history["non_finite_steps"] == [8]
    for a, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
