"""Milliseconds for the scale-mixture prior's log density and its gradient.

Bayes by Backprop's Monte Carlo KL evaluates ``ScaleMixturePrior.log_prob``
at a weight sample of every kernel entry, forward and backward, at every
step (1.28 million entries for the MNIST MLP at W = 800).
``ScaleMixturePrior.log_prob`` writes its gradient out; this times it
against automatic differentiation of the same closed form, interleaved.

Run::

    python benchmarks/prior_log_prob.py
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 784 * 800 + 800 * 800, "Weights evaluated.")
flags.DEFINE_integer("calls", 30, "Timed calls per round.")
flags.DEFINE_integer("rounds", 7, "Interleaved rounds; min and median reported.")


def autodiff_log_prob(prior, weights):
    """The same closed form as ``prior.log_prob``, differentiated by autodiff."""
    return prior._log_sum(tf.square(weights))[0]


def main(argv):
    del argv
    prior = bbh_tf.ScaleMixturePrior()
    weights = tf.Variable(tf.random.normal((FLAGS.size,), stddev=0.03, seed=0))
    variants = {
        "written_out": prior.log_prob,
        "autodiff": lambda w: autodiff_log_prob(prior, w),
    }
    steps = {}
    for name, log_prob in variants.items():

        def step(log_prob=log_prob):
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(log_prob(weights))
            return tape.gradient(value, weights)

        steps[name] = tf.function(step)
        steps[name]()  # trace
    times = {name: [] for name in steps}
    for _ in range(FLAGS.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(FLAGS.calls):
                step()
            times[name].append((time.perf_counter() - start) / FLAGS.calls * 1e3)
    print(f"value and gradient over {FLAGS.size} weights, ms: min, median")
    for name, values in times.items():
        print(f"{name:12s} {min(values):7.2f} {statistics.median(values):7.2f}")


if __name__ == "__main__":
    app.run(main)
