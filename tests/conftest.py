"""Shared fixtures: quiet TensorFlow, fixed seeds, small models."""

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bbh_tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def small_classifier(
    input_dim=6,
    hidden=12,
    classes=3,
    output_dim=16,
    mode="weight_norm",
    noise_per_chunk=False,
):
    """A two-hyper-layer classifier sharing one small hypernetwork."""
    hypernet = bbh_tf.HyperNetwork(
        noise_dim=4,
        hidden_units=(8, 16),
        output_dim=output_dim,
        code_dim=4,
        noise_per_chunk=noise_per_chunk,
    )
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            bbh_tf.HyperDense(hidden, activation="relu", hypernet=hypernet, mode=mode),
            bbh_tf.HyperDense(
                classes, activation="softmax", hypernet=hypernet, mode=mode
            ),
        ]
    )


def blobs(n=256, input_dim=6, classes=3, seed=0):
    """Separable Gaussian blobs: float32 inputs, int labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    centres = rng.normal(scale=3.0, size=(classes, input_dim))
    x = centres[labels] + rng.normal(size=(n, input_dim))
    return x.astype("float32"), labels.astype("int64")


def compiled_model(network=None, num_examples=256, **kwargs):
    model = bbh_tf.BayesByHypernet(
        network or small_classifier(), num_examples=num_examples, **kwargs
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        discriminator_optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run_subprocess(*args, cwd, env_extra=None, timeout=600):
    """``python *args`` in a fresh interpreter with the repository on the
    path; returns the ``CompletedProcess`` (output captured as text)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code, cwd, env_extra=None, timeout=300):
    """Run ``code`` in a fresh interpreter; return stdout, fail on error."""
    result = run_subprocess(
        "-c", textwrap.dedent(code), cwd=cwd, env_extra=env_extra, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout
