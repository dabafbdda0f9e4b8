"""Flags that the toy and MNIST examples share: the prior, Adam's epsilon and
how the discriminator is warmed up and clipped.

Defined once here so that both scripts (and the flagfiles that reproduce the
authors' notebooks) spell and check them the same way.
"""

from absl import app, flags
import keras
import numpy as np

import bbh_tf

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "prior",
    [],
    "Prior of Bayes by Hypernet's and Bayes by Backprop's weights, a scale "
    "mixture given as pi,sigma1,sigma2 (pi * N(0, sigma1^2) + (1 - pi) * "
    "N(0, sigma2^2)); empty: the package default ScaleMixturePrior().",
)
flags.DEFINE_float("adam_epsilon", 1e-7, "Epsilon of every Adam optimizer.")
flags.DEFINE_integer(
    "discriminator_warmup_steps",
    0,
    "Bayes by Hypernet: discriminator updates before the first model update.",
)
flags.DEFINE_float(
    "discriminator_clipvalue",
    None,
    "Bayes by Hypernet: clip each discriminator gradient to +-this; unset: no "
    "clipping.",
)

NAMES = ("prior", "adam_epsilon", "discriminator_warmup_steps",
         "discriminator_clipvalue")


def prior():
    """The ``--prior``, or None for the package default."""
    return bbh_tf.ScaleMixturePrior(*prior_values()) if FLAGS.prior else None


def prior_values():
    """``--prior`` as floats."""
    return [float(value) for value in FLAGS.prior]


def adam(learning_rate, **kwargs):
    """Adam with ``--adam_epsilon``."""
    return keras.optimizers.Adam(learning_rate, epsilon=FLAGS.adam_epsilon, **kwargs)


def discriminator_adam(learning_rate):
    """Adam for the discriminator, clipped to ``--discriminator_clipvalue``."""
    return adam(learning_rate, clipvalue=FLAGS.discriminator_clipvalue)


def values():
    """The shared flags for a results JSON (``--prior`` as floats)."""
    return {name: FLAGS[name].value for name in NAMES} | {"prior": prior_values()}


def check(positive=None):
    """Usage errors naming the flag, before any training: the shared flags,
    and each of ``positive`` (flag name -> value) must be finite and > 0."""
    positive = dict(positive or {}, adam_epsilon=FLAGS.adam_epsilon)
    if FLAGS.discriminator_clipvalue is not None:
        positive["discriminator_clipvalue"] = FLAGS.discriminator_clipvalue
    for name, value in positive.items():
        if not (np.isfinite(value) and value > 0):
            raise app.UsageError(f"--{name} must be a finite number > 0, got {value}.")
    if FLAGS.discriminator_warmup_steps < 0:
        raise app.UsageError("--discriminator_warmup_steps must be >= 0.")
    if FLAGS.prior:
        try:
            if len(FLAGS.prior) != 3:
                raise ValueError(f"{len(FLAGS.prior)} values")
            bbh_tf.ScaleMixturePrior(*prior_values())
        except (TypeError, ValueError) as error:
            raise app.UsageError(
                "--prior must be pi,sigma1,sigma2 with 0 < pi < 1 and sigmas "
                f"> 0, got {','.join(FLAGS.prior)!r} ({error})."
            ) from None
