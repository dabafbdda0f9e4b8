"""The MNIST MLP of ``mnist_mlp.py``, trained data-parallel on several GPUs or
several machines with TensorFlow's own distribution strategies.

* ``TF_CONFIG`` unset: ``tf.distribute.MirroredStrategy`` over every local
  GPU (one replica on the CPU when there is none).
* ``TF_CONFIG`` set: ``tf.distribute.MultiWorkerMirroredStrategy``, one
  process per worker, each with all its local GPUs. Every worker runs this
  same command; ``TF_CONFIG`` tells each its place in the cluster.

Same methods and flags as ``mnist_mlp.py`` (``--method``, ``--epochs``,
``--batch_size``...). ``--batch_size`` is the *global* batch, split over all
replicas of all workers; scale it with the number of replicas to keep the
per-replica batch. Every worker loads the whole dataset and TensorFlow
shards it; gradients are summed over all replicas each step, so the workers'
weights stay identical.

The chief (worker 0) writes ``<output_dir>/<method>.keras`` and ``.json``;
worker ``i > 0`` writes the same files under ``<output_dir>/worker_<i>/``
(its copy of the identical model; the files say which worker wrote them).

Run on one machine with its GPUs::

    python examples/distributed_mnist.py --method=bbh --epochs=5 \\
        --data_dir=../shared/data/mnist

Run on two machines ``host0`` and ``host1`` (any free port; start both)::

    # on host0
    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/distributed_mnist.py --method=bbh --batch_size=256
    # on host1: the same, with "index": 1

The same two commands on one machine with ``localhost`` and two ports run
two workers side by side (``tests/test_multi_worker.py`` does that).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import mnist_mlp  # noqa: E402  (defines the shared flags)
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def tf_config_index():
    """This worker's index from ``TF_CONFIG``, or None when it is unset; a
    usage error naming ``TF_CONFIG`` when it is not the expected JSON."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    expected = (
        'TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        index = config["task"]["index"]
    except (ValueError, TypeError, KeyError):
        raise app.UsageError(f"{expected}, got {raw!r}.") from None
    if not (
        isinstance(workers, list)
        and isinstance(index, int)
        and 0 <= index < len(workers)
    ):
        raise app.UsageError(
            f"{expected}: task.index must index the cluster.worker list, got "
            f"{index!r} for {workers!r}."
        )
    return index


def make_strategy(multi_worker):
    """``(strategy, name)``: MultiWorkerMirroredStrategy (it reads
    ``TF_CONFIG``) or MirroredStrategy. Must run before any other TensorFlow
    operation of the program."""
    if multi_worker:
        # Its class is named CollectiveAllReduceStrategy; report the API name.
        return (
            tf.distribute.MultiWorkerMirroredStrategy(),
            "MultiWorkerMirroredStrategy",
        )
    return tf.distribute.MirroredStrategy(), "MirroredStrategy"


def main(argv):
    del argv
    index = tf_config_index()
    strategy, strategy_name = make_strategy(index is not None)
    tf.get_logger().setLevel("ERROR")  # one INFO line per all-reduce otherwise
    index = index or 0
    output_dir = (
        FLAGS.output_dir
        if index == 0
        else os.path.join(FLAGS.output_dir, f"worker_{index}")
    )
    replicas = strategy.num_replicas_in_sync
    print(
        f"worker {index}: {strategy_name} with {replicas} replica(s) "
        f"in sync, global batch {FLAGS.batch_size} "
        f"({FLAGS.batch_size / replicas:g} per replica)"
    )
    train, test = mnist_mlp.load(flatten=True)
    methods = mnist_mlp.METHOD_NAMES if FLAGS.method == "all" else (FLAGS.method,)
    extra = {
        "strategy": strategy_name,
        "num_replicas_in_sync": replicas,
        "worker_index": index,
    }
    for method in methods:
        with strategy.scope():
            mnist_mlp.run(method, train, test, output_dir=output_dir, extra=extra)


if __name__ == "__main__":
    app.run(main)
