"""Seconds per MNIST epoch of each method, measured side by side.

The 784-800-800-10 MLP of ``examples/mnist_mlp.py`` (its builders and flags
are reused), batch 128, on the MNIST training digits. The methods' epochs are
interleaved (one epoch of each method per round), so slow drifts of a shared
machine hit them alike; the first round (tracing) is dropped and the median
of the rest reported, with its ratio to maximum likelihood.

``bbh_default`` is Bayes by Hypernet with the package defaults (the paper's
``HyperNetwork()`` with one noise draw shared by all scales, one discriminator
update per step, Adam 1e-3 for both optimizers) and
``bbh_default_one_draw`` the same with one weight draw per step
(``num_weight_samples=1``: the whole batch meets one draw, the KL term is
scored on one draw); ``bbh`` uses the example's flags (by default
independent noise for every scale and 5 discriminator updates at 1e-2);
``bbh_shared_noise`` is ``bbh`` with the paper's shared noise
(``HyperNetwork()``).

Run::

    python benchmarks/epoch_time.py --data_dir=../shared/data/mnist \
        --methods=ml,bbh_default,bbh_shared_noise,bbh,mc_dropout --rounds=4
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from absl import app, flags  # noqa: E402
import keras  # noqa: E402

import bbh_tf  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
import shared_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "methods", ["ml", "bbh_default", "bbh"],
    "Methods: mnist_mlp's, bbh_default, bbh_default_one_draw or bbh_shared_noise.",
)
flags.DEFINE_integer("rounds", 4, "Epochs per method; the first is dropped.")
flags.DEFINE_string("output", "", "Optional JSON path for the results.")


def build_bbh_default(num_examples, **arguments):
    """Bayes by Hypernet as the package's defaults configure it, but for
    ``arguments`` of ``BayesByHypernet``."""
    network = mnist_mlp.mlp(mnist_mlp.Layers("bbh", hypernet=bbh_tf.HyperNetwork()))
    model = bbh_tf.BayesByHypernet(network, num_examples=num_examples, **arguments)
    model.compile(
        optimizer="adam",
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=FLAGS.jit_compile,
    )
    return model


def build_bbh_default_one_draw(num_examples):
    """``bbh_default`` with one weight draw per training step."""
    return build_bbh_default(num_examples, num_weight_samples=1)


def build_bbh_shared_noise(num_examples):
    """The example's Bayes by Hypernet with the paper's shared noise."""
    builders = mnist_mlp.builders(mnist_mlp.mlp, hypernetwork=bbh_tf.HyperNetwork)
    return builders["bbh"](num_examples)


def main(argv):
    del argv
    builders = dict(
        mnist_mlp.BUILDERS, bbh_default=build_bbh_default,
        bbh_default_one_draw=build_bbh_default_one_draw,
        bbh_shared_noise=build_bbh_shared_noise,
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
        results[name] = {"seconds": values, "median_after_first": median, "ratio_to_ml": ratio}
        print(f"{name:<{width}} {median:>15.2f} {ratio if ratio else float('nan'):>12.2f}")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"examples": len(x), "batch_size": FLAGS.batch_size,
                       "jit_compile": FLAGS.jit_compile,
                       # What the example's `bbh` and `bbh_shared_noise` read.
                       "flags": mnist_mlp.flag_values(),
                       "results": results,
                       "environment": shared_flags.environment()}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
