"""HyperConv2D and BayesByBackpropConv2D: shapes, the math of both modes,
sharing, models, saving and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_python

import bbh_tf


def _hypernet():
    return bbh_tf.HyperNetwork(
        noise_dim=4, hidden_units=(8, 16), output_dim=32, code_dim=4
    )


def _images(n=4, size=8, channels=2, seed=0):
    return (
        np.random.default_rng(seed)
        .normal(size=(n, size, size, channels))
        .astype("float32")
    )


def _draws_of(layer, num_draws):
    raw = layer.generate(layer.hypernet.sample_noise(num_draws))
    values = keras.ops.reshape(raw, (num_draws, -1))[:, : layer.num_generated]
    return raw, values.numpy()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"strides": 2},
        {"padding": "same"},
        {"padding": "same", "strides": (2, 1)},
        {"dilation_rate": 2},
        {"kernel_size": (3, 2)},
    ],
)
def test_full_mode_is_a_convolution_per_draw(kwargs):
    options = {"kernel_size": 3, **kwargs}
    layer = bbh_tf.HyperConv2D(5, hypernet=_hypernet(), mode="full", **options)
    x = _images()
    layer.build(x.shape)
    raw, values = _draws_of(layer, 2)
    with bbh_tf.injected_values({layer: raw}):
        out = layer(x).numpy()  # rows 0-1 use draw 0, rows 2-3 draw 1
    assert out.shape == layer.compute_output_shape(x.shape)
    reference = keras.layers.Conv2D(5, **options)
    reference.build(x.shape)
    size = int(np.prod(layer.kernel_shape))
    for draw, rows in ((0, slice(0, 2)), (1, slice(2, 4))):
        reference.set_weights(
            [values[draw, :size].reshape(layer.kernel_shape), values[draw, size:]]
        )
        np.testing.assert_allclose(out[rows], reference(x[rows]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["scale", "weight_norm"])
def test_scale_and_weight_norm_modes_scale_the_filters(mode):
    layer = bbh_tf.HyperConv2D(
        4,
        3,
        hypernet=_hypernet(),
        padding="same",
        bias_initializer="ones",
        mode=mode,
    )
    x = _images()
    layer.build(x.shape)
    assert layer.num_generated == 4  # one scale per filter
    raw, scales = _draws_of(layer, 2)
    with bbh_tf.injected_values({layer: raw}):
        out = layer(x).numpy()
    direction = layer.direction.numpy()
    unit = direction
    if mode == "weight_norm":
        unit = direction / np.sqrt((direction**2).sum(axis=(0, 1, 2)))
    reference = keras.layers.Conv2D(4, 3, padding="same")
    reference.build(x.shape)
    for draw, rows in ((0, slice(0, 2)), (1, slice(2, 4))):
        reference.set_weights([unit * scales[draw], np.ones(4, "float32")])
        np.testing.assert_allclose(out[rows], reference(x[rows]), rtol=1e-4, atol=1e-5)


def lenet(make_conv, make_dense, dropout=0.0):
    """A small LeNet-like network from layer factories."""
    layers = [
        keras.Input((8, 8, 2)),
        make_conv(4, 3),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(make_dense(3))
    return keras.Sequential(layers)


def _hyper_lenet(mode="weight_norm"):
    hypernet = _hypernet()
    return lenet(
        lambda f, k: bbh_tf.HyperConv2D(
            f, k, activation="relu", mode=mode, hypernet=hypernet
        ),
        lambda u: bbh_tf.HyperDense(
            u, activation="softmax", mode=mode, hypernet=hypernet
        ),
    )


def _labels(x):
    return (x[:, :, :, 0].mean(axis=(1, 2)) > 0).astype("int64") + (
        x[:, :, :, 1].mean(axis=(1, 2)) > 0.2
    ).astype("int64")


@pytest.mark.parametrize("mode", ["scale", "weight_norm", "full"])
def test_bayes_by_hypernet_trains_a_convolutional_network(mode):
    keras.utils.set_random_seed(0)
    x = _images(n=256, seed=1)
    y = _labels(x)
    net = _hyper_lenet(mode)
    hypernet_ids = {id(v) for v in net.layers[0].hypernet.trainable_variables}
    assert hypernet_ids <= {id(v) for v in net.trainable_variables}
    assert net.layers[0].hypernet is net.layers[-1].hypernet
    model = bbh_tf.BayesByHypernet(net, num_examples=len(x))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    assert history["nll"][-1] < 0.8 * history["nll"][0]
    mean, std = model.predict_distribution(x[:10], num_samples=8)
    assert mean.shape == std.shape == (10, 3) and np.all(std > 0)


def test_hyper_conv_in_functional_and_subclassed_models_under_tf_function():
    hypernet = _hypernet()
    conv = bbh_tf.HyperConv2D(3, 3, hypernet=hypernet, padding="same")
    inputs = keras.Input((8, 8, 2))
    functional = keras.Model(inputs, conv(inputs))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hypernet = _hypernet()
            self.conv = bbh_tf.HyperConv2D(3, 3, hypernet=self.hypernet, mode="full")

        def call(self, x):
            return self.conv(x)

    x = _images()
    assert functional(x).shape == (4, 8, 8, 3)
    assert tf.function(Subclassed())(x).shape == (4, 6, 6, 3)


def test_config_round_trip():
    layer = bbh_tf.HyperConv2D(
        6,
        (3, 2),
        hypernet=_hypernet(),
        mode="full",
        strides=(2, 1),
        padding="same",
        activation="relu",
        use_bias=False,
    )
    config = layer.get_config()
    assert bbh_tf.HyperConv2D.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert restored.spec == layer.spec and restored.mode == "full"
    bbb = bbh_tf.BayesByBackpropConv2D(3, 2, padding="same", init_rho=-3.0)
    bbb_config = keras.saving.serialize_keras_object(bbb)
    assert (
        keras.saving.deserialize_keras_object(bbb_config).get_config()
        == bbb.get_config()
    )


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"filters": 0}, ValueError, "filters"),
        ({"kernel_size": (3, 3, 3)}, ValueError, "kernel_size"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"strides": "2"}, ValueError, "strides"),
        ({"padding": "causal"}, ValueError, "padding"),
        ({"data_format": "channels_first"}, ValueError, "data_format"),
        ({"strides": 2, "dilation_rate": 2}, ValueError, "dilation_rate"),
        ({"mode": "half"}, ValueError, "mode"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, name):
    arguments = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=name):
        bbh_tf.HyperConv2D(hypernet=_hypernet(), **arguments)
    if "mode" in arguments:
        return  # Bayes by Backprop has no modes.
    with pytest.raises(error, match=name):
        bbh_tf.BayesByBackpropConv2D(**arguments)


@pytest.mark.parametrize(
    "make",
    [
        lambda: bbh_tf.HyperConv2D(4, 3, hypernet=_hypernet()),
        lambda: bbh_tf.BayesByBackpropConv2D(4, 3),
    ],
)
def test_wrong_input_rank_is_a_clear_error(make):
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        make().build((None, 8, 2))


# ------------------------------------------------------- Bayes by Backprop
def test_bbb_conv_output_moments_match_the_posterior():
    layer = bbh_tf.BayesByBackpropConv2D(2, 3, init_rho=-1.0, seed=3)
    x = np.repeat(_images(n=1), 4000, axis=0)
    out = layer(x).numpy()
    kernel_mu, kernel_sigma = layer.kernel_mu.numpy(), layer.kernel_sigma.numpy()
    mean = tf.nn.conv2d(x[:1], kernel_mu, 1, "VALID") + layer.bias_mu.numpy()
    variance = (
        tf.nn.conv2d(x[:1] ** 2, kernel_sigma**2, 1, "VALID")
        + layer.bias_sigma.numpy() ** 2
    )
    np.testing.assert_allclose(out.mean(axis=0), mean[0], atol=0.1)
    np.testing.assert_allclose(out.var(axis=0), variance[0], rtol=0.15)


def test_bbb_conv_kl_matches_closed_form_for_gaussian_prior():
    layer = bbh_tf.BayesByBackpropConv2D(
        3, 2, prior=bbh_tf.GaussianPrior(1.0), init_rho=-1.0, seed=0
    )
    layer.build((None, 5, 5, 2))
    mu = np.concatenate([layer.kernel_mu.numpy().ravel(), layer.bias_mu.numpy()])
    sigma = np.concatenate(
        [layer.kernel_sigma.numpy().ravel(), layer.bias_sigma.numpy()]
    )
    exact = np.sum(-np.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5)
    estimate = np.mean([float(layer.monte_carlo_kl()) for _ in range(300)])
    assert estimate == pytest.approx(exact, rel=0.05)


@pytest.mark.parametrize("method", ["ml", "mc_dropout", "bbb"])
def test_every_baseline_builds_the_same_convolutional_network(method):
    keras.utils.set_random_seed(0)
    x = _images(n=256, seed=1)
    y = _labels(x)
    if method == "bbb":
        net = lenet(
            lambda f, k: bbh_tf.BayesByBackpropConv2D(f, k, activation="relu"),
            lambda u: bbh_tf.BayesByBackpropDense(u, activation="softmax"),
        )
        model = bbh_tf.BayesByBackprop(net, num_examples=len(x))
    else:
        net = lenet(
            lambda f, k: keras.layers.Conv2D(f, k, activation="relu"),
            lambda u: keras.layers.Dense(u, activation="softmax"),
            dropout=0.3 if method == "mc_dropout" else 0.0,
        )
        model = (
            bbh_tf.MCDropout if method == "mc_dropout" else bbh_tf.MaximumLikelihood
        )(net)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy"
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    data_loss = history["nll" if method == "bbb" else "loss"]
    assert data_loss[-1] < 0.8 * data_loss[0]
    _, std = model.predict_distribution(x[:10], num_samples=8)
    assert np.all(std == 0) if method == "ml" else np.all(std > 0)


# ------------------------------------------------------- saving and export
def test_conv_models_save_load_and_export_in_fresh_processes(tmp_path):
    keras.utils.set_random_seed(0)
    x = _images(n=64, seed=1)
    model = bbh_tf.BayesByHypernet(_hyper_lenet("full"), num_examples=64)
    model.compile(
        optimizer="adam",
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, _labels(x), epochs=1, batch_size=32, verbose=0)
    bbb = bbh_tf.BayesByBackprop(
        lenet(
            lambda f, k: bbh_tf.BayesByBackpropConv2D(f, k, activation="relu"),
            lambda u: bbh_tf.BayesByBackpropDense(u, activation="softmax"),
        ),
        num_examples=64,
    )
    bbb.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    bbb.fit(x, _labels(x), epochs=1, batch_size=32, verbose=0)
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "bbh.keras")
    bbb.save(tmp_path / "bbb.keras")
    bbh_tf.export_saved_model(model, str(tmp_path / "served"), num_samples=16)
    for name, m in (("bbh", model), ("bbb", bbb)):
        np.savez(tmp_path / f"weights_{name}.npz", *[w.numpy() for w in m.weights])
    # Weights restored exactly (predictions are random: compared via weights).
    run_python(
        f"""
import numpy as np, keras, bbh_tf
x = np.load("{tmp_path}/x.npy")[:8]
for name in ("bbh", "bbb"):
    model = keras.models.load_model("{tmp_path}/" + name + ".keras")
    saved = np.load("{tmp_path}/weights_" + name + ".npz")
    assert len(model.weights) == len(saved.files)
    for weight, key in zip(model.weights, saved.files):
        np.testing.assert_array_equal(weight.numpy(), saved[key])
    mean, std = model.predict_distribution(x, num_samples=10)
    assert mean.shape == (8, 3) and np.all(std > 0)
""",
        tmp_path,
    )
    out = run_python(
        f"""
import numpy as np, tensorflow as tf
served = tf.saved_model.load("{tmp_path}/served")
x = np.load("{tmp_path}/x.npy")[:8]
out = served.signatures["serving_default"](tf.constant(x))
assert out["mean"].shape == (8, 3) and "mutual_information" in out
print("served", float(tf.reduce_max(out["std"])))
""",
        tmp_path,
    )
    assert "served" in out
