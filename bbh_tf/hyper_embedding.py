"""``HyperEmbedding``: an embedding table whose values a shared
:class:`HyperNetwork` generates."""

import keras
import tensorflow as tf

from bbh_tf import _embedding
from bbh_tf.layers import LinearHyperLayer, repeat_for_draws

__all__ = ["HyperEmbedding"]


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperEmbedding(_embedding.EmbeddingLayer, LinearHyperLayer):
    """Turns integer indices into vectors of a hypernetwork-generated table,
    as Keras' ``Embedding`` does with a point-estimate one.

    The modes are those of :class:`HyperDense`, with the table ``E``
    ``(input_dim, output_dim)`` in the kernel's place: ``"scale"``
    (default): ``E[:, j] = g_j V[:, j]``, one generated scale per embedding
    dimension and a point-estimate table ``V``; ``"weight_norm"``: the same
    with ``V``'s columns normalised; ``"full"``: the whole table generated
    (``input_dim * output_dim`` values; keep the vocabulary small).

    Args:
        input_dim: Size of the vocabulary, >= 1 (indices ``0..input_dim-1``).
        output_dim: Dimension of the embedding, >= 1.
        embeddings_initializer: Initializer of ``V`` (full mode: of the
            posterior mean). Default ``"uniform"``, as in Keras.
        embeddings_regularizer: Regularizer of ``V``.
        mask_zero: Whether index 0 is padding to be masked out downstream
            (as in Keras). Default False.
        **kwargs: ``hypernet`` (default None, see :class:`HyperLayer`),
            ``mode`` (``"scale"``, ``"weight_norm"`` or ``"full"``) and the
            base layer's (``name``, ``dtype``).

    Input shape ``(batch, ...)`` of integers, output
    ``(batch, ..., output_dim)``.

    Example:

    >>> net = keras.Sequential([
    ...     keras.Input((20,), dtype="int32"),
    ...     bbh_tf.HyperEmbedding(1000, 16, mask_zero=True),
    ...     keras.layers.GlobalAveragePooling1D(),
    ...     bbh_tf.HyperDense(2, activation="softmax"),
    ... ])
    """

    def _linear(self, inputs, kernel):
        return tf.gather(kernel, self._indices(inputs))

    def _per_draw(self, inputs, kernel, bias, shared):
        draws = tf.shape(kernel)[0]
        if shared:
            inputs = repeat_for_draws(inputs, draws)
        tables = tf.reshape(kernel, (-1,) + self.kernel_shape)
        # Each draw's rows look up its own table.
        indices = tf.reshape(self._indices(inputs), tf.stack([draws, -1]))
        outputs = tf.gather(tables, indices, batch_dims=1)
        return tf.reshape(
            outputs, tf.concat([tf.shape(inputs), [self.output_dim]], axis=0)
        )
