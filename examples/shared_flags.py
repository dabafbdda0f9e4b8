"""What the toy and MNIST examples share: flags for the prior, Adam's
epsilon, how the discriminator is warmed up and clipped and how the
hypernetwork draws its noise; and the record of the machine and library
versions that their results JSONs carry.

Defined once here so that both scripts (and the flagfiles that reproduce the
authors' notebooks) spell and check them the same way.
"""

import os
import platform

from absl import app, flags
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

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

flags.DEFINE_bool(
    "noise_per_chunk",
    False,
    "Bayes by Hypernet: fresh hypernetwork noise for every chunk of values "
    "(HyperNetwork(noise_per_chunk=True)) instead of one noise draw shared by "
    "all of them (the paper's). With --hypernet_output_dim=1 every generated "
    "value is independent.",
)
flags.DEFINE_integer(
    "hypernet_output_dim", 256, "Bayes by Hypernet: values generated per chunk."
)

NAMES = ("prior", "adam_epsilon", "discriminator_warmup_steps",
         "discriminator_clipvalue", "noise_per_chunk", "hypernet_output_dim")


def prior():
    """The ``--prior``, or None for the package default."""
    return bbh_tf.ScaleMixturePrior(*prior_values()) if FLAGS.prior else None


def hypernetwork():
    """A ``HyperNetwork`` as ``--hypernet_output_dim`` and
    ``--noise_per_chunk`` say (the paper's sizes otherwise)."""
    return bbh_tf.HyperNetwork(
        output_dim=FLAGS.hypernet_output_dim, noise_per_chunk=FLAGS.noise_per_chunk
    )


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


def environment():
    """The machine and the library versions a result was measured with.

    Kept in every results JSON: the same command and seed can give another
    Bayes by Hypernet toy posterior on another processor (rounding differences
    grow during training; docs/results.md section 1).
    """
    return {
        "processor": processor_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_probability": tfp.__version__,
        "numpy": np.__version__,
        "bbh_tf": bbh_tf.__version__,
        "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")],
    }


def processor_name():
    """The CPU model: ``/proc/cpuinfo``'s model name on Linux, where
    ``platform.processor()`` is usually empty or just the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check(positive=None):
    """Usage errors naming the flag, before any training: the shared flags,
    and each of ``positive`` (flag name -> value) must be finite and > 0."""
    positive = dict(
        positive or {}, adam_epsilon=FLAGS.adam_epsilon,
        hypernet_output_dim=FLAGS.hypernet_output_dim,
    )
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
