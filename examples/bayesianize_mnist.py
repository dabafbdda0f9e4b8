"""Make a trained MNIST network Bayesian with ``bbh_tf.bayesianize``.

Trains the plain network (``--architecture``: the 784-800-800-10 MLP of
``mnist_mlp.py`` or LeNet-5 of ``lenet5.py``) by maximum likelihood for
``--epochs``, converts it (``--method``: hyper layers sharing one
hypernetwork, or Bayes by Backprop layers; ``--last_layers``: only the last
``k`` layers with weights), and reports the test accuracy and NLL of the
original, of the converted model before any further training (from
``--num_samples`` posterior draws) and after ``--finetune_epochs`` of
variational training. The other flags are ``mnist_mlp.py``'s (``--seed``,
``--train_size``, ``--batch_size``, ``--learning_rate``...).

Run::

    python examples/bayesianize_mnist.py --data_dir=../shared/data/mnist
    python examples/bayesianize_mnist.py --architecture=lenet5 --last_layers=1

Writes ``--output`` (JSON: the three rows, the flags and the environment).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import lenet5  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
import shared_flags  # noqa: E402
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("architecture", "mlp", ["mlp", "lenet5"], "The network.")
flags.DEFINE_enum("convert_method", "bbh", ["bbh", "bbb"], "What to convert to.")
flags.DEFINE_integer(
    "last_layers", 0, "Convert the last k layers with weights; 0: all.", lower_bound=0
)
flags.DEFINE_integer(
    "finetune_epochs", 2, "Variational training after the conversion.", lower_bound=0
)
flags.DEFINE_string("output", "runs/bayesianize.json", "Where the JSON goes.")
FLAGS.set_default("epochs", 5)


def scores(probs, y):
    """Test accuracy and NLL of mean class probabilities ``probs``."""
    return {
        "accuracy": float(bbh_tf.metrics.accuracy(probs, y)),
        "nll": float(bbh_tf.metrics.negative_log_likelihood(probs, y)),
    }


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    flat = FLAGS.architecture == "mlp"
    (x_train, y_train), (x_test, y_test) = mnist_mlp.load(flatten=flat)
    build = mnist_mlp.mlp if flat else lenet5.lenet5
    network = build(mnist_mlp.Layers("ml"))
    network.compile(
        optimizer=shared_flags.adam(mnist_mlp.learning_rate(len(x_train))),
        loss="sparse_categorical_crossentropy",
    )
    network.fit(
        x_train, y_train, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2
    )
    rows = {"original": scores(network.predict(x_test, verbose=0), y_test)}
    model = bbh_tf.bayesianize(
        network,
        num_examples=len(x_train),
        last_layers=FLAGS.last_layers or None,
        method=FLAGS.convert_method,
    )
    probs, _ = model.predict_distribution(x_test, num_samples=FLAGS.num_samples)
    rows["converted"] = scores(probs, y_test)
    if FLAGS.finetune_epochs:
        model.compile(
            optimizer=shared_flags.adam(
                mnist_mlp.learning_rate(len(x_train), FLAGS.finetune_epochs)
            ),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(
            x_train,
            y_train,
            batch_size=FLAGS.batch_size,
            epochs=FLAGS.finetune_epochs,
            verbose=2,
        )
        probs, _ = model.predict_distribution(x_test, num_samples=FLAGS.num_samples)
        rows["fine_tuned"] = scores(probs, y_test)
    for name, row in rows.items():
        print(f"{name:<11} accuracy {row['accuracy']:.4f}  NLL {row['nll']:.4f}")
    document = {
        "rows": rows,
        "accuracy_change": rows["converted"]["accuracy"] - rows["original"]["accuracy"],
        "flags": {
            name: FLAGS[name].value
            for name in (
                "architecture",
                "convert_method",
                "last_layers",
                "epochs",
                "finetune_epochs",
                "seed",
                "train_size",
                "batch_size",
                "learning_rate",
                "learning_rate_schedule",
                "num_samples",
            )
        },
        "environment": shared_flags.environment(),
    }
    shared_flags.write_json(FLAGS.output, document)


if __name__ == "__main__":
    app.run(main)
