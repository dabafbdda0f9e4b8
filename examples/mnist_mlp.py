"""MNIST classification with a 784-800-800-10 ReLU MLP (the paper's Section 3).

Trains the same network with one or all of five methods and evaluates each
on the 10 000 test digits:

* ``bbh``: Bayes by Hypernet with the package defaults. All three layers
  are ``HyperDense`` sharing one ``HyperNetwork``, which generates every
  unit's scale (1610 values; ``--mode``: ``scale`` by default,
  ``weight_norm`` for the paper's weight-normalised form); the kernels and
  biases are point estimates, as in the paper. The posterior is
  semi-implicit and its KL is the semi-implicit bound (``--kl_estimator``).
* ``ml``: maximum likelihood, plain ``Dense`` layers.
* ``mc_dropout``: ``Dense`` layers with ``Dropout`` after each hidden layer,
  kept on at prediction time. The paper's "MC-Dropout with pi = 0.7" is read
  as a keep probability of 0.7, i.e. ``--dropout_rate=0.3`` (the Keras rate
  is the probability of dropping a unit).
* ``bbb``: Bayes by Backprop, a mean-field Gaussian posterior on every weight
  and bias (``BayesByBackpropDense``).
* ``deep_ensemble``: ``--ensemble_members`` plain networks, each with its
  own initial weights, trained together (``bbh_tf.DeepEnsemble``).

All use Adam, batch 128 and 50 epochs by default (the paper's 50 epochs).
Test accuracy and NLL come from the mean predictive probabilities over
``--num_samples`` posterior draws (one for ``ml``, which is deterministic;
one per member for ``deep_ensemble``).

Run (two CPU cores, full data, roughly: 5 s per epoch for ``ml`` and
``mc_dropout``, 7 s for ``bbh``, 75 s for ``bbb``; 50 epochs of all four
take about an hour and a half)::

    python examples/mnist_mlp.py --data_dir=../shared/data/mnist   # all four
    python examples/mnist_mlp.py --method=bbh --epochs=5 --logdir=runs/tb
    python examples/rotated_digit.py      # Figure 2 from the saved models

``--flagfile=examples/mnist_paper.flags`` trains Bayes by Hypernet in the
paper's form (``weight_norm`` layers, the hypernetwork at the optimizer's
full rate) with the learning rate decayed along a cosine
(``--learning_rate_schedule=cosine``; give MC dropout the same flag to
compare): 98.7 % and a test NLL a little below MC dropout's over five seeds
(docs/results.md, section 3).
``--flagfile=examples/mnist_authors_notebook.flags`` trains Bayes by
Hypernet with the settings of the authors' public MNIST notebook instead
(one weight draw, 20 discriminator updates per step, their prior and KL
scale, ...; the file says where each comes from and what still differs).

Writes, per method, ``<output_dir>/<method>.keras`` (reload with
``keras.models.load_model`` after ``import bbh_tf``) and
``<output_dir>/<method>.json``: test accuracy, NLL and mean predictive
entropy, the flags and seed, seconds per epoch (every epoch and the median
after the first, which includes tracing), the last epoch's training logs and
the environment (processor, library versions).
"""

import json
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import shared_flags  # noqa: E402
from absl import app, flags  # noqa: E402
from shared_flags import adam, prior  # noqa: E402

import bbh_tf  # noqa: E402

