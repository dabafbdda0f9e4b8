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
    # The generated values and the KL term in float32.
    assert model.hypernets[0].compute_dtype == "float32"
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


def _ids(n):
    return np.random.default_rng(0).integers(0, 3000, size=(n, 5)).astype("int32")


# Every public layer with an input for it. The embedding's vocabulary is
# larger than float16 counts exactly (2048): ids must not pass through it.
LAYERS = [
    (lambda: bbh_tf.HyperDense(3), lambda n: np.ones((n, 4), "float32")),
    (lambda: bbh_tf.HyperConv1D(3, 2), lambda n: np.ones((n, 5, 2), "float32")),
    (lambda: bbh_tf.HyperConv2D(3, 2), lambda n: np.ones((n, 4, 4, 2), "float32")),
    (
        lambda: bbh_tf.HyperDepthwiseConv2D(2, mode="full"),
        lambda n: np.ones((n, 4, 4, 2), "float32"),
    ),
    (lambda: bbh_tf.HyperEmbedding(3000, 3), _ids),
    (
        lambda: keras.layers.RNN(bbh_tf.HyperLSTMCell(3)),
        lambda n: np.ones((n, 5, 2), "float32"),
    ),
    (lambda: bbh_tf.BayesByBackpropDense(3), lambda n: np.ones((n, 4), "float32")),
    (
        lambda: bbh_tf.BayesByBackpropConv1D(3, 2),
        lambda n: np.ones((n, 5, 2), "float32"),
    ),
    (
        lambda: bbh_tf.BayesByBackpropConv2D(3, 2),
        lambda n: np.ones((n, 4, 4, 2), "float32"),
    ),
    (
        lambda: bbh_tf.BayesByBackpropDepthwiseConv2D(2),
        lambda n: np.ones((n, 4, 4, 2), "float32"),
    ),
    (lambda: bbh_tf.BayesByBackpropEmbedding(3000, 3), _ids),
    (
        lambda: keras.layers.RNN(bbh_tf.BayesByBackpropLSTMCell(3)),
        lambda n: np.ones((n, 5, 2), "float32"),
    ),
]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("make, data", LAYERS, ids=lambda f: "")
def test_every_layer_computes_in_the_global_policy(policy, make, data):
    layer = make()
    out = layer(data(4))
    assert out.dtype == policy.split("_")[1]
    assert np.all(np.isfinite(np.asarray(out, "float32")))
    assert all(v.dtype == "float32" for v in layer.weights)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_an_exported_mixed_precision_model_serves_float32(policy, tmp_path):
    keras.utils.set_random_seed(0)
    x = _ids(64)
    y = (x[:, 0] > 1500).astype("int64")
    net = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            bbh_tf.HyperEmbedding(3000, 4),
            keras.layers.RNN(bbh_tf.HyperLSTMCell(4)),
            bbh_tf.HyperDense(2),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=len(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    bbh_tf.export_saved_model(model, str(tmp_path), num_samples=4)
    served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    outputs = served(inputs=tf.constant(x[:3]))
    for name in ("mean", "std", "entropy", "mutual_information"):
        assert outputs[name].dtype == tf.float32
    np.testing.assert_allclose(outputs["mean"].numpy().sum(1), 1.0, atol=1e-3)
