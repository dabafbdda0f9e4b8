"""The discriminator: a density-ratio estimator for the KL term.

Trained by logistic regression to tell generated weights (label 1) from prior
samples (label 0), its logit ``T(w)`` estimates ``log q(w) / p(w)``; the sum of
``T`` over all generated values, averaged over draws, estimates the KL term.

Two forms:

* ``conditional=False`` (the paper's): ``T`` sees a weight's value only. It
  then estimates the ratio of the distribution of generated values *pooled
  over all positions* to the prior, so a nearly deterministic hypernetwork
  whose values are spread like the prior scores a KL of about zero.
* ``conditional=True`` (default): ``T`` also sees where the value sits, the
  chunk's position code and the offset inside the chunk, and so estimates
  ``log q_i(w) / p(w)`` per position ``i``: the summed logits estimate the sum
  of per-position KLs, which a collapsed posterior cannot hide from.

Both take the raw hypernetwork output of shape
``(draws, chunks, output_dim)`` and the chunks' codes ``(chunks, code_dim)``.

:class:`JointDiscriminator` sees whole draws instead (all used values of a
hypernetwork at once), so it can represent the joint ratio ``log q(w) / p(w)``
with the dependence between values; it is well-posed when ``q`` has a density
(a semi-implicit hypernetwork). ``bbh_tf.kl.AdversarialKL`` uses either.
"""

import keras
import tensorflow as tf

from bbh_tf import _checks


@keras.saving.register_keras_serializable(package="bbh_tf")
class Discriminator(keras.Model):
    """MLP on single weights, logit out (``log q / p`` once trained).

    Args:
        hidden_units: Sizes of the hidden layers. Default ``(20, 20)``, the
            paper's setting.
        conditional: If True (default), also condition on each value's
            position (chunk code and offset inside the chunk); see the module
            docstring for why. False gives the paper's pooled discriminator.
        activation: Activation of the hidden layers. Default ``"relu"``.

    Call: ``discriminator(values, codes)`` with ``values`` of shape
    ``(draws, chunks, output_dim)`` and ``codes`` of shape
    ``(chunks, code_dim)`` returns logits of the shape of ``values``.

    Example:

    >>> disc = Discriminator(hidden_units=(20, 20), conditional=True)
    >>> values = keras.random.normal((5, 3, 256))
    >>> disc(values, keras.random.normal((3, 16))).shape
    (5, 3, 256)
    """

    def __init__(
        self, hidden_units=(20, 20), conditional=True, activation="relu", **kwargs
    ):
        # The logit is a log density ratio summed over thousands of values:
        # it runs in float32 even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_units = _checks.unit_tuple("hidden_units", hidden_units)
        self.conditional = bool(conditional)
        self.activation = keras.activations.get(activation)
        self.hidden_layers = [
            keras.layers.Dense(
                units,
                activation=self.activation,
                name=f"hidden_{i}",
                dtype=self.dtype_policy,
            )
            for i, units in enumerate(self.hidden_units[1:], start=1)
        ]
        self.logit_layer = keras.layers.Dense(1, name="logit", dtype=self.dtype_policy)
        if self.conditional:
            # Maps (chunk code, offset) to the first layer's pre-activation:
            # a small MLP of its own, so position and chunk can interact.
            self.position_layer = keras.layers.Dense(
                self.hidden_units[0], name="position", dtype=self.dtype_policy
            )

    def build(self, values_shape, codes_shape=None):
        if self.built:
            return
        width = self.hidden_units[0]
        self.value_kernel = self.add_weight(
            name="value_kernel", shape=(width,), initializer="random_normal"
        )
        self.first_bias = self.add_weight(
            name="first_bias", shape=(width,), initializer="zeros"
        )
        if self.conditional:
            if codes_shape is None or codes_shape[-1] is None:
                raise ValueError(
                    "A conditional Discriminator needs the position codes' "
                    f"shape (chunks, code_dim) to build, got {codes_shape}."
                )
            self.output_dim = int(values_shape[-1])
            self.code_kernel = self.add_weight(
                name="code_kernel",
                shape=(int(codes_shape[-1]), width),
                initializer="glorot_uniform",
            )
            self.offset_embedding = self.add_weight(
                name="offset_embedding",
                shape=(self.output_dim, width),
                initializer="random_normal",
            )
            self.position_layer.build((None, width))
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        self.logit_layer.build((None, width))
        self.built = True

    def call(self, values, codes=None):
        shape = tf.shape(values)
        flat = tf.reshape(values, (shape[0], -1))
        features = self.position_features(codes, shape[-1])
        return tf.reshape(self.score(flat, features), shape)

    def position_features(self, codes, output_dim, positions=None):
        """First-layer contribution of every position, ``(chunks * output_dim,
        hidden)`` in chunk-major order; None for the pooled form.

        ``positions``: optional int tensor of flat (chunk-major) positions;
        only their features are computed, in that order.

        Depends on the positions only, so callers scoring many draws (or
        generated and prior values alike) compute it once.
        """
        if not self.conditional:
            return None
        code_term = tf.matmul(codes, self.code_kernel)
        offset_term = self.offset_embedding[:output_dim]
        if positions is None:
            position = code_term[:, None, :] + offset_term[None]
        else:
            position = tf.gather(code_term, positions // output_dim) + tf.gather(
                offset_term, positions % output_dim
            )
        return tf.reshape(
            self.position_layer(tf.nn.relu(position)), (-1, self.hidden_units[0])
        )

    def score(self, values, features=None):
        """Logits of ``values`` ``(draws, n)`` at positions whose
        :meth:`position_features` are ``features`` ``(n, hidden)``."""
        # First layer factorised as value * a + position + b: the position
        # term is computed once per position, not once per draw.
        values = tf.cast(values, self.compute_dtype)
        hidden = values[..., None] * self.value_kernel + self.first_bias
        if features is not None:
            hidden += features[None]
        hidden = self.activation(hidden)
        for layer in self.hidden_layers:
            hidden = layer(hidden)
        return tf.squeeze(self.logit_layer(hidden), axis=-1)

    def compute_output_shape(self, values_shape, codes_shape=None):
        return tuple(values_shape)

    def get_config(self):
        # The base Layer config (name, trainable, dtype) plus our arguments.
        return {
            **keras.layers.Layer.get_config(self),
            "hidden_units": list(self.hidden_units),
            "conditional": self.conditional,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="bbh_tf")
