"""The prediction methods take what ``model.predict`` takes, and
``evaluate_distribution`` scores the Bayesian model average."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, compiled_model

import bbh_tf


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, index):
        cut = slice(index * self.size, (index + 1) * self.size)
        return self.x[cut], self.y[cut]


def inputs(kind, x, y):
    if kind == "array":
        return x
    if kind == "dataset":
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    if kind == "x_only_dataset":
        return tf.data.Dataset.from_tensor_slices(x).batch(16)
    if kind == "generator":
        return ((x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16))
    return Batches(x, y, 16)


KINDS = ["array", "dataset", "x_only_dataset", "generator", "pydataset"]


@pytest.fixture(scope="module")
def deterministic():
    x, y = blobs(n=40)
    net = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(3, activation="softmax")]
    )
    model = bbh_tf.MaximumLikelihood(net)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    return model, x, y


@pytest.mark.parametrize("kind", KINDS)
def test_every_input_type_gives_the_same_prediction(deterministic, kind):
    model, x, y = deterministic
    reference = model.predict_distribution(x, batch_size=16)
    got = model.predict_distribution(inputs(kind, x, y))
    np.testing.assert_allclose(got.mean, reference.mean, rtol=1e-6)
    assert model.predict_samples(inputs(kind, x, y), num_samples=3).shape == (3, 40, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_bayes_by_hypernet_streams_every_input_type(kind):
    x, y = blobs(n=40)
    model = compiled_model(num_examples=40)
    model.fit(x, y, epochs=1, verbose=0)
    mean, std = model.predict_distribution(inputs(kind, x, y), num_samples=8)
    assert mean.shape == std.shape == (40, 3) and np.isfinite(mean).all()


@pytest.mark.parametrize(
    "x, error, match",
    [
        (
            tf.data.Dataset.from_tensor_slices({"a": np.zeros((4, 6))}).batch(2),
            TypeError,
            "`x` must give one input array per batch",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((0, 6))).batch(2),
            ValueError,
            "`x` gave no batch",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((4, 5))).batch(2),
            ValueError,
            r"`x` must have shape \(n, 6\)",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.full((4, 6), np.nan)).batch(2),
            ValueError,
            "`x` contains NaN",
        ),
        (42, TypeError, "`x` must be an array, a tf.data.Dataset"),
    ],
)
def test_bad_streams_are_named(deterministic, x, error, match):
    model = deterministic[0]
    with pytest.raises(error, match=match):
        model.predict_distribution(x)


@pytest.mark.parametrize("kind", ["array", "dataset", "generator", "pydataset"])
def test_evaluate_distribution_scores_the_model_average(deterministic, kind):
    model, x, y = deterministic
    logs = model.evaluate_distribution(
        inputs(kind, x, y), y if kind == "array" else None
    )
    probs = model.predict_distribution(x).mean
    assert logs["accuracy"] == pytest.approx(float(bbh_tf.metrics.accuracy(probs, y)))
    assert logs["nll"] == pytest.approx(
        float(bbh_tf.metrics.negative_log_likelihood(probs, y)), rel=1e-5
    )
    assert set(logs) == {"accuracy", "nll", "brier", "ece"}


def test_evaluate_distribution_of_a_regression_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) + 0.1 * rng.normal(size=64)).astype("float32")
    net = keras.Sequential(
        [
            keras.Input((3,)),
            bbh_tf.HyperDense(8, activation="relu"),
            bbh_tf.HyperDense(2),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=64)
    model.compile(optimizer="adam", loss=bbh_tf.GaussianLikelihood())
    model.fit(x, y, epochs=2, verbose=0)
    logs = model.evaluate_distribution(x, y, num_samples=10)
    assert set(logs) == {"rmse", "log_likelihood", "coverage_95", "crps"}
    assert all(np.isfinite(v) for v in logs.values())


def test_evaluate_distribution_needs_targets(deterministic):
    model, x, _ = deterministic
    with pytest.raises(ValueError, match="must give the targets"):
        model.evaluate_distribution(x)
    with pytest.raises(ValueError, match="`y` must be None when `x` is a dataset"):
        model.evaluate_distribution(
            tf.data.Dataset.from_tensor_slices(x).batch(4), x[:, 0]
        )


@pytest.mark.parametrize("kind", ["bbh", "ml"])
@pytest.mark.parametrize(
    "element, name",
    [
        (lambda x, y: ((x, x), y), "`x` must be one tensor per batch"),
        (lambda x, y: ({"a": x}, y), "`x` must be one tensor per batch"),
        (lambda x, y: (x, (y, y)), "`y` must be one tensor per batch"),
    ],
    ids=["two inputs", "dict input", "two outputs"],
)
def test_several_inputs_or_outputs_are_refused_before_training(kind, element, name):
    x, y = blobs(n=32)
    if kind == "bbh":
        model = compiled_model(num_examples=32)
    else:
        model = bbh_tf.MaximumLikelihood(
            keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensors(element(x, y))
    with pytest.raises(TypeError, match=name):
        model.fit(data, epochs=1, verbose=0)
