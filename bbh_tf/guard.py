"""Non-finite training steps: skipped, counted, and ``fit`` stops after a run.

A step whose loss or gradients hold a NaN or an infinity is not applied:
no weight and no optimizer state (moments, iteration count) changes, and the
step's loss and metrics are not recorded. ``NonFiniteSteps`` counts such
steps (logged as ``non_finite_steps``, per epoch) and the current run of
them; ``StopOnNonFiniteSteps`` ends ``fit`` with a ``FloatingPointError``
once the run is longer than the model's ``max_non_finite_steps``. The
weights are then those from before the first step of the run.

Works under ``tf.function``, XLA and distribution strategies: the replicas
agree on one verdict (an all-reduce of the flag), so either every replica
applies its update or none does.
"""

import keras
import tensorflow as tf


def all_finite(tensors):
    """Whether every tensor of ``tensors`` (None entries ignored) is finite
    on every replica: a scalar bool tensor."""
    # One sum per tensor: a NaN or an infinity anywhere makes it non-finite,
    # in one pass over each gradient (``is_finite`` then ``reduce_all`` is
    # two, and writes a mask as large as the gradient). A finite tensor
    # whose sum overflows float32 (beyond 3e38) counts as non-finite too.
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors if t is not None]
    finite = tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        bad = context.all_reduce("SUM", 1.0 - tf.cast(finite, tf.float32))
        finite = tf.equal(bad, 0.0)
    return finite


def run_if(finite, function):
    """Run ``function()`` only when ``finite`` (a bool tensor). In a replica
    context nothing inside may need a cross-replica ``merge_call`` (metric
    updates are fine)."""
    tf.cond(finite, lambda: _returning_none(function), lambda: None)


def apply_if(finite, apply_gradients, *gradient_lists):
    """``apply_gradients(*gradient_lists)`` only when ``finite``.

    ``apply_gradients`` may call optimizers, which all-reduce the gradients
    across replicas. Strategies that need a cross-replica ``merge_call`` for
    that (MirroredStrategy on CPUs) get the condition in the cross-replica
    context, as Keras' ``LossScaleOptimizer`` does it: a ``cond`` in a
    replica context cannot hold a branch that calls ``merge_call``.
    """
    context = tf.distribute.get_replica_context()
    if (
        not tf.distribute.has_strategy()
        or context is None
        or tf.__internal__.distribute.strategy_supports_no_merge_call()
    ):
        run_if(finite, lambda: apply_gradients(*gradient_lists))
        return

    def cross_replica(distribution, finite, *gradient_lists):
        # Every replica holds the same verdict (``all_finite`` all-reduced it).
        verdict = distribution.experimental_local_results(finite)[0]
        run_if(
            verdict,
            lambda: distribution.extended.call_for_each_replica(
                apply_gradients, args=gradient_lists
            ),
        )

    context.merge_call(cross_replica, args=(finite, *gradient_lists))


def _returning_none(function):
    # ``cond`` branches must return the same structure: None on both sides.
    function()


@keras.saving.register_keras_serializable(package="bbh_tf")
class NonFiniteSteps(keras.metrics.Metric):
    """Counts training steps skipped for a non-finite loss or gradient.

    ``result()`` is the count since the last reset (Keras resets at each
    epoch: the ``non_finite_steps`` log); ``run`` holds the length of the
    current run of consecutive skipped steps, which an epoch boundary does
    not end (only a finite step or :meth:`reset_run` does).
    """

    def __init__(self, name="non_finite_steps", **kwargs):
        super().__init__(name=name, **kwargs)
        # Every replica holds the same value (the verdict is all-reduced).
        self.count, self.run = (
            self.add_variable(
                shape=(),
                initializer="zeros",
                dtype="int64",
                name=variable,
                aggregation="only_first_replica",
            )
            for variable in ("count", "run")
        )

    def update_state(self, finite):
        bad = tf.cast(tf.logical_not(finite), tf.int64)
        self.count.assign_add(bad)
        self.run.assign(bad * (self.run + 1))

    def result(self):
        return self.count

    def reset_state(self):
        self.count.assign(0)

    def reset_run(self):
        self.run.assign(0)


class StopOnNonFiniteSteps(keras.callbacks.Callback):
    """Stops ``fit`` with a ``FloatingPointError`` when more than ``limit``
    consecutive steps were skipped as non-finite. None of them was applied,
    so the weights are those before the run began."""

    def __init__(self, tracker, limit):
        super().__init__()
        self.tracker = tracker
        self.limit = limit

    def on_train_begin(self, logs=None):
        self.tracker.reset_run()

    def on_train_batch_end(self, batch, logs=None):
        run = int(self.tracker.run.numpy())
        if run > self.limit:
            self.model.stop_training = True
            raise FloatingPointError(
                f"{type(self.model).__name__}: {run} consecutive training "
                f"steps had a non-finite loss or gradient (the last at batch "
                f"{batch}); none was applied, so the weights are those before "
                "the first of them. Check the data for NaN/inf values, or "
                "lower the learning rate or kl_weight (the model's "
                f"max_non_finite_steps={self.limit} sets how many are skipped)."
            )