class JointDiscriminator(keras.Model):
    """MLP on whole draws: one logit ``log q(w) / p(w)`` per draw and group.

    Each hypernetwork's values (a group of hyper layers) get an MLP of their
    own, built for their count ``d``; its input is one draw's ``d`` used
    values. Practical while ``d`` is in the thousands (``weight_norm``
    models, small ``full`` ones).

    Args:
        hidden_units: Sizes of the hidden layers. Default ``(64, 64)``.
        activation: Activation of the hidden layers. Default ``"relu"``.

    Example:

    >>> disc = JointDiscriminator(hidden_units=(64, 64))
    >>> disc.build([301])                  # one group of 301 values
    >>> disc.score([keras.random.normal((5, 301))]).shape
    TensorShape([5, 1])
    """

    def __init__(self, hidden_units=(64, 64), activation="relu", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_units = _checks.unit_tuple("hidden_units", hidden_units)
        self.activation = keras.activations.get(activation)
        self.networks = []

    def build(self, value_counts):
        if self.built:
            return
        for index, count in enumerate(value_counts):
            network = keras.Sequential(
                [
                    keras.layers.Dense(
                        units, activation=self.activation, dtype=self.dtype_policy
                    )
                    for units in self.hidden_units
                ]
                + [keras.layers.Dense(1, dtype=self.dtype_policy)],
                name=f"group_{index}",
            )
            network.build((None, int(count)))
            self.networks.append(network)
        self.built = True

    def score(self, values):
        """Logits ``(draws, groups)`` of one ``(draws, d)`` tensor per group."""
        return tf.concat(
            [
                network(tf.cast(v, self.compute_dtype))
                for network, v in zip(self.networks, values)
            ],
            axis=1,
        )

    def call(self, values):
        return self.score(values)

    def get_config(self):
        return {
            **keras.layers.Layer.get_config(self),
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
        }


def discriminator_loss(logits_generated, logits_prior):
    """Logistic-regression loss: generated values are class 1, prior class 0.

    ``-E_q log sigmoid(T) - E_p log(1 - sigmoid(T))``, each expectation a mean
    over all the values given.

    Returns ``(loss, accuracy)``: the loss and the fraction of values
    classified correctly, averaged over the two classes.
    """
    loss = tf.reduce_mean(tf.nn.softplus(-logits_generated)) + tf.reduce_mean(
        tf.nn.softplus(logits_prior)
    )
    accuracy = 0.5 * (
        tf.reduce_mean(tf.cast(logits_generated > 0, tf.float32))
        + tf.reduce_mean(tf.cast(logits_prior < 0, tf.float32))
    )
    return loss, accuracy
