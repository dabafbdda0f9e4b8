"""bbh_tf.DeepEnsemble: members trained together, on every model's
interface (fit, predictions, save and load, export)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs

import bbh_tf


def network():
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y = blobs(n=128)
    ensemble = bbh_tf.DeepEnsemble(network(), num_members=3)
    ensemble.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = ensemble.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    return ensemble, x, y, history


def test_members_start_apart_and_all_train(trained):
    ensemble, x, y, history = trained
    assert len(ensemble.members) == 3
    kernels = [member.layers[0].kernel.numpy() for member in ensemble.members]
    assert not np.allclose(kernels[0], kernels[1])
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    for member in ensemble.members:  # each member learned on its own
        assert (member.predict(x, verbose=0).argmax(1) == y).mean() > 0.9


def test_draws_are_the_members(trained):
    ensemble, x, _, _ = trained
    samples = ensemble.predict_samples(x[:8], num_samples=6)
    members = np.stack([m.predict(x[:8], verbose=0) for m in ensemble.members])
    np.testing.assert_allclose(samples, np.concatenate([members, members]), rtol=1e-5)
    mean, std = ensemble.predict_distribution(x[:8], num_samples=3)
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, members.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        ensemble.predict(x[:8], verbose=0), members.mean(0), rtol=1e-5
    )


def test_save_load_and_export(trained, tmp_path):
    ensemble, x, _, _ = trained
    ensemble.save(tmp_path / "e.keras")
    loaded = bbh_tf.load_model(tmp_path / "e.keras")
    np.testing.assert_allclose(
        loaded.predict_samples(x[:4], num_samples=3),
        ensemble.predict_samples(x[:4], num_samples=3),
        rtol=1e-6,
    )
    config = json.loads(json.dumps(ensemble.get_config()))
    assert bbh_tf.DeepEnsemble.from_config(config).num_members == 3
    bbh_tf.export_saved_model(ensemble, tmp_path / "served", num_samples=3)
    served = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    out = served(tf.constant(x[:4]))
    np.testing.assert_allclose(
        out["mean"], ensemble.predict_distribution(x[:4], 3).mean, rtol=1e-5
    )
    assert out["mutual_information"].shape == (4,)


def test_a_regression_ensemble_with_a_likelihood():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1).astype("float32")
    net = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    ensemble = bbh_tf.DeepEnsemble(net, num_members=2)
    ensemble.compile(optimizer="adam", loss=bbh_tf.GaussianLikelihood())
    ensemble.fit(x, y, epochs=2, verbose=0)
    prediction = ensemble.predict_distribution(x, num_samples=2)
    assert (
        prediction.epistemic_std.shape == (64, 1)
        and (prediction.epistemic_std > 0).any()
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_members": 1}, ValueError, "num_members"),
        ({"num_members": 2.5}, TypeError, "num_members"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        bbh_tf.DeepEnsemble(network(), **kwargs)
