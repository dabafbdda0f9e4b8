"""Seconds per MNIST epoch of each method, measured side by side.

The 784-800-800-10 MLP of ``examples/mnist_mlp.py`` (its builders and flags
are reused), batch 128, on the MNIST training digits. The methods' epochs are
interleaved (one epoch of each method per round), so slow drifts of a shared
machine hit them alike; the first round (tracing) is dropped and the median
of the rest reported, with its ratio to maximum likelihood.

``bbh`` is Bayes by Hypernet as ``examples/mnist_mlp.py`` trains it (by
default the package defaults: the semi-implicit posterior and KL bound, the
hypernetwork's noise shared by all scales). Two earlier configurations run
beside it for comparison: ``bbh_paper``, the package defaults before the
semi-implicit posterior (weight-norm layers, the paper's deterministic
``HyperNetwork`` learning at the optimizer's rate, one update of a
per-position discriminator per step, Adam 1e-3 for both optimizers), and ``bbh_per_value``, the MNIST
example's earlier default (the same generator with independent noise for
every scale, ``HyperNetwork(output_dim=1, noise_per_chunk=True)``, and 5
discriminator updates per step at Adam 1e-2).

Run::

    python benchmarks/epoch_time.py --data_dir=../shared/data/mnist \
        --methods=ml,bbh,bbh_paper,bbh_per_value,mc_dropout --rounds=6
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
)

import keras  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
import shared_flags  # noqa: E402
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "methods",
    ["ml", "bbh", "bbh_paper"],
    "Methods: mnist_mlp's, bbh_paper or bbh_per_value.",
)
flags.DEFINE_integer("rounds", 4, "Epochs per method; the first is dropped.")
flags.DEFINE_string("output", "", "Optional JSON path for the results.")


def build_earlier_bbh(num_examples, per_value=False):
    """Bayes by Hypernet as configured before the semi-implicit posterior:
    the package defaults then (``bbh_paper``), or with ``per_value`` the
    MNIST example's default then (``bbh_per_value``)."""
    hypernet = bbh_tf.HyperNetwork(
        semi_implicit=False,
        learning_rate_scale=1.0,
        **({"output_dim": 1, "noise_per_chunk": True} if per_value else {}),
    )
    network = mnist_mlp.mlp(
        mnist_mlp.Layers("bbh", hypernet=hypernet, mode="weight_norm")
    )
    model = bbh_tf.BayesByHypernet(
        network,
        num_examples=num_examples,
        kl_estimator=bbh_tf.kl.AdversarialKL(steps=5 if per_value else 1),
    )
    model.compile(
        optimizer="adam",
        discriminator_optimizer=keras.optimizers.Adam(1e-2 if per_value else 1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=FLAGS.jit_compile,
    )
    return model


def main(argv):
    del argv
    builders = dict(
        mnist_mlp.BUILDERS,
        bbh_paper=build_earlier_bbh,
        bbh_per_value=lambda n: build_earlier_bbh(n, per_value=True),
    )
    unknown = [name for name in FLAGS.methods if name not in builders]
    if unknown:
        raise app.UsageError(
            f"--methods must name methods of {sorted(builders)}, got {unknown}."
        )
    keras.utils.set_random_seed(FLAGS.seed)
    x, y = bbh_tf.data.load_mnist("train", data_dir=FLAGS.data_dir, flatten=True)
    if FLAGS.train_size:
        x, y = x[: FLAGS.train_size], y[: FLAGS.train_size]
    models = {name: builders[name](len(x)) for name in FLAGS.methods}
    seconds = {name: [] for name in models}
    for round_index in range(FLAGS.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - start)
            print(f"round {round_index} {name}: {seconds[name][-1]:.1f} s", flush=True)
    reference = statistics.median(seconds["ml"][1:]) if "ml" in seconds else None
    results = {}
    width = max(len(name) for name in seconds)
    print(f"\n{'method':<{width}} {'median s/epoch':>15} {'ratio to ml':>12}")
    for name, values in seconds.items():
        median = statistics.median(values[1:])
        ratio = median / reference if reference else None
        results[name] = {
            "seconds": values,
            "median_after_first": median,
            "ratio_to_ml": ratio,
        }
        print(
            f"{name:<{width}} {median:>15.2f} {ratio if ratio else float('nan'):>12.2f}"
        )
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(
                {
                    "examples": len(x),
                    "batch_size": FLAGS.batch_size,
                    "jit_compile": FLAGS.jit_compile,
                    # What the example's `bbh` reads.
                    "flags": mnist_mlp.flag_values(),
                    "results": results,
                    "environment": shared_flags.environment(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    app.run(main)
