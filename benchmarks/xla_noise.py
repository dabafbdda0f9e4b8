"""Milliseconds to draw Gaussian noise, with and without XLA, on this machine.

Why it matters: with ``jit_compile=True`` a training step is compiled whole
by XLA, noise included. ``keras.random.normal`` asks TensorFlow for its
default algorithm ("auto_select"), which XLA on CPU turns into a far slower
generator than TensorFlow's own Philox kernel; ``bbh_tf`` names Philox
(``bbh_tf/_random.py``). The shape is the noise of one training step's
hypernetwork pass with independent noise for every scale of the MNIST MLP:
5 draws x 1610 scales x 64 noise values.

Run::

    python benchmarks/xla_noise.py --output=docs/runs/xla_noise.json
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import shared_flags  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from bbh_tf import _random  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("shape", ["5", "1610", "64"], "Shape of the noise tensor.")
flags.DEFINE_integer("calls", 30, "Timed calls per round.")
flags.DEFINE_integer(
    "rounds", 5, "Interleaved rounds; the minimum and median are reported."
)
flags.DEFINE_string("output", "", "Optional JSON path for the results.")


def samplers(shape):
    """Name -> function drawing one noise tensor (summed, so only the sum
    leaves the compiled function)."""
    keras_seeds, philox_seeds = (
        keras.random.SeedGenerator(0),
        keras.random.SeedGenerator(0),
    )
    return {
        "keras.random.normal": lambda: tf.reduce_sum(
            keras.random.normal(shape, seed=keras_seeds)
        ),
        "bbh_tf (Philox named)": lambda: tf.reduce_sum(
            _random.normal(shape, philox_seeds)
        ),
    }


def main(argv):
    del argv
    try:
        shape = tuple(int(size) for size in FLAGS.shape)
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise app.UsageError(
            f"--shape must be positive integers separated by commas, got {FLAGS.shape}."
        )
    functions = {}
    for name, draw in samplers(shape).items():
        for jit in (False, True):
            function = tf.function(draw, jit_compile=jit)
            function().numpy()  # trace and compile
            functions[f"{name}, jit_compile={jit}"] = function
    milliseconds = {name: [] for name in functions}
    for _ in range(FLAGS.rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(FLAGS.calls):
                function().numpy()
            milliseconds[name].append(
                (time.perf_counter() - start) / FLAGS.calls * 1000
            )
    results = {
        name: {
            "min_ms": min(values),
            "median_ms": statistics.median(values),
            "ms": values,
        }
        for name, values in milliseconds.items()
    }
    width = max(len(name) for name in results)
    print(f"noise of shape {shape}\n{'sampler':<{width}} {'min ms':>8} {'median':>8}")
    for name, result in results.items():
        print(f"{name:<{width}} {result['min_ms']:>8.2f} {result['median_ms']:>8.2f}")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(
                {
                    "shape": shape,
                    "results": results,
                    "environment": shared_flags.environment(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    app.run(main)