HIDDEN_UNITS = (800, 800)
NUM_CLASSES = 10
METHOD_NAMES = ("bbh", "ml", "mc_dropout", "bbb", "deep_ensemble")

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "method", "all", METHOD_NAMES + ("all",), "Method to train, or 'all' in turn."
)
flags.DEFINE_integer("epochs", 50, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_string(
    "data_dir",
    None,
    "Folder with the four MNIST IDX .gz files; default $BBH_MNIST_DIR, "
    "else tensorflow-datasets.",
)
flags.DEFINE_integer(
    "seed",
    0,
    "Seed of the initialisation, shuffling and noise.",
    lower_bound=0,
    upper_bound=2**32 - 1,
)
flags.DEFINE_string("output_dir", "runs/mnist_mlp", "Where models and JSON go.")
flags.DEFINE_string(
    "logdir", "", "TensorBoard folder (one run per method); empty: off."
)
flags.DEFINE_integer(
    "train_size", 0, "Train on the first N training digits; 0: all 60000."
)
flags.DEFINE_integer("test_size", 0, "Test on the first N test digits; 0: all 10000.")
flags.DEFINE_integer(
    "num_samples", 100, "Posterior draws per test digit (Bayesian methods)."
)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of the network.")
flags.DEFINE_enum(
    "learning_rate_schedule",
    "constant",
    ["constant", "cosine"],
    "The network's learning rate over training: constant, or cosine decay "
    "from --learning_rate to 0 over all epochs (every method alike).",
)
flags.DEFINE_float(
    "dropout_rate", 0.3, "mc_dropout: Keras dropout rate (paper: keep prob 0.7)."
)
flags.DEFINE_float(
    "kl_weight", 1.0, "bbh, bbb: multiplier of the KL term (1: the ELBO)."
)
flags.DEFINE_integer("num_weight_samples", 5, "bbh: weight draws per training step.")
flags.DEFINE_enum(
    "mode",
    "scale",
    ["scale", "weight_norm", "full"],
    "bbh: which values the hypernetwork generates (HyperDense's mode; "
    "weight_norm is the paper's).",
)
flags.DEFINE_enum(
    "output_mode",
    None,
    ["scale", "weight_norm", "full"],
    "bbh: the mode of the output layer; default --mode.",
)
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0, 1 (bar) or 2.")
flags.DEFINE_bool(
    "jit_compile",
    False,
    "Compile every training step with XLA (Keras' compile(jit_compile=True)).",
)
flags.DEFINE_list(
    "classes",
    [],
    "Train and test on these digits only (e.g. 0,1,2,3,4 for split-MNIST "
    "out-of-distribution tests); empty: all ten. The output layer keeps "
    "ten classes.",
)


def mlp(layers, dropout_rate=0.0):
    """The 784-800-800-10 ReLU network from ``layers`` (a :class:`Layers`);
    a ``Dropout`` follows each hidden layer if the rate > 0."""
    stack = [keras.Input((784,))]
    for units in HIDDEN_UNITS:
        stack.append(layers.dense(units, "relu"))
        if dropout_rate:
            stack.append(keras.layers.Dropout(dropout_rate))
    stack.append(layers.dense(NUM_CLASSES, "softmax", output=True))
    return keras.Sequential(stack)


class Layers:
    """The dense and convolutional layers one method builds its network from.

    ``dense(units, activation)``, ``conv(filters, kernel_size,
    activation)`` and ``lstm(units)``: plain Keras layers (``"ml"``, ``"mc_dropout"``), Bayes by
    Backprop layers (``"bbb"``) or hyper layers of ``mode`` (default
    ``--mode``) sharing one ``HyperNetwork`` (``"bbh"``): ``hypernet``, or by
    default one built from the shared hypernetwork flags.
    """

    def __init__(self, method, hypernet=None, mode=None):
        self.method = method
        self.mode = mode or FLAGS.mode
        if method == "bbh" and hypernet is None:
            hypernet = shared_flags.hypernetwork()
        self.hypernet = hypernet if method == "bbh" else None

    def dense(self, units, activation, output=False):
        """A dense layer; ``output``: the network's last (``--output_mode``)."""
        if self.method == "bbh":
            mode = (FLAGS.output_mode if output else None) or self.mode
            return bbh_tf.HyperDense(
                units, activation=activation, mode=mode, hypernet=self.hypernet
            )
        if self.method == "bbb":
            return bbh_tf.BayesByBackpropDense(
                units, activation=activation, prior=prior()
            )
        return keras.layers.Dense(units, activation=activation)

    def conv(self, filters, kernel_size, activation):
        if self.method == "bbh":
            return bbh_tf.HyperConv2D(
                filters,
                kernel_size,
                activation=activation,
                mode=self.mode,
                hypernet=self.hypernet,
            )
        if self.method == "bbb":
            return bbh_tf.BayesByBackpropConv2D(
                filters, kernel_size, activation=activation, prior=prior()
            )
        return keras.layers.Conv2D(filters, kernel_size, activation=activation)

    def lstm(self, units):
        """An LSTM layer reading a sequence, its last state out; the
        Bayesian cells keep one weight draw per sequence."""
        if self.method == "bbh":
            cell = bbh_tf.HyperLSTMCell(units, mode=self.mode, hypernet=self.hypernet)
            return keras.layers.RNN(cell)
        if self.method == "bbb":
            return keras.layers.RNN(
                bbh_tf.BayesByBackpropLSTMCell(units, prior=prior())
            )
        return keras.layers.LSTM(units)


def learning_rate(num_examples, epochs=None):
    """The network optimizer's learning rate (``--learning_rate_schedule``)
    for training on ``num_examples`` digits for ``epochs`` (default
    ``--epochs``)."""
    if FLAGS.learning_rate_schedule == "constant":
        return FLAGS.learning_rate
    epochs = FLAGS.epochs if epochs is None else epochs
    steps = epochs * math.ceil(num_examples / FLAGS.batch_size)
    return keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, steps)


