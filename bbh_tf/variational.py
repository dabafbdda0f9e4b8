"""``VariationalModel``: the base of the models trained on
``data loss + kl_weight * KL / N`` (``BayesByHypernet``, ``BayesByBackprop``)."""

import keras
import tensorflow as tf

from bbh_tf import _checks, validation
from bbh_tf.predictive import PredictiveModel, deserialize, scale_for_replicas


class VariationalModel(PredictiveModel):
    """Base class of models trained on ``data loss + kl_weight * KL / N``.

    Subclasses give the forward pass and its KL estimate
    (``_forward_and_kl``); this class makes the model update, logs ``loss``,
    ``nll`` and ``kl`` and handles the replica scaling.

    Args:
        network: A Keras model or layer with one input.
        num_examples: Size of the training set (required): the KL term is
            counted once per dataset, so per example it is ``KL / N``.
        kl_weight: Multiplier of the KL term: a float >= 0 or a
            ``keras.optimizers.schedules.LearningRateSchedule`` of the
            optimizer's step (annealing). Default 1.0.
    """

    def __init__(self, network, num_examples=None, kl_weight=1.0, **kwargs):
        super().__init__(network, **kwargs)
        if num_examples is None:
            raise ValueError(
                "`num_examples` is required: the size of the training set, "
                "used to scale the KL term per example (KL / num_examples)."
            )
        self.num_examples = _checks.positive_int("num_examples", num_examples)
        kl_weight = deserialize(kl_weight)
        if isinstance(kl_weight, keras.optimizers.schedules.LearningRateSchedule):
            self.kl_weight = kl_weight
        else:
            self.kl_weight = _checks.non_negative_float("kl_weight", kl_weight)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def _forward_and_kl(self, x, training):
        """``(y_pred, kl)``: predictions for ``x`` and the KL estimate (nats)."""
        raise NotImplementedError

    def _current_kl_weight(self):
        if isinstance(self.kl_weight, float):
            return self.kl_weight
        return tf.cast(self.kl_weight(self.optimizer.iterations), tf.float32)

    def _step_losses(self, x, y, sample_weight, training):
        y_pred, kl = self._forward_and_kl(x, training)
        loss, data_loss = self._loss_terms(x, y, y_pred, sample_weight, kl, training)
        return y_pred, loss, data_loss, kl

    def _loss_terms(self, x, y, y_pred, sample_weight, kl, training):
        """``(loss, data_loss)`` of predictions ``y_pred`` with KL ``kl``."""
        # Compiled loss (already divided by the replica count) + regularizers.
        data_loss = self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        kl_term = self._current_kl_weight() * kl / self.num_examples
        return data_loss + scale_for_replicas(kl_term), data_loss

    def _update_trackers(self, loss, data_loss, kl, batch):
        unscale = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(loss * unscale, sample_weight=batch)
        self.nll_tracker.update_state(data_loss * unscale, sample_weight=batch)
        self.kl_tracker.update_state(kl)

    def _build_on_first_trace(self, x):
        # Data whose shape fit could not read beforehand (generators,
        # PyDataset), or evaluate before any fit: build on the first trace.
        if not self.built:
            self.build(x.shape)

    def _model_update(self, x, y, sample_weight):
        """One optimizer step on the network's weights, skipped if not
        finite; returns the logs."""
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            y_pred, loss, data_loss, kl = self._step_losses(
                x, y, sample_weight, training=True
            )
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)

        def record():
            self._update_trackers(loss, data_loss, kl, tf.shape(x)[0])
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        return self._guarded_update(
            [loss], [(self.optimizer, gradients, variables)], record
        )

    def train_step(self, data):
        x, y, sample_weight = validation.unpack(data)
        self._build_on_first_trace(x)
        return self._model_update(x, y, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = validation.unpack(data)
        self._build_on_first_trace(x)
        y_pred, loss, data_loss, kl = self._step_losses(
            x, y, sample_weight, training=False
        )
        self._update_trackers(loss, data_loss, kl, tf.shape(x)[0])
        return self._evaluation_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_examples": self.num_examples,
                "kl_weight": keras.saving.serialize_keras_object(self.kl_weight),
            }
        )
        return config
