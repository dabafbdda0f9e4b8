"""``HyperLayer``: the base of layers whose values a shared
:class:`HyperNetwork` generates (``HyperDense``, ``HyperConv2D``, your own).

A hyper layer owns the position codes of the chunks it asks the
hypernetwork for and, with a semi-implicit posterior, the means ``m`` and
standard deviations ``sigma`` of its generated values; the hypernetwork
gives the rest. ``bbh_tf.layers`` builds the dense and convolutional layers
on it.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import sharing
from bbh_tf.hypernet import HyperNetwork
from bbh_tf.injection import injected_values_for


class HyperLayer(keras.layers.Layer):
    """Base class of layers with hypernetwork-generated values.

    Subclasses call :meth:`add_generated_values` in ``build`` with the number
    of values they need and read them in ``call`` with
    :meth:`generated_values`.

    Args:
        hypernet: The :class:`HyperNetwork` to draw from, shared with the
            model's other hyper layers. Default None: the layer makes a
            default ``HyperNetwork()`` of its own; inside ``BayesByHypernet``
            all layers given none share one instead.
            A hypernetwork's config (from :meth:`get_config`) is rebuilt so
            that the layers rebuilt with it share one again
            (``bbh_tf.sharing``).
        default_hypernet: Whether ``hypernet`` stands for a default one
            (set in configs, so that a rebuilt layer given none at first
            still shares the model's default). Default: ``hypernet is None``.
    """

    # Whether ``call`` handles one copy of the batch shared by all draws
    # (``bbh_tf.injection.input_shared_by_draws``); a subclass that does
    # sets it, and prediction then runs the layers before it once.
    accepts_shared_input = False

    def __init__(self, hypernet=None, default_hypernet=None, **kwargs):
        super().__init__(**kwargs)
        # Whether the layer draws from a default hypernetwork, its own or
        # (rebuilt from a config: ``default_hypernet=True``) a copy of one:
        # a BayesByHypernet replaces those by one shared default.
        self.default_hypernet = (
            hypernet is None if default_hypernet is None else bool(default_hypernet)
        )
        if hypernet is None:
            hypernet = HyperNetwork()
        elif isinstance(hypernet, dict):
            hypernet = sharing.rebuild(hypernet, self.name)
        if not isinstance(hypernet, HyperNetwork):
            raise TypeError(
                "`hypernet` must be a bbh_tf.HyperNetwork, got "
                f"{type(hypernet).__name__}."
            )
        self.hypernet = hypernet
        hypernet.attach(self)
        self.num_generated = None

    def share_hypernet(self, hypernet):
        """Draw from ``hypernet`` instead of the default hypernetwork this
        layer made, or instead of a copy of ``hypernet`` (the same
        ``shared_id``). The two must have the same config: the layer's own
        weights, position codes included, stay valid."""
        if hypernet is self.hypernet:
            return
        if not (self.default_hypernet or hypernet.shared_id == self.hypernet.shared_id):
            raise ValueError(
                f"{self.name} draws from a hypernetwork it was given; only a "
                "layer's own default one, or a copy of the new one, can be "
                "replaced."
            )
        old = self.hypernet
        locked = self._tracker.locked
        self._tracker.unlock()
        self._tracker.untrack(old)
        self.hypernet = hypernet
        if locked:
            self._tracker.lock()
        old.detach(self)
        hypernet.attach(self)

    def add_generated_values(self, num_values, initial_mean="zeros", value_scale=1.0):
        """Reserve ``num_values`` generated values (call once, in ``build``).

        With a semi-implicit hypernetwork (the default) value ``i`` of a draw
        is ``w_i = m_i + s_i * G_i(eps) + sigma_i * xi_i``: this adds the
        trainable means ``m`` (``generated_mean``, started at
        ``initial_mean``, an initializer of the flat ``(num_values,)``
        vector) and ``sigma = softplus(stddev_rho)``, and fixes the scales
        ``s`` (``value_scale``, a float or one per value) that put the
        hypernetwork's output on the scale of the layer's weights. With the
        paper's deterministic hypernetwork ``w_i = G_i(eps)``.
        """
        self.hypernet.build()
        self.num_generated = int(num_values)
        self.position_codes = self.add_weight(
            name="position_codes",
            shape=(self.hypernet.num_chunks(num_values), self.hypernet.code_dim),
            # Unseeded on purpose: every layer must get distinct codes. They
            # are fixed labels, saved with the layer, not trained.
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
        )
        if not self.hypernet.semi_implicit:
            return
        self.generated_mean = self.add_weight(
            name="generated_mean",
            shape=(self.num_generated,),
            initializer=initial_mean,
        )
        # softplus(rho) = init_stddev, solved for rho.
        rho = math.log(math.expm1(self.hypernet.init_stddev))
        self.stddev_rho = self.add_weight(
            name="stddev_rho",
            shape=(self.num_generated,),
            initializer=keras.initializers.Constant(rho),
            # The KL term's precision (log sigma) needs float32.
            dtype="float32",
        )
        self.value_scale = np.broadcast_to(
            np.asarray(value_scale, dtype="float32"), (self.num_generated,)
        ).copy()

    @property
    def num_chunks(self):
        """How many chunks of the hypernetwork's output this layer uses."""
        return int(self.position_codes.shape[0])

    def conditional_stddev(self):
        """``sigma`` of every generated value ``(num_generated,)``, float32;
        None for the paper's deterministic hypernetwork."""
        if not self.hypernet.semi_implicit:
            return None
        return tf.nn.softplus(tf.convert_to_tensor(self.stddev_rho))

    def generate(self, noise):
        """Raw hypernetwork output for ``noise``: ``(draws, chunks, output_dim)``:
        the conditional means of the generated values (and unused padding)."""
        return self.hypernet(noise, self.position_codes)

    def conditional_mean(self, raw):
        """``m + s * G(eps)`` for raw hypernetwork output ``(draws, num_generated)``
        (``G(eps)`` itself for a deterministic hypernetwork)."""
        if not self.hypernet.semi_implicit:
            return raw
        scale = tf.constant(self.value_scale, raw.dtype)
        return tf.cast(self.generated_mean, raw.dtype) + scale * raw

    def generated_values(self):
        """This call's generated values, shape ``(draws, num_generated)``.

        Inside ``injected_values`` the values given there; otherwise one
        fresh draw of the layer's own: a noise vector through the
        hypernetwork, plus ``sigma * xi`` if the posterior is semi-implicit.
        """
        raw = injected_values_for(self)
        if raw is not None:
            flat = keras.ops.reshape(raw, (keras.ops.shape(raw)[0], -1))
            return tf.cast(flat[:, : self.num_generated], self.compute_dtype)
        raw = self.generate(self.hypernet.sample_noise(1, self.num_chunks))
        values = self.conditional_mean(
            keras.ops.reshape(raw, (1, -1))[:, : self.num_generated]
        )
        stddev = self.conditional_stddev()
        if stddev is not None:
            values += tf.cast(stddev, values.dtype) * self.hypernet.standard_normal(
                tf.shape(values)
            )
        # The hypernetwork may compute in another dtype (float32 under a
        # mixed-precision layer): the layer's arithmetic is in its own.
        return tf.cast(values, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        # Plain JSON: the hypernetwork's config, whose shared_id lets
        # rebuilding restore the sharing (bbh_tf.sharing).
        config["hypernet"] = keras.saving.serialize_keras_object(self.hypernet)
        config["default_hypernet"] = self.default_hypernet
        return config