def compiled(model, num_examples):
    """``model`` compiled for the one-optimizer methods."""
    model.compile(
        optimizer=adam(learning_rate(num_examples)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=FLAGS.jit_compile,
    )
    return model


def builders(architecture, hypernetwork=None):
    """Method name -> function(num_examples) returning a compiled
    PredictiveModel around ``architecture(layers, dropout_rate=0.0)``.
    ``hypernetwork``: a function returning Bayes by Hypernet's
    ``HyperNetwork``; default: the one the flags describe."""

    def build_bbh(num_examples):
        model = bbh_tf.BayesByHypernet(
            architecture(
                Layers("bbh", hypernet=hypernetwork() if hypernetwork else None)
            ),
            prior=prior(),
            kl_estimator=shared_flags.kl_estimator(),
            num_examples=num_examples,
            num_weight_samples=FLAGS.num_weight_samples,
            kl_weight=FLAGS.kl_weight,
        )
        model.compile(
            optimizer=adam(learning_rate(num_examples)),
            discriminator_optimizer=shared_flags.discriminator_adam(
                FLAGS.discriminator_learning_rate
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=FLAGS.jit_compile,
        )
        return model

    def build_ml(num_examples):
        return compiled(
            bbh_tf.MaximumLikelihood(architecture(Layers("ml"))), num_examples
        )

    def build_mc_dropout(num_examples):
        network = architecture(Layers("mc_dropout"), dropout_rate=FLAGS.dropout_rate)
        return compiled(bbh_tf.MCDropout(network), num_examples)

    def build_deep_ensemble(num_examples):
        network = architecture(Layers("ml"))
        return compiled(
            bbh_tf.DeepEnsemble(network, num_members=FLAGS.ensemble_members),
            num_examples,
        )

    def build_bbb(num_examples):
        return compiled(
            bbh_tf.BayesByBackprop(
                architecture(Layers("bbb")),
                num_examples=num_examples,
                kl_weight=FLAGS.kl_weight,
            ),
            num_examples,
        )

    return {
        "bbh": build_bbh,
        "ml": build_ml,
        "mc_dropout": build_mc_dropout,
        "bbb": build_bbb,
        "deep_ensemble": build_deep_ensemble,
    }


BUILDERS = builders(mlp)


def flag_values():
    """This script's flags and the shared ones, for a results JSON."""
    return {
        name: FLAGS[name].value
        for name in (
            "method",
            "epochs",
            "batch_size",
            "data_dir",
            "seed",
            "train_size",
            "test_size",
            "num_samples",
            "learning_rate",
            "learning_rate_schedule",
            "dropout_rate",
            "kl_weight",
            "num_weight_samples",
            "mode",
            "output_mode",
            "classes",
            "jit_compile",
        )
    } | shared_flags.values()


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def evaluate(model, x, y, num_samples):
    """Accuracy, NLL and entropy of the mean predictive probabilities."""
    probs, _ = model.predict_distribution(x, num_samples=num_samples, batch_size=250)
    eps = 1e-12
    return {
        "test_accuracy": float(np.mean(probs.argmax(-1) == y)),
        "test_nll": float(-np.mean(np.log(probs[np.arange(len(y)), y] + eps))),
        "test_entropy": float(-np.mean(np.sum(probs * np.log(probs + eps), -1))),
        "num_samples": num_samples,
    }


def num_draws(method):
    """Draws per test input: one for the deterministic network (it is the
    whole distribution), one per member for the ensemble."""
    if method == "ml":
        return 1
    if method == "deep_ensemble":
        return FLAGS.ensemble_members
    return FLAGS.num_samples


def run(method, train, test, builders=None, output_dir=None, extra=None):
    """Train ``method`` (a key of ``builders``, default this file's), then
    evaluate, save the model and write its JSON to ``output_dir`` (default
    ``--output_dir``), adding the entries of ``extra`` to the JSON."""
    output_dir = output_dir or FLAGS.output_dir
    (x_train, y_train), (x_test, y_test) = train, test
    print(f"== {method}: {len(x_train)} training digits, {FLAGS.epochs} epochs")
    keras.utils.set_random_seed(FLAGS.seed)
    model = (builders or BUILDERS)[method](len(x_train))
    timer = EpochTimer()
    callbacks = [timer]
    if FLAGS.logdir:
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(FLAGS.logdir, method))
        )
    history = model.fit(
        x_train,
        y_train,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        callbacks=callbacks,
        verbose=FLAGS.verbose,
    )

    start = time.perf_counter()
    results = evaluate(model, x_test, y_test, num_draws(method))
    results["eval_seconds"] = round(time.perf_counter() - start, 2)
    # The first epoch includes tracing the training step.
    later = timer.seconds[1:]
    results.update(
        {
            "method": method,
            "seed": FLAGS.seed,
            "train_size": len(x_train),
            "test_size": len(x_test),
            "classes": selected_classes(),
            "median_epoch_seconds": (
                round(statistics.median(later), 2) if later else None
            ),
            "epoch_seconds": [round(s, 2) for s in timer.seconds],
            "final_train_logs": {
                name: float(values[-1]) for name, values in history.history.items()
            },
            "history": {
                name: [float(v) for v in values]
                for name, values in history.history.items()
            },
            "flags": flag_values(),
            "environment": shared_flags.environment(),
        }
    )

    results.update(extra or {})
    os.makedirs(output_dir, exist_ok=True)
    model.save(os.path.join(output_dir, f"{method}.keras"))
    json_path = os.path.join(output_dir, f"{method}.json")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=2)
    print(
        f"{method}: test accuracy {results['test_accuracy']:.4f}, "
        f"NLL {results['test_nll']:.4f}, epoch seconds "
        f"{results['epoch_seconds']}; wrote {json_path}"
    )


