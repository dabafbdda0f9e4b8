"""Class probabilities of a rotated test digit (the paper's Figure 2).

Takes one MNIST test "3", rotates it from 0 to 180 degrees and, for every
model that ``examples/mnist_mlp.py`` saved, plots the mean of each class
probability over posterior draws with one-standard-deviation error bars
against the angle: one panel per method, the rotated digits on top. A model
that knows what it does not know should spread its probability, or at least
vary it across draws, once the digit no longer looks like a 3; maximum
likelihood has no draws and shows no error bars.

Run after the MNIST example::

    python examples/mnist_mlp.py --data_dir=../shared/data/mnist
    python examples/rotated_digit.py --data_dir=../shared/data/mnist
    python examples/rotated_digit.py --methods=bbh,mc_dropout --index=32

Besides the PNG, a JSON with the same name holds the angles and, per method,
the mean and std of every class probability at every angle, and two
summaries: the entropy of the mean prediction and the largest class std,
each averaged over the angles.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from method_names import TITLES  # noqa: E402

import bbh_tf  # noqa: E402  (registers the classes the saved models use)

DIGIT = 3

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/mnist_mlp", "Where mnist_mlp.py saved models.")
flags.DEFINE_list(
    "methods", list(TITLES), "Methods to plot; a missing model is skipped."
)
flags.DEFINE_string(
    "data_dir", None, "Folder with the MNIST IDX .gz files; default $BBH_MNIST_DIR."
)
flags.DEFINE_integer(
    "index", None, "Test-set index of the digit; default: the first test 3."
)
flags.DEFINE_integer("num_angles", 19, "Angles from 0 to 180 degrees, inclusive.")
flags.DEFINE_integer("num_samples", 100, "Posterior draws per rotated image.")
flags.DEFINE_string("output", "docs/rotated_digit.png", "Where to write the plot.")


def plot(path, angles, images, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    step = angles[1] - angles[0] if len(angles) > 1 else 10.0
    fig, axes = plt.subplots(
        1 + len(names),
        1,
        figsize=(10, 1.2 + 2.6 * len(names)),
        sharex=True,
        gridspec_kw={"height_ratios": [0.45] + [1] * len(names)},
        squeeze=False,
    )
    axes = axes[:, 0]
    # The thumbnails side by side, each centred on its angle.
    axes[0].imshow(
        np.concatenate(images, axis=1),
        cmap="gray_r",
        extent=(angles[0] - step / 2, angles[-1] + step / 2, 0, 1),
        aspect="auto",
    )
    axes[0].set_yticks([])
    for ax, name in zip(axes[1:], names):
        mean, std = results[name]
        for k in range(mean.shape[1]):
            ax.errorbar(
                angles,
                mean[:, k],
                yerr=std[:, k],
                fmt="o-",
                ms=3,
                lw=1,
                capsize=2,
                color=f"C{k}",
                label=str(k),
            )
        ax.set_title(TITLES.get(name, name), fontsize=10)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("probability")
    axes[1].legend(
        title="class",
        ncol=2,
        fontsize=7,
        title_fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )
    axes[-1].set_xlabel("rotation (degrees)")
    axes[-1].set_xlim(angles[0] - step / 2, angles[-1] + step / 2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(mean, std):
    """Two numbers per method for comparing panels: the entropy of the mean
    prediction and the largest class std over draws, each averaged over the
    angles."""
    return {
        "mean_entropy": float(np.mean(bbh_tf.metrics.predictive_entropy(mean))),
        "mean_largest_std": float(np.mean(np.max(std, axis=1))),
    }


def main(argv):
    del argv
    if FLAGS.num_angles < 2 or FLAGS.num_samples < 1:
        raise app.UsageError("--num_angles must be >= 2 and --num_samples >= 1.")
    x_test, y_test = bbh_tf.data.load_mnist("test", data_dir=FLAGS.data_dir)
    index = FLAGS.index
    if index is None:
        index = int(np.flatnonzero(y_test == DIGIT)[0])
    print(f"Test digit {index}, labelled {y_test[index]}")

    angles = np.linspace(0.0, 180.0, FLAGS.num_angles)
    images = [bbh_tf.data.rotate_images(x_test[index, :, :, 0], a) for a in angles]
    batch = np.stack(images).reshape(len(angles), -1)

    results, summaries = {}, {}
    for name in FLAGS.methods:
        path = os.path.join(FLAGS.model_dir, f"{name}.keras")
        if not os.path.exists(path):
            logging.warning("No model at %s: skipping %s.", path, name)
            continue
        # Only predictions are needed: skip restoring the optimizers.
        model = keras.models.load_model(path, compile=False)
        results[name] = model.predict_distribution(batch, num_samples=FLAGS.num_samples)
        mean = results[name][0]
        summaries[name] = summary(*results[name])
        print(f"{name}: P({DIGIT}) by angle", np.round(mean[:, DIGIT], 2))
        print(
            f"{name}: "
            + ", ".join(f"{key} {value:.3f}" for key, value in summaries[name].items())
        )
    if not results:
        raise app.UsageError(
            f"No saved models of {FLAGS.methods} in {FLAGS.model_dir}."
        )

    plot(FLAGS.output, angles, images, results)
    json_path = os.path.splitext(FLAGS.output)[0] + ".json"
    with open(json_path, "w") as f:
        json.dump(
            {
                "index": index,
                "num_samples": FLAGS.num_samples,
                "angles": angles.tolist(),
                "methods": {
                    name: {"mean": mean.tolist(), "std": std.tolist()} | summaries[name]
                    for name, (mean, std) in results.items()
                },
            },
            f,
        )
    print(f"Wrote {FLAGS.output} and {json_path}")


if __name__ == "__main__":
    app.run(main)
