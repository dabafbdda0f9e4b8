"""Baselines to compare Bayes by Hypernet against, on the same interface.

Every baseline is a :class:`PredictiveModel` wrapping a Keras network, so
``fit``, ``evaluate``, ``predict`` and ``predict_distribution`` work the same
way for all methods:

* :class:`MaximumLikelihood`: the plain network, trained by Keras' own
  ``train_step``; its predictive standard deviation is exactly zero.
* :class:`MCDropout`: MC dropout (Gal & Ghahramani, 2016): the network's
  ``Dropout`` layers stay on at prediction time.
* :class:`BayesByBackprop` with Bayes by Backprop layers: mean-field
  Gaussian variational inference (Blundell et al., 2015), in
  ``bbh_tf.bayes_by_backprop`` (re-exported here).
"""

import keras
import tensorflow as tf

from bbh_tf.bayes_by_backprop import BayesByBackprop
from bbh_tf.predictive import PredictiveModel

__all__ = [
    "BayesByBackprop",
    "MCDropout",
    "MaximumLikelihood",
]

# Layers that are random under ``training=True``: what MC dropout samples.
_DROPOUT_LAYERS = (
    keras.layers.Dropout,  # SpatialDropout1D/2D/3D subclass it.
    keras.layers.AlphaDropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
)


# ---------------------------------------------------------------------------
# Maximum likelihood
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="bbh_tf")
class MaximumLikelihood(PredictiveModel):
    """A deterministic network: maximum-likelihood (or MAP) training.

    Training is Keras' standard ``train_step`` with the compiled loss (add
    ``kernel_regularizer`` to the network's layers for MAP / weight decay).
    Dropout layers in the network act as regularizers during training only.

    ``predict_distribution`` returns the network's prediction (dropout off)
    as the mean and a standard deviation of exactly 0: the network is run
    once per batch, not once per draw.

    Args:
        network: A Keras model or layer with one input.

    Example:

    >>> net = keras.Sequential([keras.Input((784,)),
    ...     keras.layers.Dense(800, activation="relu"),
    ...     keras.layers.Dense(10, activation="softmax")])
    >>> model = bbh_tf.MaximumLikelihood(net)
    >>> model.compile(optimizer="adam",
    ...               loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x, y, batch_size=128, epochs=5)
    >>> mean, std = model.predict_distribution(x_test)   # std == 0
    """

    def sample_predictions(self, inputs, num_samples, **kwargs):
        """The deterministic output repeated: ``(num_samples, batch, ...)``.

        The network runs once; the draws are a broadcast of its output.
        """
        inputs = tf.cast(tf.convert_to_tensor(inputs), self.compute_dtype)
        outputs = self.network(inputs, training=False)
        shape = tf.concat([[num_samples], tf.shape(outputs)], axis=0)
        return tf.broadcast_to(outputs[None], shape)

    def _moments(self, batch, num_samples):
        outputs = tf.cast(self.network(batch, training=False), tf.float32)
        return self._moments_of(outputs[None])


# ---------------------------------------------------------------------------
# MC dropout
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="bbh_tf")
class MCDropout(PredictiveModel):
    """MC dropout: the network's dropout stays on at prediction time.

    The network holds ordinary ``keras.layers.Dropout(rate)`` layers (or
    ``SpatialDropout*``, ``AlphaDropout``, ``GaussianDropout``,
    ``GaussianNoise``); the dropout rate is those layers' ``rate`` argument.
    Training is Keras' standard ``train_step``.

    ``predict_distribution`` runs the network with ``training=True`` on the
    batch tiled once per draw, so every tiled row gets its own dropout mask:
    one vectorised pass gives all Monte Carlo samples. Calling the model, and
    so Keras' ``predict`` and ``evaluate``, stays deterministic (dropout off).

    ``training=True`` also switches ``BatchNormalization`` layers to the
    statistics of the (tiled) prediction batch, so predictions then depend on
    which examples share a batch. Their moving averages are restored after
    each pass: predicting never changes the model.

    Args:
        network: A Keras model or layer with one input, containing at least
            one dropout layer.

    Example:

    >>> net = keras.Sequential([keras.Input((784,)),
    ...     keras.layers.Dense(800, activation="relu"), keras.layers.Dropout(0.5),
    ...     keras.layers.Dense(10, activation="softmax")])
    >>> model = bbh_tf.MCDropout(net)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> model.fit(x, y, batch_size=128, epochs=5)
    >>> mean, std = model.predict_distribution(x_test, num_samples=100)
    """

    def _build_extra(self, input_shape):
        self._require_layers(
            self._layers_of_type(_DROPOUT_LAYERS),
            "dropout layers (keras.layers.Dropout, ...): MC dropout would "
            "predict with a standard deviation of 0. Add Dropout layers, or "
            "use MaximumLikelihood",
        )

    def _sample_rows(self, rows, num_draws, **kwargs):
        statistics = [
            variable
            for layer in self.network._flatten_layers(include_self=True)
            if isinstance(layer, keras.layers.BatchNormalization)
            for variable in layer.non_trainable_variables
        ]
        saved = [tf.identity(variable.value) for variable in statistics]
        outputs = self.network(rows, training=True)
        for variable, value in zip(statistics, saved):
            variable.assign(value)
        return outputs
