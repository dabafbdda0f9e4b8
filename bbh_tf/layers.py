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

import math

import keras
import tensorflow as tf

from bbh_tf._kernel import DenseLayer, KernelLayer
from bbh_tf._xla import in_xla_context
from bbh_tf.hyper_layer import HyperLayer
from bbh_tf.injection import input_shared_by_draws

__all__ = [
    "HyperDense",
    "HyperLayer",
    "LinearHyperLayer",
    "column_norms",
    "repeat_for_draws",
]

_MODES = ("scale", "weight_norm", "full")
_NORM_EPSILON = 1e-12


def _split_draws(x, num_draws):
    """Reshape ``(S * G, ..., d)`` rows to ``(S, G * ..., d)``."""
    return tf.reshape(x, tf.stack([num_draws, -1, tf.shape(x)[-1]]))


def _per_draw_affine(features, kernel, bias, shared=False):
    """``features @ kernel[d] + bias[d]`` for the rows of each draw ``d``.

    ``features``: ``(S * G, ..., d_in)``, or ``(G, ..., d_in)`` rows shared
    by all draws if ``shared``; ``kernel``: ``(S, d_in, d_out)``; ``bias``:
    ``(S, d_out)`` or None. Returns ``(S * G, ..., d_out)``.
    """
    draws = tf.shape(kernel)[0]
    if shared:
        # One group broadcast against every draw's kernel: no tiled copy.
        grouped = tf.reshape(features, tf.stack([1, -1, tf.shape(features)[-1]]))
    else:
        grouped = _split_draws(features, draws)
    outputs = tf.matmul(grouped, kernel)
    if bias is not None:
        outputs += bias[:, None, :]
    leading = tf.shape(features)[:-1]
    if shared:
        leading = tf.concat([[draws * leading[0]], leading[1:]], axis=0)
    return tf.reshape(outputs, tf.concat([leading, tf.shape(kernel)[-1:]], axis=0))


def repeat_for_draws(x, num_draws):
    """``(G, ...)`` -> ``(S * G, ...)``: the rows repeated once per draw."""
    multiples = tf.concat([[num_draws], tf.ones([tf.rank(x) - 1], tf.int32)], axis=0)
    return tf.tile(x, multiples)


@tf.custom_gradient
def column_norms(columns):
    """``sqrt(sum_i columns[i, j]^2 + eps)`` per column ``j``: weight
    normalisation's ``||V||``.

    Its value reads the kernel once (``reduce_euclidean_norm``; under XLA,
    which has no kernel for it, a square and a sum), and its gradient,
    ``columns * upstream / norm``, is one broadcasting product: what
    automatic differentiation of ``sqrt(reduce_sum(square(V)))`` gives in
    three passes over the kernel. Passes over the kernel are weight
    normalisation's whole cost on a CPU (docs/performance.md)."""
    if in_xla_context():
        squares = tf.reduce_sum(tf.square(columns), axis=0)
    else:
        squares = tf.square(tf.math.reduce_euclidean_norm(columns, axis=0))
    norms = tf.sqrt(squares + _NORM_EPSILON)

    def gradient(upstream):
        return columns * (upstream / norms)

    return norms, gradient


def _scale_per_draw(outputs, scales, bias, direction=None):
    """Turn ``x * V`` (any linear map with kernel ``V``, output units last)
    into ``x * (V diag g) + b`` for per-draw scales ``g`` ``(S, units)``, or,
    given the ``direction`` ``V``, into weight normalisation's
    ``x * (g V / ||V||) + b`` with ``||V||`` per output unit.

    Scaling the product is much cheaper than scaling ``V`` per draw, and
    the product itself, shared by all draws, runs once.
    """
    if direction is not None:
        columns = tf.reshape(direction, (-1, scales.shape[-1]))
        scales = scales / column_norms(columns)
    scaled = _split_draws(outputs, tf.shape(scales)[0]) * scales[:, None, :]
    if bias is not None:
        scaled += bias
    return tf.reshape(scaled, tf.shape(outputs))


