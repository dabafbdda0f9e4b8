"""Development prototype (not part of the package): the toy example's Bayes
by Hypernet with a *joint* discriminator, an MLP (20, 20 ReLU units, the
paper's size) on the whole vector of a draw's generated values (200 with the
posterior on the first layer), one logit per draw, instead of one logit per
value. Everything else is ``examples/toy_regression.py`` with its flags.

Run from the repository root (docs/discriminator.md, "A joint discriminator
does not close the gap", has the results)::

    python docs/runs/toy_joint_discriminator/prototype.py --method=bbh --seed=S \
        --output=docs/runs/toy_joint_discriminator/joint_seedS.png
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples"))

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import bbh_tf  # noqa: E402
import toy_regression  # noqa: E402

FLAGS = flags.FLAGS


class JointDiscriminator(bbh_tf.Discriminator):
    """One logit per draw from all of its generated values at once."""

    def __init__(self, **kwargs):
        super().__init__(conditional=False, **kwargs)
        self.joint_layers = [keras.layers.Dense(20, activation="relu") for _ in range(2)]
        self.joint_logit = keras.layers.Dense(1)

    def build(self, values_shape, codes_shape=None):
        if self.built:
            return
        width = 200 if FLAGS.bbh_layers == "first" else 301
        for layer in self.joint_layers:
            layer.build((None, width))
            width = layer.units
        self.joint_logit.build((None, width))
        self.built = True

    def position_features(self, codes, output_dim, positions=None):
        return None

    def score(self, values, features=None):
        # (draws, values) -> (draws, 1): the KL estimate sums this one logit.
        hidden = tf.cast(values, self.compute_dtype)
        for layer in self.joint_layers:
            hidden = layer(hidden)
        return self.joint_logit(hidden)


# toy_regression.build_bbh calls bbh_tf.Discriminator(conditional=...).
bbh_tf.Discriminator = lambda conditional=True: JointDiscriminator()

if __name__ == "__main__":
    app.run(toy_regression.main)
