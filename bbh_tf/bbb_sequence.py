"""Bayes by Backprop layers for sequences: an embedding table and an LSTM
cell with mean-field Gaussian posteriors."""

import keras
import tensorflow as tf

from bbh_tf import _embedding, _random
from bbh_tf.bbb_layers import BayesByBackpropLayer
from bbh_tf.hyper_recurrent import LSTMCellBase, lstm_initial_bias

__all__ = ["BayesByBackpropEmbedding", "BayesByBackpropLSTMCell"]


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropEmbedding(_embedding.EmbeddingLayer, BayesByBackpropLayer):
    """Embedding table with a mean-field Gaussian posterior on every entry.

    Each looked-up vector is an independent draw ``mu[i] + sigma[i] * eps``
    (the exact marginal of every output element; the same index twice in
    one input gets two independent draws).

    Args:
        input_dim: Size of the vocabulary, >= 1.
        output_dim: Dimension of the embedding, >= 1.
        embeddings_initializer: Initializer of the posterior means.
            Default ``"uniform"``, as Keras' ``Embedding``.
        embeddings_regularizer: Not taken (the prior regularises the
            table): must be None.
        mask_zero: Whether index 0 is padding to be masked (as in Keras).
        **kwargs: ``prior``, ``init_rho``, ``seed`` as for
            :class:`BayesByBackpropDense`, and the base layer's.

    Example:

    >>> layer = bbh_tf.BayesByBackpropEmbedding(1000, 16)
    >>> layer(tf.constant([[3, 5, 7]])).shape
    TensorShape([1, 3, 16])
    """

    _initializer_argument = "kernel_mean_initializer"
    _regularizer_argument = None

    def call(self, inputs):
        indices = self._indices(inputs)
        mean = tf.gather(self.kernel_mu, indices)
        sigma = tf.gather(self.kernel_sigma, indices)
        noise = _random.normal(tf.shape(mean), self.seed_generator, dtype=mean.dtype)
        return mean + sigma * noise


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropLSTMCell(LSTMCellBase, BayesByBackpropLayer):
    """LSTM cell with a mean-field Gaussian posterior, for
    ``keras.layers.RNN``.

    The gates' pre-activations are ``[x_t, h_{t-1}] @ [W; U] + b`` with a
    Gaussian posterior on every entry of ``[W; U]`` (Keras' kernel over its
    recurrent kernel) and ``b``. Inside ``keras.layers.RNN`` every sequence
    keeps one weight draw for all its steps, decorrelated between the
    sequences of a batch with flipout (Wen et al., 2018): one perturbation
    ``sigma * eps`` per batch, times random signs per sequence, for one
    extra matrix product per step.

    Args:
        units: Size of the state, >= 1.
        activation: Of the candidate and the output. Default ``"tanh"``.
        recurrent_activation: Of the gates. Default ``"sigmoid"``.
        recurrent_initializer: Initializer of ``U``'s means. Default
            orthogonal.
        unit_forget_bias: Start the forget gate's bias mean at 1.
        **kwargs: ``use_bias`` (whether the gates have a random bias,
            default True), ``kernel_mean_initializer`` (of ``W``'s means),
            ``prior``, ``init_rho``, ``seed`` as for
            :class:`BayesByBackpropDense`, and the base layer's.

    Example:

    >>> net = keras.Sequential([keras.Input((28, 28)),
    ...     keras.layers.RNN(bbh_tf.BayesByBackpropLSTMCell(64)),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> model = bbh_tf.BayesByBackprop(net, num_examples=60000)
    """

    def _initial_kernel_mean(self, shape, dtype=None):
        return self._lstm_kernel(self.kernel_mean_initializer, dtype)

    def _initial_bias_mean(self, shape, dtype=None):
        return lstm_initial_bias(
            self.units, keras.initializers.Zeros(), self.unit_forget_bias, dtype
        )

    def _draw_for_sequence(self, step_input):
        """Flipout's noise for a batch: the shared perturbation's ``eps``,
        each sequence's input and output signs, and its bias noise."""
        batch = tf.shape(step_input)[0]
        dtype = self.compute_dtype
        rows, gates = self.kernel_shape

        def signs(shape):
            noise = _random.normal(shape, self.seed_generator, dtype=dtype)
            return tf.where(noise < 0, tf.constant(-1, dtype), tf.constant(1, dtype))

        return (
            _random.normal(self.kernel_shape, self.seed_generator, dtype=dtype),
            signs(tf.stack([batch, rows])),
            signs(tf.stack([batch, gates])),
            _random.normal(tf.stack([batch, gates]), self.seed_generator, dtype=dtype),
        )

    def call(self, inputs, states, training=None):
        eps, sign_in, sign_out, bias_eps = self._current_draw(inputs)
        features = tf.concat([inputs, tf.cast(states[0], inputs.dtype)], axis=-1)
        perturbation = tf.cast(self.kernel_sigma, eps.dtype) * eps
        gates = tf.matmul(features, tf.cast(self.kernel_mu, features.dtype))
        gates += tf.matmul(features * sign_in, perturbation) * sign_out
        if self.use_bias:
            gates += self.bias_mu + self.bias_sigma * bias_eps
        return self._lstm_step(gates, states)
