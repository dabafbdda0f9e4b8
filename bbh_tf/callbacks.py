"""Callbacks for ``BayesByHypernet``.

``DiscriminatorFollowsLearningRate`` (added by ``fit`` itself): Keras'
learning-rate callbacks (``LearningRateScheduler``, ``ReduceLROnPlateau``)
change ``model.optimizer`` only; this one moves the KL estimator's optimizer
(the adversarial estimator's discriminator) by the same factor and logs both
rates. ``PosteriorHealth`` (yours to add): logs the posterior's spread per
layer and warns when it collapses.
"""

import warnings

import keras
import numpy as np

from bbh_tf import _checks


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


@keras.saving.register_keras_serializable(package="bbh_tf")
class PosteriorHealth(keras.callbacks.Callback):
    """Logs how spread out the posterior is, and warns once if it collapses.

    At the end of every epoch it draws ``num_draws`` joint samples of the
    generated values and adds to the epoch's logs, per hyper layer,
    ``<layer name>_spread``: the median over the layer's values of their
    standard deviation across draws. Beside the ``kl`` (and, for the
    adversarial estimator, ``discriminator_accuracy``) that ``fit`` logs
    anyway, it tells whether the posterior still carries uncertainty. A
    layer whose spread falls below ``collapse_ratio`` times the median
    absolute value of its values gets one warning: its posterior has
    collapsed to (nearly) a point estimate.

    Put it before ``TensorBoard`` or ``CSVLogger`` in ``callbacks`` so they
    record its logs.

    Args:
        num_draws: Draws per check, >= 2. Default 64.
        collapse_ratio: Relative spread below which a warning is given, >= 0.
            Default 1e-3.

    Example:

    >>> model.fit(x, y, epochs=10, callbacks=[bbh_tf.callbacks.PosteriorHealth(),
    ...                                       keras.callbacks.CSVLogger("log.csv")])
    """

    def __init__(self, num_draws=64, collapse_ratio=1e-3):
        super().__init__()
        self.num_draws = _checks.positive_int("num_draws", num_draws)
        if self.num_draws < 2:
            raise ValueError(f"`num_draws` must be an integer >= 2, got {num_draws}.")
        self.collapse_ratio = _checks.non_negative_float(
            "collapse_ratio", collapse_ratio
        )
        self.warned = set()

    def spreads(self):
        """``{layer name: (spread, median |value|)}`` of the model's hyper
        layers, from ``num_draws`` fresh joint draws."""
        result = {}
        for group, draws in zip(self.model._groups, self.model.draw(self.num_draws)):
            for layer, values in group.split(draws.values).items():
                flat = np.reshape(
                    keras.ops.convert_to_numpy(values), (self.num_draws, -1)
                )
                flat = flat[:, : layer.num_generated]
                # Two layers of one name (a Bidirectional wrapper's cells)
                # are told apart by a suffix.
                name, copy = layer.name, 1
                while name in result:
                    copy += 1
                    name = f"{layer.name}_{copy}"
                result[name] = (
                    float(np.median(flat.std(axis=0))),
                    float(np.median(np.abs(flat))),
                )
        return result

    def on_epoch_end(self, epoch, logs=None):
        for name, (spread, size) in self.spreads().items():
            if logs is not None:
                logs[f"{name}_spread"] = spread
            if spread < self.collapse_ratio * size and name not in self.warned:
                self.warned.add(name)
                warnings.warn(
                    f"PosteriorHealth: the posterior of layer {name!r} has "
                    f"collapsed (spread {spread:.3g} across draws against values "
                    f"of size {size:.3g}): it is nearly a point estimate. With "
                    "the adversarial estimator its discriminator may have lost "
                    "track (raise `steps` or its learning rate).",
                    stacklevel=2,
                )

    def get_config(self):
        return {"num_draws": self.num_draws, "collapse_ratio": self.collapse_ratio}