class LinearHyperLayer(KernelLayer, HyperLayer):
    """A linear map (dense, convolution, embedding, recurrent) with the three
    modes of generation.

    Subclasses set ``self.kernel_shape`` in ``build`` before calling
    :meth:`_build_parameters`, and give :meth:`_linear` (the map with one
    shared kernel) and either :meth:`_features` (the inputs as rows of the
    kernel reshaped to ``(-1, output_units)``, for per-draw kernels) or
    their own :meth:`_per_draw`.
    """

    accepts_shared_input = True

    def __init__(
        self,
        hypernet=None,
        mode="scale",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(hypernet=hypernet, **kwargs)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        self.mode = mode
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def _initial_kernel(self, shape, dtype=None):
        """Where the kernel ``V`` (full mode: its posterior mean) starts."""
        return self.kernel_initializer(shape, dtype)

    def _initial_bias(self, shape, dtype=None):
        return self.bias_initializer(shape, dtype)

    def _build_parameters(self):
        units = self.output_units
        if self.mode == "full":
            size = math.prod(self.kernel_shape)
            self.add_generated_values(
                size + (units if self.use_bias else 0),
                initial_mean=self._initial_kernel_and_bias,
                # The hypernetwork's output on the scale of 1 / sqrt(fan_in).
                value_scale=1.0 / math.sqrt(size // units),
            )
            return
        # The scales g start at 1: in "scale" mode the kernel starts as the
        # initializer's; in "weight_norm" mode with unit-norm columns.
        self.add_generated_values(units, initial_mean="ones")
        self.direction = self.add_weight(
            name="direction",
            shape=self.kernel_shape,
            initializer=self._initial_kernel,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=self._initial_bias,
                regularizer=self.bias_regularizer,
            )

    def _initial_kernel_and_bias(self, shape, dtype=None):
        """Full mode's posterior means at the start: the layer's initializers
        of kernel and bias, flattened."""
        parts = [tf.reshape(self._initial_kernel(self.kernel_shape, dtype), [-1])]
        if self.use_bias:
            parts.append(self._initial_bias((self.output_units,), dtype))
        return tf.concat(parts, axis=0)

    def _linear(self, inputs, kernel):
        raise NotImplementedError

    def _features(self, inputs):
        raise NotImplementedError

    def _per_draw(self, inputs, kernel, bias, shared):
        """Full mode: the map with draw ``d``'s kernel (``kernel[d]``, flat)
        and bias on the rows of draw ``d``."""
        kernel = tf.reshape(kernel, (tf.shape(kernel)[0], -1, self.output_units))
        return _per_draw_affine(self._features(inputs), kernel, bias, shared)

    def call(self, inputs):
        # Prediction may hand the first hyper layer one copy of the batch for
        # all draws (see BayesByHypernet._sample_batch).
        shared = input_shared_by_draws(self)
        return self.activation(self._affine(inputs, self.generated_values(), shared))

    def _affine(self, inputs, values, shared=False):
        """The map's output before the activation, with generated ``values``
        ``(draws, num_generated)``."""
        if self.mode == "full":
            size = math.prod(self.kernel_shape)
            bias = values[:, size:] if self.use_bias else None
            outputs = self._per_draw(inputs, values[:, :size], bias, shared)
        else:
            product = self._linear(inputs, self.direction)
            if shared:
                # The product with V does not depend on the draw: once.
                product = repeat_for_draws(product, tf.shape(values)[0])
            outputs = _scale_per_draw(
                product,
                values,
                self.bias if self.use_bias else None,
                direction=self.direction if self.mode == "weight_norm" else None,
            )
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperDense(DenseLayer, LinearHyperLayer):
    """Densely connected layer with hypernetwork-generated weights.

    Which values the hypernetwork generates (``mode``):

    * ``"scale"`` (default): one scale per output unit, ``W[:, j] = g_j *
      V[:, j]``. The kernel ``V`` and the bias are point estimates, the
      scales ``g`` (``units`` values, starting at 1) are random: a posterior
      over how strongly each unit fires, at the cost of a plain layer (the
      product with ``V`` runs once for all draws).
    * ``"weight_norm"`` (the paper's MNIST setting): the same with unit-norm
      columns, ``W[:, j] = g_j * V[:, j] / ||V[:, j]||``, so ``g`` is each
      column's length. With Adam it learns more slowly than ``"scale"``
      (docs/results.md, regression).
    * ``"full"`` (the paper's toy setting): kernel and bias are both
      generated (``input_dim * units + units`` values): every weight random.

    Args:
        units: Number of output units, >= 1.
        **kwargs: ``hypernet`` (the shared :class:`HyperNetwork`; default
            None, see :class:`HyperLayer`); ``mode`` (``"scale"``, ``"weight_norm"`` or ``"full"``);
            ``activation`` (default linear); ``use_bias`` (default True);
            ``kernel_initializer`` (of the point-estimate kernel ``V``; in
            ``full`` mode where the kernel's posterior mean starts; default
            glorot uniform) and ``bias_initializer`` (default zeros);
            ``kernel_regularizer`` and ``bias_regularizer`` (of ``V`` and
            the bias, ``scale`` and ``weight_norm`` modes); the base
            layer's (``name``, ``dtype``).

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
