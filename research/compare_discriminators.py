"""Compare the two discriminator forms: per-position (conditional) vs pooled.

``Discriminator(conditional=True)`` sees each generated value with its
position and estimates the sum of per-position KLs; ``conditional=False`` (the
paper's form) sees values only and estimates the KL between the pooled
distribution of all generated values and the prior. See docs/research/discriminator.md.

Two problems, each trained once per form (and per seed for the toy):

* toy: the 1-D ``y = x**3 + noise`` regression of examples/toy_regression.py
  (20 points, 1-100-1 ReLU net, posterior on the first layer's weights and
  bias, Gaussian likelihood with the known noise std 3, full-batch Adam).
* mnist: MLP 784-800-800-10 whose three ``HyperDense(mode="weight_norm")``
  layers share one ``HyperNetwork`` (posterior on the per-unit scales), Adam,
  batch 128, a short run (``--mnist_epochs``).

Metrics: predictive std inside/outside the data range and train RMSE (toy);
test accuracy, NLL and mean predictive entropy from ``predict_distribution``
(mnist); the last epoch's logged ``kl`` and discriminator accuracy; and the
posterior spread: for 200 draws of the generated values, the std across draws
at each position averaged over positions, next to the mean |value|. A spread
far below the mean |value| means a nearly deterministic posterior.

Usage::

    python research/compare_discriminators.py --output=/tmp/cmp.json
    python research/compare_discriminators.py --problems=toy \\
        --discriminator_steps=1 --discriminator_learning_rate=1e-3

Writes a JSON (``--output``) and prints one table per problem.
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

FORMS = {"conditional": True, "pooled": False}
TOY_NOISE_STD = 3.0
TOY_RANGE = 4.0
SPREAD_DRAWS = 200

FLAGS = flags.FLAGS
flags.DEFINE_list("problems", ["toy", "mnist"], "Problems to run: toy, mnist.")
flags.DEFINE_list("forms", list(FORMS), "Discriminator forms: conditional, pooled.")
flags.DEFINE_string(
    "output", "compare_discriminators.json", "Where to write the JSON results."
)
flags.DEFINE_integer(
    "discriminator_steps", 5, "Discriminator updates per training step."
)
flags.DEFINE_float(
    "discriminator_learning_rate", 1e-2, "Adam rate of the discriminator."
)
flags.DEFINE_integer("num_weight_samples", 5, "Weight draws per training step.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1 or 2).")
# Toy problem.
flags.DEFINE_list("toy_seeds", ["0", "1"], "Seeds (data and training) of the toy runs.")
flags.register_validator(
    "toy_seeds",
    lambda seeds: all(s.isdecimal() and int(s) < 2**32 for s in seeds),
    message="--toy_seeds must be integers in [0, 2**32 - 1].",
)
flags.DEFINE_integer("toy_steps", 4000, "Full-batch training steps per toy run.")
flags.DEFINE_float("toy_learning_rate", 1e-2, "Adam rate of the toy network.")
flags.DEFINE_integer("toy_num_samples", 200, "Draws for the toy predictive std.")
# MNIST.
flags.DEFINE_integer("mnist_epochs", 3, "Training epochs per MNIST run.")
flags.DEFINE_integer(
    "mnist_seed", 0, "Seed of the MNIST runs.", lower_bound=0, upper_bound=2**32 - 1
)
flags.DEFINE_float("mnist_learning_rate", 1e-3, "Adam rate of the MNIST network.")
flags.DEFINE_integer("mnist_batch_size", 128, "MNIST training batch size.")
flags.DEFINE_integer("mnist_num_samples", 20, "Draws for the MNIST predictions.")
flags.DEFINE_integer(
    "mnist_train_examples", 0, "Use only this many training examples (0: all)."
)
flags.DEFINE_string(
    "data_dir",
    os.environ.get(bbh_tf.data.MNIST_DIR_ENV) or None,
    "Directory of the MNIST IDX .gz files (default: $BBH_MNIST_DIR).",
)


# The study is of the paper's hypernetwork: deterministic, its weights
# learning at the optimizer's full rate.
PAPER_HYPERNETWORK = {"semi_implicit": False, "learning_rate_scale": 1.0}


# ---------------------------------------------------------------- helpers
def posterior_spread(model, num_draws=SPREAD_DRAWS):
    """Std across draws per generated position (averaged) and mean |value|."""
    values = model.sample_generated_values(num_draws).numpy()
    return {
        "spread_std": float(values.std(axis=0).mean()),
        "mean_abs_value": float(np.abs(values).mean()),
    }


def last_logged(history):
    """The last epoch's logged kl and discriminator accuracy/loss."""
    logs = history.history
    return {
        "kl": float(logs["kl"][-1]),
        "discriminator_accuracy": float(logs["discriminator_accuracy"][-1]),
        "discriminator_loss": float(logs["discriminator_loss"][-1]),
    }


