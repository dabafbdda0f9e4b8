"""Layers whose weights are drawn from a shared :class:`HyperNetwork`.

A hyper layer owns the point-estimate parts of its weights and the position
codes of the chunks it asks the hypernetwork for; the generated parts come
from the hypernetwork. Called on its own, a hyper layer draws its own noise:
one fresh, independent weight sample per call, for the whole batch. Inside
``BayesByHypernet`` all hyper layers share one noise draw per weight sample.

Several weight samples in one call: with ``S`` draws and ``N = S * G`` input
rows, rows ``[d * G, (d + 1) * G)`` use draw ``d``. ``BayesByHypernet``
arranges its batches that way (splitting a training batch across draws,
tiling a prediction batch once per draw).
"""

import keras
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.hypernet import HyperNetwork, injected_values_for

_MODES = ("weight_norm", "full")
_NORM_EPSILON = 1e-12


class HyperLayer(keras.layers.Layer):
    """Base class of layers with hypernetwork-generated values.

    Subclasses call :meth:`add_generated_values` in ``build`` with the number
    of values they need and read them in ``call`` with
    :meth:`generated_values`.

    Args:
        hypernet: The shared :class:`HyperNetwork` (required).
    """

    def __init__(self, hypernet=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(hypernet, dict):
            # Inside load_model's sharing scope this returns the one object
            # every layer that shares it refers to.
            hypernet = keras.saving.deserialize_keras_object(hypernet)
        if hypernet is None:
            raise ValueError(
                f"{type(self).__name__} needs `hypernet`, a "
                "bbh_tf.HyperNetwork shared by the model's hyper layers, e.g. "
                "`HyperDense(10, hypernet=bbh_tf.HyperNetwork())`."
            )
        if not isinstance(hypernet, HyperNetwork):
            raise TypeError(
                "`hypernet` must be a bbh_tf.HyperNetwork, got "
                f"{type(hypernet).__name__}."
            )
        self.hypernet = hypernet
        self.num_generated = None

    def add_generated_values(self, num_values):
        """Reserve ``num_values`` generated values (call once, in ``build``)."""
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

    def generate(self, noise):
        """Raw hypernetwork output for ``noise``: ``(draws, chunks, output_dim)``."""
        return self.hypernet(noise, self.position_codes)

    def generated_values(self):
        """This call's generated values, shape ``(draws, num_generated)``."""
        raw = injected_values_for(self)
        if raw is None:
            raw = self.generate(self.hypernet.sample_noise(1))
        flat = keras.ops.reshape(raw, (keras.ops.shape(raw)[0], -1))
        return flat[:, : self.num_generated]

    def get_config(self):
        config = super().get_config()
        # The object itself, not its config: Keras then serializes it once
        # inside its sharing scope and every layer gets it back on load.
        config["hypernet"] = self.hypernet
        return config


def _split_draws(x, num_draws):
    """Reshape ``(S * G, ..., d)`` rows to ``(S, G * ..., d)``."""
    return tf.reshape(x, tf.stack([num_draws, -1, tf.shape(x)[-1]]))


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperDense(HyperLayer):
    """Densely connected layer with hypernetwork-generated weights.

    ``mode="weight_norm"`` (default; the paper's MNIST setting): for output
    unit ``j``, ``W[:, j] = g_j * V[:, j] / ||V[:, j]||``. The directions ``V``
    and the bias are point estimates; the scales ``g`` (``units`` values) are
    generated, so the posterior lives on the scales.

    ``mode="full"`` (the paper's toy setting): kernel and bias are both
    generated (``input_dim * units + units`` values).

    Args:
        units: Number of output units, >= 1.
        hypernet: The shared :class:`HyperNetwork` (required).
        mode: ``"weight_norm"`` or ``"full"``.
        activation: Activation function. Default: linear.
        use_bias: Whether the layer adds a bias.
        kernel_initializer, bias_initializer: Initializers of the
            point-estimate direction ``V`` and bias. Used in ``weight_norm``
            mode only: in ``full`` mode nothing is a point estimate.
        kernel_regularizer, bias_regularizer: Regularizers of the same
            (``weight_norm`` mode only).

    Input shape ``(batch, ..., input_dim)``, output ``(batch, ..., units)``.

    Example:

    >>> hypernet = bbh_tf.HyperNetwork()
    >>> net = keras.Sequential([
    ...     keras.Input((784,)),
    ...     bbh_tf.HyperDense(800, activation="relu", hypernet=hypernet),
    ...     bbh_tf.HyperDense(10, activation="softmax", hypernet=hypernet),
    ... ])
    >>> net(x).shape       # one independent weight sample per layer
    (batch, 10)
    """

    def __init__(
        self,
        units,
        hypernet=None,
        mode="weight_norm",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(hypernet=hypernet, **kwargs)
        self.units = _checks.positive_int("units", units)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        self.mode = mode
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.input_dim = _checks.known_last_dim(self.name, input_shape)
        if self.mode == "full":
            self.add_generated_values(
                self.input_dim * self.units + (self.units if self.use_bias else 0)
            )
        else:
            self.add_generated_values(self.units)
            self.direction = self.add_weight(
                name="direction",
                shape=(self.input_dim, self.units),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )
            if self.use_bias:
                self.bias = self.add_weight(
                    name="bias",
                    shape=(self.units,),
                    initializer=self.bias_initializer,
                    regularizer=self.bias_regularizer,
                )
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: self.input_dim}
        )

    def call(self, inputs):
        values = self.generated_values()
        num_draws = tf.shape(values)[0]
        output_shape = tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0)
        if self.mode == "full":
            split = self.input_dim * self.units
            kernel = tf.reshape(
                values[:, :split], (-1, self.input_dim, self.units)
            )
            outputs = tf.matmul(_split_draws(inputs, num_draws), kernel)
            if self.use_bias:
                outputs += values[:, None, split:]
        else:
            # x @ (V / ||V||) == (x @ V) / ||V||: scaling the (batch, units)
            # product is much cheaper than normalising the (input, units)
            # kernel and back-propagating through it. The product does not
            # depend on the draw: compute it once, then scale per draw.
            norm = tf.sqrt(
                tf.reduce_sum(tf.square(self.direction), axis=0) + _NORM_EPSILON
            )
            outputs = _split_draws(tf.matmul(inputs, self.direction), num_draws)
            outputs *= (values / norm)[:, None, :]
            if self.use_bias:
                outputs += self.bias
        outputs = tf.reshape(outputs, output_shape)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "mode": self.mode,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
            }
        )
        return config
