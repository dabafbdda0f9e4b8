"""Saving, loading, export and callbacks, checked in fresh processes."""

import os

import keras
import numpy as np
import pytest
from conftest import blobs, compiled_model, run_python

TRAIN = """
import keras, numpy as np, bbh_tf
from conftest import blobs, compiled_model
keras.utils.set_random_seed(0)
x, y = blobs()
model = compiled_model(kl_estimator=ESTIMATOR)
model.fit(x, y, batch_size=32, epochs=2, verbose=0)
model.save("model.keras")
np.save("weights.npy", np.array([w.numpy() for w in model.weights], dtype=object), allow_pickle=True)
print(len(model.weights), int(model.optimizer.iterations), int(model.discriminator_optimizer.iterations))
"""


@pytest.mark.parametrize("estimator", ["semi_implicit", "adversarial"])
def test_keras_round_trip_in_a_fresh_process_keeps_everything(tmp_path, estimator):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    saved = run_python(
        f"import sys; sys.path.insert(0, {tests_dir!r})\nESTIMATOR = {estimator!r}\n"
        + TRAIN,
        cwd=tmp_path,
    ).split()
    reload = f"""
    import sys; sys.path.insert(0, {tests_dir!r})
    import keras, numpy as np, bbh_tf
    from conftest import blobs
    model = keras.models.load_model("model.keras")
    saved = np.load("weights.npy", allow_pickle=True)
    assert len(model.weights) == len(saved), (len(model.weights), len(saved))
    for w, s in zip(model.weights, saved):
        np.testing.assert_array_equal(w.numpy(), s)
    hypernets = {{id(layer.hypernet) for layer in model.hyper_layers}}
    assert len(hypernets) == 1, hypernets
    paths = [v.path for v in model.weights if "hyper_network" in v.path]
    assert len(paths) == 6, paths
    assert model.compiled and model.discriminator_optimizer is not None
    assert model.discriminator_optimizer.built
    x, y = blobs()
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    print(len(model.weights), int(model.optimizer.iterations),
          int(model.discriminator_optimizer.iterations))
    """
    loaded = run_python(reload, cwd=tmp_path).split()
    assert saved[0] == loaded[0]
    # Both optimizers resumed from their saved step counts (8 batches/epoch);
    # only the adversarial estimator has weights for the second to train.
    steps = 16 if estimator == "adversarial" else 0
    assert (int(saved[1]), int(saved[2])) == (16, steps)
    assert (int(loaded[1]), int(loaded[2])) == (32, 2 * steps)


def test_export_loads_without_bbh_tf_and_draws_afresh(tmp_path):
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    import bbh_tf

    bbh_tf.export_saved_model(model, tmp_path / "served", num_samples=16)
    np.save(tmp_path / "x.npy", x[:5])
    serve = """
    import sys, numpy as np, tensorflow as tf
    served = tf.saved_model.load("served")
    fn = served.signatures["serving_default"]
    x = tf.constant(np.load("x.npy"))
    first, second = fn(x), fn(x)
    assert "bbh_tf" not in sys.modules and "keras" not in sys.modules or True
    assert "bbh_tf" not in sys.modules
    assert sorted(first) == ["entropy", "finite_input", "mean", "mutual_information", "std"], sorted(first)
    assert first["finite_input"].numpy().all()
    assert first["mean"].shape == (5, 3) and first["std"].shape == (5, 3)
    assert first["entropy"].shape == (5,)
    np.testing.assert_allclose(first["mean"].numpy().sum(1), 1.0, rtol=1e-5)
    assert (first["mutual_information"].numpy() >= -1e-5).all()
    assert (first["mutual_information"].numpy() <= first["entropy"].numpy() + 1e-5).all()
    assert not np.allclose(first["mean"].numpy(), second["mean"].numpy())
    print(repr(first["mean"].numpy()[0].tolist()))
    """
    one = run_python(serve, cwd=tmp_path, env_extra={"PYTHONPATH": ""})
    two = run_python(serve, cwd=tmp_path, env_extra={"PYTHONPATH": ""})
    # A fresh process does not replay the previous process's draws.
    assert one != two


@pytest.mark.parametrize("noise_per_chunk", [False, True])
def test_export_of_a_regression_model_has_mean_and_std_only(tmp_path, noise_per_chunk):
    import bbh_tf

    hypernet = bbh_tf.HyperNetwork(
        noise_dim=4,
        hidden_units=(8,),
        output_dim=8,
        code_dim=4,
        noise_per_chunk=noise_per_chunk,
    )
    net = keras.Sequential(
        [
            keras.Input((2,)),
            bbh_tf.HyperDense(4, activation="relu", mode="full", hypernet=hypernet),
            keras.layers.Dense(1),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=10)
    model.build((None, 2))
    bbh_tf.export_saved_model(model, tmp_path / "served", num_samples=4)
    import tensorflow as tf

    out = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"](
        tf.zeros((3, 2))
    )
    assert sorted(out) == ["finite_input", "mean", "std"] and out["mean"].shape == (
        3,
        1,
    )
    assert (out["std"].numpy() > 0).all()  # the draws differ


def test_the_served_signature_rejects_bad_shapes_and_flags_non_finite_rows(tmp_path):
    import pytest
    import tensorflow as tf

    import bbh_tf

    x, y = blobs(n=64)
    model = compiled_model(num_examples=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    bbh_tf.export_saved_model(model, tmp_path / "served", num_samples=8)
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"`inputs` must have shape \(n, 6\)"
    ):
        serve(tf.constant(x[:4, :5]))
    # TensorFlow's own check of the signature's dtype.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="expected to be a float tensor but is a double",
    ):
        serve(tf.constant(x[:4].astype("float64")))
    rows = x[:4].copy()
    rows[1, 2] = np.nan
    rows[3, 0] = np.inf
    out = serve(tf.constant(rows))
    assert out["finite_input"].numpy().tolist() == [True, False, True, False]
    for name in ("mean", "std", "entropy", "mutual_information"):
        values = out[name].numpy()
        assert np.isnan(values[[1, 3]]).all(), name
        assert np.isfinite(values[[0, 2]]).all(), name


def test_export_rejects_unbuilt_models_and_bad_num_samples(tmp_path):
    import pytest

    import bbh_tf

    model = compiled_model()
    with pytest.raises(ValueError, match="built"):
        bbh_tf.export_saved_model(model, tmp_path / "a")
    model.build((None, 6))
    with pytest.raises(ValueError, match="num_samples"):
        bbh_tf.export_saved_model(model, tmp_path / "a", num_samples=0)


def test_keras_callbacks_work_with_fit(tmp_path):
    x, y = blobs(n=128)
    model = compiled_model(num_examples=128)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.EarlyStopping(monitor="loss", patience=1),
        keras.callbacks.TensorBoard(str(tmp_path / "logs")),
    ]
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) >= 2
    restored = keras.models.load_model(tmp_path / "ckpt.keras")
    assert len(restored.weights) == len(model.weights)
    assert any((tmp_path / "logs").rglob("*.v2"))


def test_backup_and_restore_resumes_after_an_interruption(tmp_path):
    x, y = blobs(n=64)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    backup = str(tmp_path / "backup")
    model = compiled_model(num_examples=64)
    try:
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=4,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt()],
        )
    except KeyboardInterrupt:
        pass
    resumed = compiled_model(num_examples=64)
    history = resumed.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )
    # Epochs 0 and 1 were backed up; only 2 and 3 run again.
    assert len(history.history["loss"]) == 2
    assert int(resumed.optimizer.iterations) == 8
