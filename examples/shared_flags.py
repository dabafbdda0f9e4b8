"""What the toy and MNIST examples share: flags for the prior, Adam's
epsilon, Bayes by Hypernet's posterior (semi-implicit or the paper's
deterministic generator, how the hypernetwork draws its noise) and its KL
estimator (with the discriminator's settings for the adversarial one); and
the record of the machine and library versions that their results JSONs
carry.

Defined once here so that both scripts (and the flagfiles that reproduce the
authors' notebooks) spell and check them the same way.
"""

import json
import os
import platform

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl import app, flags

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
flags.DEFINE_enum(
    "kl_estimator",
    "semi_implicit",
    ["semi_implicit", "nearest_neighbour", "adversarial", "adversarial_joint"],
    "Bayes by Hypernet's KL estimator (bbh_tf.kl): the semi-implicit bound, "
    "k-NN entropy, or a discriminator (per value, or on whole draws).",
)
flags.DEFINE_integer(
    "num_mixture_draws",
    16,
    "Bayes by Hypernet, semi_implicit: fresh noise draws in the bound's mixture.",
    lower_bound=0,
)
flags.DEFINE_bool(
    "semi_implicit",
    True,
    "Bayes by Hypernet: a learned sigma per generated value (a semi-implicit "
    "posterior with a density); False: the paper's deterministic generator.",
)
flags.DEFINE_float(
    "hypernet_init_stddev",
    0.01,
    "Bayes by Hypernet: initial sigma of every generated value.",
)
flags.DEFINE_float(
    "hypernet_learning_rate_scale",
    0.1,
    "Bayes by Hypernet: the hypernetwork's weights learn at this fraction of "
    "the optimizer's rate (HyperNetwork(learning_rate_scale=...)); 1: as "
    "plain weights, the paper's.",
)
flags.DEFINE_integer(
    "discriminator_steps",
    5,
    "Bayes by Hypernet, adversarial: discriminator updates per training step.",
)
flags.DEFINE_float(
    "discriminator_learning_rate",
    1e-2,
    "Bayes by Hypernet: Adam learning rate of the KL estimator's own weights "
    "(the discriminator).",
)
flags.DEFINE_bool(
    "conditional",
    True,
    "Bayes by Hypernet, adversarial: the discriminator sees each value's "
    "position (per-position KL); False is the paper's pooled form.",
)
flags.DEFINE_integer(
    "discriminator_sample_size",
    0,
    "Bayes by Hypernet, adversarial: values the discriminator scores per step "
    "(a random subset, the KL estimate scaled to stay unbiased); 0: all.",
    lower_bound=0,
)
flags.DEFINE_integer(
    "discriminator_warmup_steps",
    0,
    "Bayes by Hypernet, adversarial: discriminator updates before the first "
    "model update.",
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
    "ensemble_members", 5, "deep_ensemble: the members.", lower_bound=2
)
flags.DEFINE_integer(
    "hypernet_output_dim", 256, "Bayes by Hypernet: values generated per chunk."
)
flags.DEFINE_integer(
    "hypernet_noise_dim", 64, "Bayes by Hypernet: size of the hypernetwork's noise."
)

NAMES = (
    "ensemble_members",
    "prior",
    "adam_epsilon",
    "kl_estimator",
    "num_mixture_draws",
    "semi_implicit",
    "hypernet_init_stddev",
    "hypernet_learning_rate_scale",
    "discriminator_steps",
    "discriminator_learning_rate",
    "conditional",
    "discriminator_sample_size",
    "discriminator_warmup_steps",
    "discriminator_clipvalue",
    "noise_per_chunk",
    "hypernet_output_dim",
    "hypernet_noise_dim",
)


def prior():
    """The ``--prior``, or None for the package default."""
    return bbh_tf.ScaleMixturePrior(*prior_values()) if FLAGS.prior else None


def hypernetwork():
    """A ``HyperNetwork`` as ``--hypernet_noise_dim``,
    ``--hypernet_output_dim``, ``--noise_per_chunk``, ``--semi_implicit``,
    ``--hypernet_init_stddev`` and ``--hypernet_learning_rate_scale`` say
    (the paper's sizes otherwise)."""
    return bbh_tf.HyperNetwork(
        noise_dim=FLAGS.hypernet_noise_dim,
        output_dim=FLAGS.hypernet_output_dim,
        noise_per_chunk=FLAGS.noise_per_chunk,
        semi_implicit=FLAGS.semi_implicit,
        init_stddev=FLAGS.hypernet_init_stddev,
        learning_rate_scale=FLAGS.hypernet_learning_rate_scale,
    )


def kl_estimator():
    """Bayes by Hypernet's ``bbh_tf.kl`` estimator as ``--kl_estimator`` and
    the discriminator flags say."""
    if FLAGS.kl_estimator == "semi_implicit":
        return bbh_tf.kl.SemiImplicitKL(FLAGS.num_mixture_draws)
    if FLAGS.kl_estimator == "nearest_neighbour":
        return bbh_tf.kl.NearestNeighbourKL()
    if FLAGS.kl_estimator == "adversarial_joint":
        discriminator = bbh_tf.JointDiscriminator()
    else:
        discriminator = bbh_tf.Discriminator(conditional=FLAGS.conditional)
    return bbh_tf.kl.AdversarialKL(
        discriminator,
        steps=FLAGS.discriminator_steps,
        warmup_steps=FLAGS.discriminator_warmup_steps,
        sample_size=FLAGS.discriminator_sample_size or None,
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
    positive = dict(positive or {})
    for name in (
        "adam_epsilon",
        "hypernet_output_dim",
        "hypernet_noise_dim",
        "hypernet_init_stddev",
        "discriminator_steps",
        "discriminator_learning_rate",
    ):
        positive[name] = FLAGS[name].value
    if FLAGS.discriminator_clipvalue is not None:
        positive["discriminator_clipvalue"] = FLAGS.discriminator_clipvalue
    for name, value in positive.items():
        if not (np.isfinite(value) and value > 0):
            raise app.UsageError(f"--{name} must be a finite number > 0, got {value}.")
    if not 0 < FLAGS.hypernet_learning_rate_scale <= 1:
        raise app.UsageError(
            "--hypernet_learning_rate_scale must be in (0, 1], got "
            f"{FLAGS.hypernet_learning_rate_scale}."
        )
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


def write_json(path, document):
    """Write ``document`` to ``path`` (its folder made if needed) and say so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(document, f, indent=2)
    print(f"Wrote {path}")
