"""Training across workers: Keras 3.15's ``fit`` and ``evaluate`` fail under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585) in two places; the
mixin here replaces just those, and only in multi-worker mode. Everything
else (data sharding, variable mirroring, gradient all-reduce) is
TensorFlow's own."""

import tensorflow as tf


def is_multi_worker(strategy):
    """Whether ``strategy`` spans several workers (processes or machines)."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


class MultiWorkerFit:
    """Mixin of ``PredictiveModel`` (before ``keras.Model`` in its bases)."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras mean-reduces the first distributed batch across workers to
        # read its shapes, which fails; one local replica's batch has them.
        strategy = self.distribute_strategy
        if iterator is not None and is_multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0],
                    next(batches),
                )
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def make_train_function(self, force=False):
        return self._step_function(
            "train_function", self.train_step, super().make_train_function, force
        )

    def make_test_function(self, force=False):
        return self._step_function(
            "test_function", self.test_step, super().make_test_function, force
        )

    def _step_function(self, attribute, step, keras_make, force):
        """Keras' own step function, or under multi-worker training ours."""
        if not is_multi_worker(self.distribute_strategy):
            return keras_make(force)
        if getattr(self, attribute) is None or force:
            setattr(self, attribute, self._multi_worker_function(step))
        return getattr(self, attribute)

    def _multi_worker_function(self, step):
        """Keras' step function, with the logs (scalars) averaged over all
        replicas; Keras reduces them over an axis 0 they do not have."""
        strategy = self.distribute_strategy

        def one_step(data):
            logs = strategy.run(step, args=(data,))
            # One all-reduce for all the logs rather than one each.
            flat = [tf.cast(v, tf.float32) for v in tf.nest.flatten(logs)]
            means = strategy.reduce("MEAN", tf.stack(flat), axis=None)
            return tf.nest.pack_sequence_as(logs, tf.unstack(means))

        if not self.run_eagerly:
            one_step = tf.function(
                one_step, reduce_retracing=True, jit_compile=self.jit_compile
            )

        def function(iterator):
            logs = None
            for _, data in zip(range(self.steps_per_execution), iterator):
                logs = one_step(data)
            if logs is None:
                raise StopIteration
            return logs

        return function
