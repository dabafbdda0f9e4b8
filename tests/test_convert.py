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


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda net: bbh_tf.bayesianize(
                keras.Sequential(
                    [
                        keras.Input((5,)),
                        keras.layers.Embedding(10, 4),
                        keras.layers.Dense(2),
                    ]
                ),
                10,
            ),
            ValueError,
            "Layer 'embedding' \\(Embedding\\) has weights but no Bayesian counterpart",
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
        "--epochs=1",
        "--finetune_epochs=1",
        "--num_samples=4",
        f"--output={output}",
        cwd=tmp_path,
    )
    rows = json.loads(output.read_text())["rows"]
    assert set(rows) == {"original", "converted", "fine_tuned"}
    # On the same test digits the conversion keeps the accuracy.
    assert abs(rows["converted"]["accuracy"] - rows["original"]["accuracy"]) < 0.02
