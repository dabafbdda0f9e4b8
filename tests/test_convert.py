"""bbh_tf.bayesianize: a trained network made Bayesian keeps what it learned."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import blobs
from test_examples import MNIST_DIR, needs_mnist, run_example

import bbh_tf


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y = blobs(n=512, seed=1)
    net = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=5, verbose=0)
    return net, x, y


@pytest.mark.parametrize(
    "method, last_layers, kinds",
    [
        ("bbh", None, ["HyperDense", "Dropout", "HyperDense"]),
        ("bbh", 1, ["Dense", "Dropout", "HyperDense"]),
        ("bbb", None, ["BayesByBackpropDense", "Dropout", "BayesByBackpropDense"]),
    ],
)
def test_the_converted_model_predicts_as_the_trained_one(
    trained, method, last_layers, kinds
):
    net, x, y = trained
    model = bbh_tf.bayesianize(
        net, num_examples=len(x), method=method, last_layers=last_layers
    )
    assert [type(layer).__name__ for layer in model.network.layers] == kinds
    original = net.predict(x, verbose=0)
    mean, std = model.predict_distribution(x, num_samples=50)
    # The trained weights are the posterior's centre, its spread is narrow.
    assert np.abs(mean - original).max() < 0.02
    assert (mean.argmax(1) == original.argmax(1)).mean() > 0.99
    assert (std > 0).any()
    if method == "bbh":
        assert len(model.hypernets) == 1
    # The original is untouched and the copy trains.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    weights = [w.copy() for w in net.get_weights()]
    history = model.fit(x, y, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    for a, b in zip(weights, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_functional_convolutional_network_converts():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(4, 3, activation="relu", padding="same")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Flatten()(hidden)
    )
    cnn = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    model = bbh_tf.bayesianize(cnn, num_examples=16)
    assert [type(layer).__name__ for layer in model.hyper_layers] == [
        "HyperConv2D",
        "HyperDense",
    ]
    mean, _ = model.predict_distribution(x, num_samples=10)
    np.testing.assert_allclose(mean, cnn.predict(x, verbose=0), atol=0.02)


def _sequence_classifier():
    """A trained functional network of every convertible sequence layer."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(64, 12)).astype("int32")
    y = (x[:, :6].sum(1) > x[:, 6:].sum(1)).astype("int64")
    inputs = keras.Input((12,), dtype="int32")
    hidden = keras.layers.Embedding(30, 8, mask_zero=True)(inputs)
    hidden = keras.layers.Conv1D(8, 3, padding="causal", activation="relu")(hidden)
    hidden = keras.layers.LSTM(10, return_sequences=True)(hidden)
    hidden = keras.layers.RNN(keras.layers.LSTMCell(6))(hidden)
    outputs = keras.layers.Dense(2, activation="softmax")(hidden)
    net = keras.Model(inputs, outputs)
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit(x, y, epochs=2, verbose=0)
    return net, x, y


def test_a_functional_network_whose_mask_reaches_an_lstm_converts():
    # clone_model hands the mask's operation to the clone function too.
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(2).integers(0, 20, size=(16, 6)).astype("int32")
    inputs = keras.Input((6,), dtype="int32")
    hidden = keras.layers.Embedding(20, 4, mask_zero=True)(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.LSTM(3)(hidden))
    net = keras.Model(inputs, outputs)
    model = bbh_tf.bayesianize(net, num_examples=16)
    mean, _ = model.predict_distribution(x, num_samples=5)
    np.testing.assert_allclose(mean, net.predict(x, verbose=0), atol=0.02)


def _image_classifier():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(32, 8, 8, 3)).astype("float32")
    y = (x.mean((1, 2, 3)) > 0).astype("int64")
    net = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
            keras.layers.Conv2D(4, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit(x, y, epochs=1, verbose=0)
    return net, x, y


@pytest.mark.parametrize("method", ["bbh", "bbb"])
@pytest.mark.parametrize(
    "make, kinds",
    [
        (
            _sequence_classifier,
            ["Embedding", "Conv1D", "LSTMCell", "LSTMCell", "Dense"],
        ),
        (_image_classifier, ["DepthwiseConv2D", "Conv2D", "Dense"]),
    ],
)
def test_every_layer_kind_converts_with_its_training(make, kinds, method):
    net, x, y = make()
    model = bbh_tf.bayesianize(net, num_examples=len(x), method=method)
    prefix = "Hyper" if method == "bbh" else "BayesByBackprop"
    converted = [
        type(getattr(layer, "cell", layer)).__name__
        for layer in model.network.layers
        if layer.weights
    ]
    assert converted == [prefix + kind for kind in kinds]
    mean, std = model.predict_distribution(x, num_samples=20)
    np.testing.assert_allclose(mean, net.predict(x, verbose=0), atol=0.03)
    assert (std > 0).any()
    model.compile("adam", "sparse_categorical_crossentropy")
    assert np.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"]).all()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda net: bbh_tf.bayesianize(
                keras.Sequential(
                    [keras.Input((5, 2)), keras.layers.GRU(4), keras.layers.Dense(2)]
                ),
                10,
            ),
            ValueError,
            "Layer 'gru' \\(GRU\\) has weights but cannot be converted: no "
            "Bayesian counterpart",
        ),
        (
            lambda net: bbh_tf.bayesianize(
                keras.Sequential(
                    [
                        keras.Input((5, 2)),
                        keras.layers.LSTM(4, dropout=0.2, name="tagger"),
                        keras.layers.Dense(2),
                    ]
                ),
                10,
            ),
            ValueError,
            "Layer 'tagger' .*an LSTM with dropout",
        ),
        (
            lambda net: bbh_tf.bayesianize(
                keras.Sequential(
                    [
                        keras.Input((6, 4)),
                        keras.layers.Conv1D(4, 3, groups=2, name="grouped"),
                    ]
                ),
                10,
            ),
            ValueError,
            "Layer 'grouped' .*a grouped convolution",
        ),
        (
            lambda net: bbh_tf.bayesianize(net, 10, last_layers=3),
            ValueError,
            "`last_layers` must be at most the 2",
        ),
        (
            lambda net: bbh_tf.bayesianize(net, 10, method="laplace"),
            ValueError,
            "`method`",
        ),
        (lambda net: bbh_tf.bayesianize(net, 0), ValueError, "`num_examples`"),
        (
            lambda net: bbh_tf.bayesianize(keras.layers.Dense(3), 10),
            TypeError,
            "`model` must be a built",
        ),
    ],
)
def test_bad_conversions_are_named(trained, call, error, match):
    with pytest.raises(error, match=match):
        call(trained[0])


@needs_mnist
@pytest.mark.parametrize("architecture", ["mlp", "lenet5"])
def test_the_mnist_example_converts_a_trained_network(tmp_path, architecture):
    output = tmp_path / "bayesianize.json"
    run_example(
        "bayesianize_mnist.py",
        f"--architecture={architecture}",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=256",
        "--test_size=1000",
        "--epochs=1",
        "--finetune_epochs=1",
        "--learning_rate_schedule=cosine",
        "--num_samples=4",
        f"--output={output}",
        cwd=tmp_path,
    )
    document = json.loads(output.read_text())
    assert document["flags"]["learning_rate_schedule"] == "cosine"
    rows = document["rows"]
    assert set(rows) == {"original", "converted", "fine_tuned"}
    # On the same test digits the conversion keeps the accuracy.
    assert abs(rows["converted"]["accuracy"] - rows["original"]["accuracy"]) < 0.02
