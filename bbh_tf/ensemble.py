"""``DeepEnsemble``: independently initialised copies of a network, trained
together (Lakshminarayanan et al., 2017), on the interface of every bbh_tf
model."""

import keras
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.predictive import PredictiveModel


@keras.saving.register_keras_serializable(package="bbh_tf")
class DeepEnsemble(PredictiveModel):
    """A deep ensemble: ``num_members`` copies of ``network``, each with its
    own initial weights, trained on the same batches in one step.

    ``network`` is the first member; the others are clones of it
    (``keras.models.clone_model``: same architecture, fresh weights). Each
    step evaluates every member on the batch and minimises the mean of their
    compiled losses, so each member follows its own loss's gradient.
    Calling the model, and so Keras' ``predict`` and ``evaluate``, gives the
    members' mean output; ``predict_distribution`` and ``predict_samples``
    give the spread between members (draw ``d`` is member ``d mod
    num_members``, so use a multiple of ``num_members`` draws, by default
    ``num_members`` itself).

    Args:
        network: A Keras model (Sequential or functional) with one input.
        num_members: Members, >= 2. Default 5.

    Example:

    >>> ensemble = bbh_tf.DeepEnsemble(net, num_members=5)
    >>> ensemble.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> ensemble.fit(x, y, epochs=5)
    >>> mean, std = ensemble.predict_distribution(x_test, num_samples=5)
    """

    def __init__(self, network, num_members=5, **kwargs):
        super().__init__(network, **kwargs)
        self.num_members = _checks.positive_int("num_members", num_members)
        if self.num_members < 2:
            raise ValueError(
                f"`num_members` must be an integer >= 2, got {num_members}."
            )
        if not isinstance(self.network, keras.Model):
            raise TypeError(
                "`network` must be a Keras model (Sequential or functional), "
                f"got {type(self.network).__name__}."
            )
        self.members = [self.network] + [
            keras.models.clone_model(self.network) for _ in range(num_members - 1)
        ]

    def build(self, input_shape):
        if self.built:
            return
        for member in self.members:
            if not member.built:
                member(
                    keras.KerasTensor(
                        (None,) + tuple(input_shape)[1:], dtype=self.input_dtype_
                    )
                )
        super().build(input_shape)

    def _outputs(self, inputs, training=None):
        """Every member's output ``(num_members, batch, ...)``."""
        return tf.stack([member(inputs, training=training) for member in self.members])

    def call(self, inputs, training=None):
        return tf.reduce_mean(self._outputs(inputs, training=training), axis=0)

    def sample_predictions(self, inputs, num_samples, **kwargs):
        """Draw ``d`` is member ``d mod num_members``: ``(num_samples, batch,
        ...)``. Each member runs once."""
        outputs = self._outputs(self._network_input(inputs), training=False)
        return tf.gather(outputs, tf.range(num_samples) % self.num_members)

    def _training_loss(self, x, y, sample_weight):
        outputs = self._outputs(x, training=True)
        members = self.num_members
        # All members' rows in one compiled loss (its mean is the mean of the
        # members' losses; regularizers counted once); the metrics see the
        # members' mean.
        flat = tf.reshape(outputs, tf.concat([[-1], tf.shape(outputs)[2:]], 0))
        loss = self._compute_loss(
            x=x,
            y=_repeat(y, members),
            y_pred=flat,
            sample_weight=_repeat(sample_weight, members),
            training=True,
        )
        return loss, tf.reduce_mean(outputs, axis=0)

    def get_config(self):
        return {**super().get_config(), "num_members": self.num_members}


def _repeat(tensor, times):
    """``tensor`` stacked ``times`` times along the batch axis (None stays)."""
    return None if tensor is None else tf.concat([tensor] * times, axis=0)
