"""The embedding arguments, shapes, mask and config shared by
``HyperEmbedding`` and ``BayesByBackpropEmbedding``."""

import keras
import tensorflow as tf

from bbh_tf import _checks


class EmbeddingLayer:
    """Mixin of an embedding table ``(input_dim, output_dim)`` in a linear
    layer's kernel slot, with Keras' ``Embedding`` arguments. The layer's
    base class (``LinearHyperLayer`` or ``BayesByBackpropLayer``) names
    its kernel initializer ``_initializer_argument`` and its kernel
    regularizer ``_regularizer_argument`` (None: it takes none)."""

    _initializer_argument = "kernel_initializer"
    _regularizer_argument = "kernel_regularizer"

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        mask_zero=False,
        **kwargs,
    ):
        kwargs[self._initializer_argument] = embeddings_initializer
        if self._regularizer_argument is not None:
            kwargs[self._regularizer_argument] = embeddings_regularizer
        elif embeddings_regularizer is not None:
            raise ValueError(
                f"{type(self).__name__} takes no `embeddings_regularizer` "
                "(its prior regularises the table)."
            )
        super().__init__(use_bias=False, **kwargs)
        self.input_dim = _checks.positive_int("input_dim", input_dim)
        self.output_dim = _checks.positive_int("output_dim", output_dim)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        self.kernel_shape = (self.input_dim, self.output_dim)
        self._build_parameters()

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return keras.ops.not_equal(inputs, 0)

    def _indices(self, inputs):
        """Integer inputs as they are (int64 ids above int32's range stay
        exact), anything else as int32."""
        return inputs if inputs.dtype.is_integer else tf.cast(inputs, "int32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config["embeddings_initializer"] = config.pop(self._initializer_argument)
        if self._regularizer_argument is not None:
            config["embeddings_regularizer"] = config.pop(self._regularizer_argument)
        # What a linear layer has and an embedding does not.
        for key in ("activation", "use_bias", "bias_initializer", "bias_regularizer"):
            config.pop(key, None)
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "mask_zero": self.mask_zero,
            }
        )
        return config
