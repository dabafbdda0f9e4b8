"""Callbacks ``BayesByHypernet.fit`` adds by itself.

``DiscriminatorFollowsLearningRate``: Keras' learning-rate callbacks
(``LearningRateScheduler``, ``ReduceLROnPlateau``) change ``model.optimizer``
only; this one moves the KL estimator's optimizer (the adversarial
estimator's discriminator) by the same factor and logs both rates.
"""

import keras
import numpy as np


def _rate(optimizer):
    """The optimizer's current learning rate as a float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _settable(optimizer):
    # A LearningRateSchedule given at compile time follows its own course.
    return not isinstance(
        optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule
    )


class DiscriminatorFollowsLearningRate(keras.callbacks.Callback):
    """Keeps ``discriminator_optimizer``'s learning rate at its starting value
    times the factor by which ``optimizer``'s has changed since ``fit``
    began, at every epoch's start and end (after the user's callbacks), and
    logs ``learning_rate`` and ``discriminator_learning_rate``."""

    def on_train_begin(self, logs=None):
        self.start = (
            _rate(self.model.optimizer),
            _rate(self.model.discriminator_optimizer),
        )

    def _follow(self):
        model_start, discriminator_start = self.start
        second = self.model.discriminator_optimizer
        if model_start > 0 and _settable(second):
            factor = _rate(self.model.optimizer) / model_start
            second.learning_rate = np.float32(discriminator_start * factor)

    def on_epoch_begin(self, epoch, logs=None):
        self._follow()

    def on_epoch_end(self, epoch, logs=None):
        self._follow()
        if logs is not None:
            logs["learning_rate"] = _rate(self.model.optimizer)
            logs["discriminator_learning_rate"] = _rate(
                self.model.discriminator_optimizer
            )
