"""Evaluate saved models of any example: calibration, shift, OOD, FGSM.

Reads ``<model_dir>/<method>.keras`` for every method present (written by
``examples/mnist_mlp.py`` or ``examples/lenet5.py``) and measures, with
``--num_samples`` posterior draws per input (``bbh_tf.metrics``):

* in-distribution (the test set): accuracy, NLL, Brier score, ECE (15 bins),
  and a reliability diagram;
* shift: the first ``--shift_images`` test images rotated 0-180 degrees in
  15-degree steps: accuracy, NLL, ECE and mean predictive entropy per angle;
* out-of-distribution, AUROC with the predictive entropy and with the mutual
  information as the score: (a) split MNIST, models of ``--split_model_dir``
  (trained with ``--classes=0,1,2,3,4``) on test digits 0-4 against 5-9;
  (b) ``--ood_images`` uniform-noise images and (c) the test digits inverted
  (``1 - x``), both against the test set;
* adversarial: FGSM with eps 0, 0.05, ..., 0.4 on the first
  ``--adversarial_images`` test images (clipped to [0, 1]); the gradient is
  that of the NLL of the prediction averaged over ``--gradient_samples``
  draws (one pass for maximum likelihood): accuracy and mean entropy per eps.

Writes ``<output_dir>/<name>_evaluation.json`` and the PNGs
``<name>_reliability.png``, ``<name>_shift.png``, ``<name>_adversarial.png``.
Run::

    python examples/evaluate.py --model_dir=runs/mnist_mlp --name=mlp \\
        --split_model_dir=runs/mlp_0to4 --data_dir=../shared/data/mnist
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from method_names import TITLES  # noqa: E402

import bbh_tf  # noqa: E402
from bbh_tf import metrics  # noqa: E402

METHODS = ("bbh", "ml", "mc_dropout", "bbb", "deep_ensemble")
ANGLES = tuple(range(0, 181, 15))
EPSILONS = tuple(np.round(np.arange(0, 0.401, 0.05), 2))
SPLIT_CLASSES = (0, 1, 2, 3, 4)
# The flags that count images or draws (each must be >= 1).
COUNT_FLAGS = (
    "num_samples",
    "test_images",
    "shift_images",
    "ood_images",
    "adversarial_images",
    "gradient_samples",
)

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/mnist_mlp", "Folder of <method>.keras models.")
flags.DEFINE_string(
    "split_model_dir", "", "Folder of models trained on digits 0-4; empty: skip (a)."
)
flags.DEFINE_string("name", "mlp", "Prefix of the output files.")
flags.DEFINE_string("output_dir", "docs/figures", "Where the JSON and PNGs go.")
flags.DEFINE_string(
    "data_dir", None, "MNIST IDX folder; default $BBH_MNIST_DIR, else tfds."
)
flags.DEFINE_integer("num_samples", 50, "Posterior draws per input.")
flags.DEFINE_integer(
    "test_images", 10000, "Test images for the in-distribution and OOD parts."
)
flags.DEFINE_integer("shift_images", 1000, "Test images rotated per angle.")
flags.DEFINE_integer("ood_images", 1000, "Uniform-noise images.")
flags.DEFINE_integer("adversarial_images", 1000, "Test images attacked by FGSM.")
flags.DEFINE_integer("gradient_samples", 10, "Draws averaged for the FGSM gradient.")
flags.DEFINE_integer(
    "seed",
    0,
    "Seed of the draws and the noise images.",
    lower_bound=0,
    upper_bound=2**32 - 1,
)


def load_models(model_dir):
    models = {}
    for method in METHODS:
        path = os.path.join(model_dir, f"{method}.keras")
        if os.path.exists(path):
            models[method] = keras.models.load_model(path)
    if not models:
        raise app.UsageError(f"No <method>.keras model in {model_dir!r}.")
    return models


def shaped(model, images):
    """``images`` ``(n, 28, 28)`` in the input shape the model was built for."""
    return images.reshape((-1,) + tuple(model.input_shape_[1:])).astype("float32")


def draws(model, images):
    """Per-draw class probabilities ``(S, n, 10)`` (one draw for ML)."""
    if isinstance(model, bbh_tf.MaximumLikelihood):
        num = 1
    elif isinstance(model, bbh_tf.DeepEnsemble):
        num = model.num_members  # draw d is member d mod num_members
    else:
        num = FLAGS.num_samples
    return model.predict_samples(shaped(model, images), num_samples=num, batch_size=250)


def scores(samples, labels=None):
    """Metrics of per-draw probabilities; the label-free ones without labels."""
    mean = samples.mean(axis=0)
    mean = mean / mean.sum(axis=1, keepdims=True)  # float32 round-off
    entropy = metrics.predictive_entropy(mean)
    result = {
        "entropy": entropy,
        "mutual_information": metrics.mutual_information(samples),
    }
    if labels is not None:
        result.update(
            accuracy=metrics.accuracy(mean, labels),
            nll=metrics.negative_log_likelihood(mean, labels),
            brier=metrics.brier_score(mean, labels),
            ece=metrics.expected_calibration_error(mean, labels),
            bins=metrics.calibration_bins(mean, labels),
        )
    return result


def auroc_pair(inside, outside):
    return {
        score: metrics.ood_auroc(inside[score], outside[score])
        for score in ("entropy", "mutual_information")
    }


def fgsm_direction(model, images, labels):
    """Sign of the input gradient of the NLL of the draw-averaged prediction."""
    deterministic = isinstance(model, bbh_tf.MaximumLikelihood)
    signs = []
    for start in range(0, len(images), 100):
        x = tf.constant(shaped(model, images[start : start + 100]))
        y = tf.constant(labels[start : start + 100])
        with tf.GradientTape() as tape:
            tape.watch(x)
            if deterministic:
                probs = model(x, training=False)
            else:
                probs = tf.reduce_mean(
                    model.sample_predictions(x, FLAGS.gradient_samples), axis=0
                )
            picked = tf.gather(probs, y, batch_dims=1)
            loss = -tf.reduce_sum(tf.math.log(picked + 1e-12))
        signs.append(tf.sign(tape.gradient(loss, x)).numpy())
    return np.concatenate(signs).reshape(images.shape)


def evaluate_method(model, test, split_model=None):
    x, y = test
    result = {}
    start = time.perf_counter()
    clean = scores(draws(model, x), y)
    result["in_distribution"] = {
        k: clean[k] for k in ("accuracy", "nll", "brier", "ece")
    }
    result["in_distribution"]["mean_entropy"] = float(clean["entropy"].mean())
    result["reliability"] = {
        k: np.nan_to_num(v, nan=-1).tolist() for k, v in clean["bins"].items()
    }

    shift = {
        "angle": list(ANGLES),
        "accuracy": [],
        "nll": [],
        "ece": [],
        "mean_entropy": [],
    }
    xs, ys = x[: FLAGS.shift_images], y[: FLAGS.shift_images]
    for angle in ANGLES:
        rotated = scores(draws(model, bbh_tf.data.rotate_images(xs, angle)), ys)
        for key in ("accuracy", "nll", "ece"):
            shift[key].append(rotated[key])
        shift["mean_entropy"].append(float(rotated["entropy"].mean()))
    result["shift"] = shift

    rng = np.random.default_rng(FLAGS.seed)
    noise = rng.uniform(size=(FLAGS.ood_images, 28, 28)).astype("float32")
    ood = {
        "uniform_noise": auroc_pair(clean, scores(draws(model, noise))),
        "inverted": auroc_pair(clean, scores(draws(model, 1.0 - x))),
    }
    if split_model is not None:
        known = np.isin(y, SPLIT_CLASSES)
        ood["split_mnist"] = auroc_pair(
            scores(draws(split_model, x[known])), scores(draws(split_model, x[~known]))
        )
    result["ood_auroc"] = ood

    xa, ya = x[: FLAGS.adversarial_images], y[: FLAGS.adversarial_images]
    direction = fgsm_direction(model, xa, ya)
    adversarial = {
        "epsilon": [float(e) for e in EPSILONS],
        "accuracy": [],
        "mean_entropy": [],
    }
    for epsilon in EPSILONS:
        attacked = scores(draws(model, np.clip(xa + epsilon * direction, 0, 1)), ya)
        adversarial["accuracy"].append(attacked["accuracy"])
        adversarial["mean_entropy"].append(float(attacked["entropy"].mean()))
    result["adversarial"] = adversarial
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def plot_all(results, prefix):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False
    )
    for ax, name in zip(axes[0], names):
        bins = results[name]["reliability"]
        centres = (np.array(bins["edges"][:-1]) + np.array(bins["edges"][1:])) / 2
        accuracy = np.array(bins["accuracy"], dtype=float)
        filled = np.array(bins["count"]) > 0
        ax.bar(
            centres[filled],
            accuracy[filled],
            width=1 / len(centres),
            edgecolor="k",
            alpha=0.7,
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ece = results[name]["in_distribution"]["ece"]
        ax.set_title(f"{TITLES.get(name, name)}\nECE {ece:.4f}", fontsize=9)
        ax.set_xlabel("confidence")
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(prefix + "_reliability.png", dpi=120)
    plt.close(fig)

    _plot_curves(
        plt,
        results,
        "shift",
        "angle",
        ("accuracy", "nll", "ece", "mean_entropy"),
        "rotation (degrees)",
        prefix + "_shift.png",
    )
    _plot_curves(
        plt,
        results,
        "adversarial",
        "epsilon",
        ("accuracy", "mean_entropy"),
        "FGSM epsilon",
        prefix + "_adversarial.png",
    )


def _plot_curves(plt, results, part, x_key, keys, xlabel, path):
    """One panel per measure in ``keys`` of ``results[method][part]``
    against ``x_key``, one line per method."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.75 * len(keys), 3.4))
    for ax, key in zip(axes, keys):
        for name, result in results.items():
            curve = result[part]
            ax.plot(curve[x_key], curve[key], "o-", ms=3, label=TITLES.get(name, name))
        ax.set_xlabel(xlabel)
        ax.set_title(key.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    for name in COUNT_FLAGS:
        if FLAGS[name].value < 1:
            raise app.UsageError(f"--{name} must be >= 1.")
    keras.utils.set_random_seed(FLAGS.seed)
    x, y = bbh_tf.data.load_mnist("test", data_dir=FLAGS.data_dir)
    test = (x[: FLAGS.test_images, :, :, 0], y[: FLAGS.test_images])
    models = load_models(FLAGS.model_dir)
    split_models = load_models(FLAGS.split_model_dir) if FLAGS.split_model_dir else {}
    results = {}
    for method, model in models.items():
        print(f"== {method}", flush=True)
        results[method] = evaluate_method(model, test, split_models.get(method))
        summary = results[method]["in_distribution"]
        print(
            f"{method}: accuracy {summary['accuracy']:.4f} NLL {summary['nll']:.4f} "
            f"ECE {summary['ece']:.4f}; OOD AUROC {results[method]['ood_auroc']}; "
            f"{results[method]['seconds']} s",
            flush=True,
        )
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    prefix = os.path.join(FLAGS.output_dir, FLAGS.name)
    record = {
        "flags": {
            name: FLAGS[name].value
            for name in ("model_dir", "split_model_dir", *COUNT_FLAGS, "seed")
        },
        "results": results,
    }
    with open(prefix + "_evaluation.json", "w") as f:
        json.dump(record, f, indent=1)
    plot_all(results, prefix)
    print(f"Wrote {prefix}_evaluation.json and three PNGs")


if __name__ == "__main__":
    app.run(main)
