"""``HyperLSTMCell``: an LSTM cell whose weights a shared
:class:`HyperNetwork` generates, one weight draw per sequence."""

import keras
import tensorflow as tf

# Keras' RNN asks a cell of this type for its per-sequence random state
# (``get_dropout_mask``) once before the time loop and clears it after; the
# cells below keep their weight draw there. Not exported by keras.layers.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from bbh_tf import _checks
from bbh_tf.layers import LinearHyperLayer

__all__ = ["HyperLSTMCell", "LSTMCellBase", "lstm_initial_bias"]


class LSTMCellBase(DropoutRNNCell):
    """Mixin of an LSTM cell for ``keras.layers.RNN`` whose weights are one
    random draw per sequence: the arguments an LSTM adds to its base layer
    (``LinearHyperLayer`` or ``BayesByBackpropLayer``), the kernel ``[W; U]``
    ``(input_dim + units, 4 * units)``, states, config, and the draw.

    ``keras.layers.RNN`` calls :meth:`get_dropout_mask` before its time loop
    (the cell makes its draw, with :meth:`_draw_for_sequence`) and
    :meth:`reset_dropout_mask` after. A cell called on its own, outside an
    ``RNN``, draws at every call.
    """

    _sequence_draw = None

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_initializer="orthogonal",
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(activation=activation, **kwargs)
        self.units = _checks.positive_int("units", units)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)

    def build(self, input_shape):
        self.input_dim = _checks.known_last_dim(self.name, input_shape)
        self.kernel_shape = (self.input_dim + self.units, 4 * self.units)
        self._build_parameters()

    def _lstm_kernel(self, kernel_initializer, dtype=None):
        """``[W; U]`` started by ``kernel_initializer`` and the recurrent one."""
        gates = 4 * self.units
        return tf.concat(
            [
                kernel_initializer((self.input_dim, gates), dtype),
                self.recurrent_initializer((self.units, gates), dtype),
            ],
            axis=0,
        )

    def _draw_for_sequence(self, step_input):
        raise NotImplementedError

    def get_dropout_mask(self, step_input):
        # Always a new draw: a draw left from an earlier (failed) call
        # belongs to another graph.
        self._sequence_draw = self._draw_for_sequence(step_input)
        return None

    def get_recurrent_dropout_mask(self, step_input):
        return None

    def reset_dropout_mask(self):
        self._sequence_draw = None

    def reset_recurrent_dropout_mask(self):
        pass

    def _current_draw(self, step_input):
        if self._sequence_draw is not None:
            return self._sequence_draw
        return self._draw_for_sequence(step_input)

    @property
    def state_size(self):
        return [self.units, self.units]

    @property
    def output_size(self):
        return self.units

    def get_initial_state(self, batch_size=None):
        zeros = keras.ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        return [zeros, zeros]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
            "recurrent_initializer": keras.initializers.serialize(
                self.recurrent_initializer
            ),
            "unit_forget_bias": self.unit_forget_bias,
        }

    def _lstm_step(self, gates, states):
        """The LSTM update from the pre-activations ``gates`` ``(batch,
        4 * units)`` (input, forget, candidate, output, as in Keras)."""
        _, c = states
        i, f, g, o = tf.split(gates, 4, axis=-1)
        act, rec = self.activation, self.recurrent_activation
        c = rec(f) * c + rec(i) * act(g)
        h = rec(o) * act(c)
        return h, [h, c]


def lstm_initial_bias(units, bias_initializer, unit_forget_bias, dtype=None):
    """Keras' LSTM bias start: the forget gate's at 1 if ``unit_forget_bias``."""
    if not unit_forget_bias:
        return bias_initializer((4 * units,), dtype)
    return tf.concat(
        [
            bias_initializer((units,), dtype),
            tf.ones((units,), dtype),
            bias_initializer((2 * units,), dtype),
        ],
        axis=0,
    )


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperLSTMCell(LSTMCellBase, LinearHyperLayer):
    """LSTM cell with hypernetwork-generated weights, for ``keras.layers.RNN``.

    The gates' pre-activations are one linear map of ``[x_t, h_{t-1}]`` with
    the kernel ``[W; U]`` ``(input_dim + units, 4 * units)`` (Keras' kernel
    over its recurrent kernel) and the bias; the modes are those of
    :class:`HyperDense` for that map: ``"scale"`` (default) generates one
    scale per gate unit (``4 * units`` values), ``"weight_norm"`` the same
    with normalised columns, ``"full"`` every weight. Inside
    ``keras.layers.RNN`` a sequence uses one weight draw at all its steps
    (inside ``BayesByHypernet``, the model's draw of the pass).

    Args:
        units: Size of the state, >= 1.
        activation: Of the candidate and the output. Default ``"tanh"``.
        recurrent_activation: Of the gates. Default ``"sigmoid"``.
        recurrent_initializer: Initializer of ``U``. Default orthogonal.
        unit_forget_bias: Start the forget gate's bias at 1 (as Keras).
        **kwargs: ``hypernet`` (default None, see :class:`HyperLayer`),
            ``mode`` (``"scale"``, ``"weight_norm"`` or ``"full"``),
            ``use_bias`` (default True), ``kernel_initializer`` (of ``W``,
            default glorot uniform), ``bias_initializer`` (default zeros),
            ``kernel_regularizer`` (of ``[W; U]``), ``bias_regularizer``,
            and the base layer's (``name``, ``dtype``).

    Example:

    >>> net = keras.Sequential([
    ...     keras.Input((28, 28)),               # 28 steps of 28 pixels
    ...     keras.layers.RNN(bbh_tf.HyperLSTMCell(64)),
    ...     bbh_tf.HyperDense(10, activation="softmax"),
    ... ])
    >>> model = bbh_tf.BayesByHypernet(net, num_examples=60000)
    """

    accepts_shared_input = False

    def _initial_kernel(self, shape, dtype=None):
        return self._lstm_kernel(self.kernel_initializer, dtype)

    def _initial_bias(self, shape, dtype=None):
        return lstm_initial_bias(
            self.units, self.bias_initializer, self.unit_forget_bias, dtype
        )

    def _linear(self, inputs, kernel):
        return tf.matmul(inputs, kernel)

    def _features(self, inputs):
        return inputs

    def _draw_for_sequence(self, step_input):
        return self.generated_values()

    def call(self, inputs, states, training=None):
        values = self._current_draw(inputs)
        features = tf.concat([inputs, tf.cast(states[0], inputs.dtype)], axis=-1)
        return self._lstm_step(self._affine(features, values), states)
