"""MirroredStrategy on two logical CPU devices, in a fresh process."""

import os

from conftest import run_python

TESTS = os.path.dirname(os.path.abspath(__file__))

SCRIPT = f"""
import sys; sys.path.insert(0, {TESTS!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np, bbh_tf
from conftest import blobs, small_classifier
keras.utils.set_random_seed(0)
x, y = blobs(n=256)

def train(strategy, estimator=None):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = bbh_tf.BayesByHypernet(
            small_classifier(), num_examples=256,
            kl_estimator=estimator or bbh_tf.kl.AdversarialKL(warmup_steps=3))
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      discriminator_optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0).history
    return model, history

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
model, history = train(strategy)
assert np.isfinite(history["loss"]).all()
assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
assert history["accuracy"][-1] > 0.9, history["accuracy"]
# Both optimizers stepped once per global batch (plus the warm-up).
assert int(model.optimizer.iterations.numpy()) == 6 * 4
assert int(model.discriminator_optimizer.iterations.numpy()) == 3 + 6 * 4
# The logged losses are per-example means, not sums over replicas: the same
# quantity as on one device, up to sampling noise.
_, single = train(tf.distribute.get_strategy())
ratio = history["nll"][0] / single["nll"][0]
assert 0.7 < ratio < 1.4, (history["nll"][0], single["nll"][0])
mean, std = model.predict_distribution(x[:10], num_samples=8)
assert mean.shape == (10, 3)
# The default estimator (no weights of its own) under the strategy.
model, history = train(strategy, "semi_implicit")
assert np.isfinite(history["loss"]).all() and history["accuracy"][-1] > 0.9
assert int(model.discriminator_optimizer.iterations.numpy()) == 0
# A NaN batch is skipped on every replica, the others train.
bad = x.copy()
bad[64:128, 0] = np.nan
before = [v.numpy() for v in model.trainable_variables]
# Datasets: fit rejects NaN arrays before any step.
batches = lambda a: tf.data.Dataset.from_tensor_slices((a, y)).batch(64)
history = model.fit(batches(bad), epochs=1, verbose=0).history
assert history["non_finite_steps"] == [1], history
assert int(model.optimizer.iterations.numpy()) == 6 * 4 + 3
assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)
# Only bad batches: the weights stay as they were, bit for bit.
before = [v.numpy() for v in model.trainable_variables]
bad[:] = np.nan
history = model.fit(batches(bad), epochs=1, verbose=0).history
assert history["non_finite_steps"] == [4], history
assert all(np.array_equal(a, v.numpy())
           for a, v in zip(before, model.trainable_variables))
print("ok", history["loss"][0], history["loss"][-1], single["nll"][0])
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    out = run_python(SCRIPT, cwd=tmp_path)
    assert out.startswith("ok")