def compile_bbh(model, learning_rate, loss, metrics=None):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        discriminator_optimizer=keras.optimizers.Adam(
            FLAGS.discriminator_learning_rate
        ),
        loss=loss,
        metrics=metrics,
    )


# -------------------------------------------------------------------- toy
def toy_nll(y_true, y_pred):
    """Gaussian NLL per example with the known noise std, up to a constant."""
    return (
        0.5
        * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)
        / TOY_NOISE_STD**2
    )


def run_toy(conditional, seed):
    keras.utils.set_random_seed(seed)
    x, y = bbh_tf.data.toy_regression(n=20, seed=seed)
    hypernet = bbh_tf.HyperNetwork(**PAPER_HYPERNETWORK)
    network = keras.Sequential(
        [
            keras.Input((1,)),
            bbh_tf.HyperDense(100, activation="relu", mode="full", hypernet=hypernet),
            keras.layers.Dense(1),
        ]
    )
    model = bbh_tf.BayesByHypernet(
        network,
        kl_estimator=bbh_tf.kl.AdversarialKL(
            bbh_tf.Discriminator(conditional=conditional),
            steps=FLAGS.discriminator_steps,
        ),
        num_examples=len(x),
        num_weight_samples=FLAGS.num_weight_samples,
    )
    compile_bbh(model, FLAGS.toy_learning_rate, toy_nll)
    epochs = min(10, FLAGS.toy_steps)
    start = time.perf_counter()
    history = model.fit(
        tf.data.Dataset.from_tensors((x, y)).repeat(),
        epochs=epochs,
        steps_per_epoch=-(-FLAGS.toy_steps // epochs),
        shuffle=False,
        verbose=FLAGS.verbose,
    )
    train_seconds = time.perf_counter() - start

    grid = np.linspace(-6.0, 6.0, 241).astype(np.float32)[:, None]
    mean, std = model.predict_distribution(
        np.concatenate([grid, x]), num_samples=FLAGS.toy_num_samples
    )
    inside = np.abs(grid[:, 0]) <= TOY_RANGE
    grid_std = std[: len(grid), 0]
    result = {
        "seed": seed,
        "std_inside": float(grid_std[inside].mean()),
        "std_outside": float(grid_std[~inside].mean()),
        "train_rmse": float(np.sqrt(np.mean((mean[len(grid) :, 0] - y[:, 0]) ** 2))),
        "train_seconds": round(train_seconds, 1),
    }
    result.update(last_logged(history))
    result.update(posterior_spread(model))
    return result


# ------------------------------------------------------------------ mnist
def load_mnist():
    """(x_train, y_train), (x_test, y_test), flattened, in [0, 1]."""
    x_train, y_train = bbh_tf.data.load_mnist(
        "train", data_dir=FLAGS.data_dir, flatten=True
    )
    x_test, y_test = bbh_tf.data.load_mnist(
        "test", data_dir=FLAGS.data_dir, flatten=True
    )
    if FLAGS.mnist_train_examples:
        x_train = x_train[: FLAGS.mnist_train_examples]
        y_train = y_train[: FLAGS.mnist_train_examples]
    return (x_train, y_train), (x_test, y_test)


def run_mnist(conditional, data):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(FLAGS.mnist_seed)
    hypernet = bbh_tf.HyperNetwork(**PAPER_HYPERNETWORK)
    network = keras.Sequential(
        [keras.Input((784,))]
        + [
            bbh_tf.HyperDense(
                units, activation=activation, mode="weight_norm", hypernet=hypernet
            )
            for units, activation in ((800, "relu"), (800, "relu"), (10, "softmax"))
        ]
    )
    model = bbh_tf.BayesByHypernet(
        network,
        kl_estimator=bbh_tf.kl.AdversarialKL(
            bbh_tf.Discriminator(conditional=conditional),
            steps=FLAGS.discriminator_steps,
        ),
        num_examples=len(x_train),
        num_weight_samples=FLAGS.num_weight_samples,
    )
    compile_bbh(
        model,
        FLAGS.mnist_learning_rate,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=FLAGS.mnist_batch_size,
        epochs=FLAGS.mnist_epochs,
        verbose=FLAGS.verbose,
    )
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    probs, _ = model.predict_distribution(
        x_test, num_samples=FLAGS.mnist_num_samples, batch_size=500
    )
    eval_seconds = time.perf_counter() - start
    eps = 1e-12
    result = {
        "test_accuracy": float(np.mean(probs.argmax(-1) == y_test)),
        "test_nll": float(
            -np.mean(np.log(probs[np.arange(len(y_test)), y_test] + eps))
        ),
        "mean_predictive_entropy": float(
            -np.mean(np.sum(probs * np.log(probs + eps), axis=-1))
        ),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
    }
    result.update(last_logged(history))
    result.update(posterior_spread(model))
    return result


# ------------------------------------------------------------------- main
def toy_table(results):
    lines = [
        f"{'form':<12} {'seed':>4} {'std in':>7} {'std out':>8} {'RMSE':>6} "
        f"{'kl':>8} {'d acc':>6} {'spread':>7} {'mean|w|':>8} {'train s':>8}"
    ]
    for form, runs in results.items():
        for r in runs:
            lines.append(
                f"{form:<12} {r['seed']:>4} {r['std_inside']:>7.3f} "
                f"{r['std_outside']:>8.3f} {r['train_rmse']:>6.2f} "
                f"{r['kl']:>8.1f} {r['discriminator_accuracy']:>6.3f} "
                f"{r['spread_std']:>7.4f} {r['mean_abs_value']:>8.4f} "
                f"{r['train_seconds']:>8.1f}"
            )
    return "\n".join(lines)


def mnist_table(results):
    lines = [
        f"{'form':<12} {'test acc':>8} {'test NLL':>8} {'entropy':>8} "
        f"{'kl':>9} {'d acc':>6} {'spread':>7} {'mean|g|':>8} {'train s':>8}"
    ]
    for form, r in results.items():
        lines.append(
            f"{form:<12} {r['test_accuracy']:>8.4f} {r['test_nll']:>8.4f} "
            f"{r['mean_predictive_entropy']:>8.4f} {r['kl']:>9.1f} "
            f"{r['discriminator_accuracy']:>6.3f} {r['spread_std']:>7.4f} "
            f"{r['mean_abs_value']:>8.4f} {r['train_seconds']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv):
    del argv
    for form in FLAGS.forms:
        if form not in FORMS:
            raise app.UsageError(f"--forms: unknown form {form!r}; use {list(FORMS)}.")
    for problem in FLAGS.problems:
        if problem not in ("toy", "mnist"):
            raise app.UsageError(f"--problems: unknown problem {problem!r}.")

    flag_values = {
        name: FLAGS[name].value
        for name in (
            "problems",
            "forms",
            "discriminator_steps",
            "discriminator_learning_rate",
            "num_weight_samples",
            "toy_seeds",
            "toy_steps",
            "toy_learning_rate",
            "toy_num_samples",
            "mnist_epochs",
            "mnist_seed",
            "mnist_learning_rate",
            "mnist_batch_size",
            "mnist_num_samples",
            "mnist_train_examples",
        )
    }
    output = {
        "flags": flag_values,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "bbh_tf": bbh_tf.__version__,
        },
    }

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w") as f:
            json.dump(output, f, indent=2)

    if "mnist" in FLAGS.problems and FLAGS.mnist_epochs > 0 and not FLAGS.data_dir:
        print(
            "Note: no --data_dir / $BBH_MNIST_DIR: MNIST will be fetched with "
            "tensorflow-datasets (offline, that retries for minutes, then fails).",
            flush=True,
        )

    if "toy" in FLAGS.problems:
        output["toy"] = {}
        for form in FLAGS.forms:
            output["toy"][form] = []
            for seed in FLAGS.toy_seeds:
                print(f"== toy, {form}, seed {seed}", flush=True)
                output["toy"][form].append(run_toy(FORMS[form], int(seed)))
                save()
        print("\nToy regression\n" + toy_table(output["toy"]), flush=True)

    if "mnist" in FLAGS.problems and FLAGS.mnist_epochs > 0:
        data = load_mnist()
        output["mnist"] = {}
        for form in FLAGS.forms:
            print(f"== mnist, {form}", flush=True)
            output["mnist"][form] = run_mnist(FORMS[form], data)
            save()
        print("\nMNIST\n" + mnist_table(output["mnist"]), flush=True)

    save()
    if "toy" in output:
        print("\nToy regression\n" + toy_table(output["toy"]))
    print(f"\nWrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
