"""Training and evaluation with checks: a step that skips non-finite
updates (``bbh_tf.guard``), and ``fit``, ``evaluate`` and ``predict`` that
check their data first (``bbh_tf.validation``)."""

import inspect

import keras
import tensorflow as tf

from bbh_tf import guard, validation


class GuardedFit:
    """Mixin of ``PredictiveModel`` (before ``keras.Model`` in its bases).

    Needs ``max_non_finite_steps``, ``non_finite_tracker`` and
    ``_training_only_logs`` from the model.
    """

    def _prepare_fit(self, arguments):
        """Build before ``fit`` where the data's shape can be read off."""
        if not self.built:
            shape = validation.input_shape_of(arguments.get("x"))
            if shape is not None:
                with self.distribute_strategy.scope():
                    self.build(shape)

    def train_step(self, data):
        """Keras' standard step (the compiled loss), skipped if not finite."""
        x, y, sample_weight = validation.unpack(data)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            loss, y_pred = self._training_loss(x, y, sample_weight)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync

        def record():
            self._loss_tracker.update_state(
                loss * replicas, sample_weight=tf.shape(x)[0]
            )
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        return self._guarded_update(
            [loss], [(self.optimizer, gradients, variables)], record
        )

    def _training_loss(self, x, y, sample_weight):
        """The compiled loss of a training pass and the predictions the
        metrics see."""
        y_pred = self(x, training=True)
        loss = self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        return loss, y_pred

    def _guarded_update(self, losses, updates, record):
        """Apply ``updates`` (``(optimizer, gradients, variables)`` triples)
        and run ``record()`` (the metric updates) only if ``losses`` and all
        gradients are finite; count the step otherwise. Returns the logs.

        Under mixed precision the gradients of a ``LossScaleOptimizer`` are
        left to it: it skips an overflowing step itself and lowers its scale.
        """
        applied = []
        for optimizer, gradients, variables in updates:
            if not optimizer.built:
                # Here, not in a branch of the condition below.
                optimizer.build(variables)
            pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
            if pairs:
                applied.append((optimizer, *map(list, zip(*pairs))))
        gradient_lists = [gradients for _, gradients, _ in applied]
        # A loss-scaling optimizer (mixed precision) checks its own gradients:
        # their overflow is how it learns to lower its scale.
        checked = [
            g
            for (optimizer, gradients, _) in applied
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            for g in gradients
        ]
        finite = guard.all_finite(list(losses) + checked)

        def apply(*gradient_lists):
            for (optimizer, _, variables), gradients in zip(applied, gradient_lists):
                optimizer.apply_gradients(zip(gradients, variables))

        guard.apply_if(finite, apply, *gradient_lists)
        self.non_finite_tracker.update_state(finite)
        guard.run_if(finite, record)
        return self.get_metrics_result()

    def test_step(self, data):
        validation.unpack(data)  # one input, one output
        return self._evaluation_logs(super().test_step(data))

    def _evaluation_logs(self, logs):
        """``logs`` without what only training updates."""
        return {k: v for k, v in logs.items() if k not in self._training_only_logs}

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``; stops with a ``FloatingPointError`` after
        more than ``max_non_finite_steps`` consecutive non-finite steps.

        Takes the same arguments.
        """
        arguments = _bound_arguments(keras.Model.fit, self, args, kwargs)
        validation.fit_inputs(self, arguments)
        self._prepare_fit(arguments)
        validation.fit_data(self, arguments)
        arguments["callbacks"] = list(arguments.get("callbacks") or []) + (
            self._fit_callbacks()
        )
        return super().fit(**arguments)

    def _fit_callbacks(self):
        """Callbacks ``fit`` appends to the user's (which run first)."""
        return [
            guard.StopOnNonFiniteSteps(
                self.non_finite_tracker, self.max_non_finite_steps
            )
        ]

    def evaluate(self, *args, **kwargs):
        """``keras.Model.evaluate``, its array data checked first (see
        ``bbh_tf.validation``). Takes the same arguments."""
        arguments = _bound_arguments(keras.Model.evaluate, self, args, kwargs)
        validation.batch_size(arguments.get("batch_size"))
        if validation.is_array(arguments.get("x")) and not self.built:
            self.build(
                validation.inputs(arguments["x"], None, dtype=self.input_dtype_).shape
            )
        validation.data(
            self, arguments.get("x"), arguments.get("y"), arguments.get("sample_weight")
        )
        return super().evaluate(**arguments)

    def predict(self, *args, **kwargs):
        """``keras.Model.predict`` (one weight draw per batch), its array
        data checked first. Takes the same arguments."""
        arguments = _bound_arguments(keras.Model.predict, self, args, kwargs)
        validation.batch_size(arguments.get("batch_size"))
        validation.data(self, arguments.get("x"))
        return super().predict(**arguments)


def _bound_arguments(method, model, args, kwargs):
    """``method``'s arguments as a dict of name -> value (``self`` dropped)."""
    arguments = inspect.signature(method).bind(model, *args, **kwargs).arguments
    arguments.pop("self")
    extra = arguments.pop("kwargs", None)
    if extra:
        arguments.update(extra)
    return arguments