def selected_classes():
    """The digits of ``--classes`` as sorted ints (all ten when empty)."""
    try:
        digits = sorted({int(c) for c in FLAGS.classes}) or list(range(NUM_CLASSES))
    except ValueError:
        raise app.UsageError(f"--classes must list digits 0-9, got {FLAGS.classes}.")
    if digits[0] < 0 or digits[-1] >= NUM_CLASSES:
        raise app.UsageError(f"--classes must list digits 0-9, got {FLAGS.classes}.")
    return digits


def load(flatten):
    """Training (``--train_size``, ``--classes``) and test sets."""
    for name in ("epochs", "batch_size", "num_samples", "num_weight_samples"):
        if FLAGS[name].value < 1:
            raise app.UsageError(f"--{name} must be >= 1.")
    for name in ("train_size", "test_size"):
        if FLAGS[name].value < 0:
            raise app.UsageError(f"--{name} must be >= 0.")
    shared_flags.check({"learning_rate": FLAGS.learning_rate})
    if not (np.isfinite(FLAGS.kl_weight) and FLAGS.kl_weight >= 0):
        raise app.UsageError(
            f"--kl_weight must be finite and >= 0, got {FLAGS.kl_weight}."
        )
    if not 0 <= FLAGS.dropout_rate < 1:
        raise app.UsageError(
            f"--dropout_rate must be in [0, 1), got {FLAGS.dropout_rate}."
        )
    digits = selected_classes()
    splits = []
    for split in ("train", "test"):
        x, y = bbh_tf.data.load_mnist(split, data_dir=FLAGS.data_dir, flatten=flatten)
        keep = np.isin(y, digits)
        splits.append((x[keep], y[keep]))
    (x_train, y_train), (x_test, y_test) = splits
    if FLAGS.train_size:
        x_train, y_train = x_train[: FLAGS.train_size], y_train[: FLAGS.train_size]
    if FLAGS.test_size:
        x_test, y_test = x_test[: FLAGS.test_size], y_test[: FLAGS.test_size]
    return (x_train, y_train), (x_test, y_test)


def run_all(builders, flatten):
    """Run ``--method`` (or every method of ``builders``) in turn."""
    train, test = load(flatten)
    methods = tuple(builders) if FLAGS.method == "all" else (FLAGS.method,)
    for method in methods:
        run(method, train, test, builders)


def main_for(architecture, flatten):
    """The ``main`` of an example training ``architecture`` (see
    :func:`builders`) on MNIST images, flattened to vectors or not."""

    def main(argv):
        del argv
        run_all(builders(architecture), flatten=flatten)

    return main


main = main_for(mlp, flatten=True)


if __name__ == "__main__":
    app.run(main)
