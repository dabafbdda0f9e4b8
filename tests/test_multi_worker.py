"""examples/distributed_mnist.py under TensorFlow's distribution strategies:
two MultiWorkerMirroredStrategy workers on 127.0.0.1, and MirroredStrategy
without TF_CONFIG. Needs the MNIST IDX files (``BBH_MNIST_DIR``)."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO
from test_examples import MNIST_DIR, needs_mnist, run_example

import bbh_tf  # noqa: F401  (registers the classes load_model needs)

EXAMPLE = os.path.join(REPO, "examples", "distributed_mnist.py")
TRAIN_SIZE, BATCH, EPOCHS = 512, 64, 2


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def example_flags(output_dir):
    return [
        "--method=bbh",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        f"--train_size={TRAIN_SIZE}",
        f"--batch_size={BATCH}",
        f"--epochs={EPOCHS}",
        "--num_samples=3",
        "--verbose=0",
        f"--output_dir={output_dir}",
    ]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Run the example as two workers; return the chief's output folder."""
    output_dir = tmp_path_factory.mktemp("multi_worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            CUDA_VISIBLE_DEVICES="",
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=REPO,
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, EXAMPLE, *example_flags(output_dir)],
                cwd=output_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-4000:]
    return output_dir


@needs_mnist
def test_two_workers_train_one_model(two_workers):
    chief = json.loads((two_workers / "bbh.json").read_text())
    other = json.loads((two_workers / "worker_1" / "bbh.json").read_text())
    assert chief["strategy"] == "MultiWorkerMirroredStrategy"
    assert (chief["worker_index"], other["worker_index"]) == (0, 1)
    assert chief["num_replicas_in_sync"] == 2
    # The data loss fell and the accuracy rose (the total loss also holds
    # the KL estimate, which grows in the first steps as the discriminator
    # learns), and both workers logged the same (all-reduced) values.
    history = chief["history"]
    assert len(history["nll"]) == EPOCHS
    assert history["nll"][-1] < history["nll"][0], history["nll"]
    assert history["accuracy"][-1] > history["accuracy"][0], history["accuracy"]
    assert chief["history"] == other["history"]

    models = [
        keras.models.load_model(two_workers / "bbh.keras"),
        keras.models.load_model(two_workers / "worker_1" / "bbh.keras"),
    ]
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_array_equal(a, b)
    # The global batch was split across the workers: one step per global
    # batch, not one per worker batch.
    steps = EPOCHS * (TRAIN_SIZE // BATCH)
    assert int(models[0].optimizer.iterations.numpy()) == steps


@needs_mnist
def test_without_tf_config_uses_mirrored_strategy(tmp_path):
    env_config = os.environ.pop("TF_CONFIG", None)
    try:
        run_example("distributed_mnist.py", *example_flags(tmp_path), cwd=tmp_path)
    finally:
        if env_config is not None:
            os.environ["TF_CONFIG"] = env_config
    results = json.loads((tmp_path / "bbh.json").read_text())
    assert results["strategy"] == "MirroredStrategy"
    assert results["worker_index"] == 0
    assert 0.0 < results["test_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "tf_config",
    [
        "not json",
        '{"cluster": {"worker": ["127.0.0.1:1"]}}',
        '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
    ],
)
def test_a_malformed_tf_config_is_a_usage_error(tmp_path, tf_config):
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--epochs=1", f"--output_dir={tmp_path}"],
        cwd=tmp_path,
        env=dict(
            os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "TF_CONFIG must be JSON like" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


NAN_BATCH_WORKER = """
import json, sys
import numpy as np, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras, bbh_tf
sys.path.insert(0, {tests!r})
from conftest import blobs, small_classifier
keras.utils.set_random_seed(0)
x, y = blobs(n=256)
x[70, 2] = np.nan  # one row of the second global batch: one worker's replica
with strategy.scope():
    model = bbh_tf.BayesByHypernet(small_classifier(), num_examples=256)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
history = model.fit(data, epochs=2, verbose=0).history
weights = [v.numpy() for v in model.trainable_variables]
print(json.dumps({{
    "skipped": history["non_finite_steps"],
    "loss": history["loss"],
    "iterations": int(model.optimizer.iterations.numpy()),
    "finite": all(bool(np.isfinite(w).all()) for w in weights),
    "checksum": float(sum(float(np.sum(w)) for w in weights)),
}}))
"""


def test_a_nan_batch_is_skipped_by_every_worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(NAN_BATCH_WORKER.format(tests=os.path.join(REPO, "tests")))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            CUDA_VISIBLE_DEVICES="",
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=REPO,
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    results = []
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-4000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    for result in results:
        # The bad batch (in both epochs) is skipped on both workers: 3 of
        # the 4 steps of each epoch are applied.
        assert result["skipped"] == [1, 1], result
        assert result["iterations"] == 6 and result["finite"], result
        assert np.isfinite(result["loss"]).all()
    # Both workers hold the same weights.
    assert results[0]["checksum"] == results[1]["checksum"]
