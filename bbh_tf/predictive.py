"""``PredictiveModel``: a Keras network with Monte Carlo predictions.

The common base of ``BayesByHypernet`` and the baselines: it wraps a Keras
network, builds from an input shape (recorded so ``.keras`` files rebuild on
load), gives ``predict_distribution`` (mean and std over weight draws,
vectorised by tiling the batch once per draw) and a training step that skips
non-finite updates (``bbh_tf.guard``).
"""

import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import _checks, guard, saving, validation
from bbh_tf._version import __version__
from bbh_tf.layers import repeat_for_draws
from bbh_tf.likelihoods import Likelihood


def scale_for_replicas(value):
    """Divide a per-replica loss so the summed gradients are a mean."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


def deserialize(value):
    """A Keras object from its serialized config, or ``value`` unchanged."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


class Prediction(tuple):
    """What ``predict_distribution`` returns: unpacks as ``(mean, std)``.

    Attributes:
        mean, std: The predictive mean and standard deviation, numpy float32
            arrays ``(n, ...)``. For a model compiled with a likelihood loss
            (``bbh_tf.GaussianLikelihood``...) they are those of the targets,
            the total over draws and noise; otherwise those of the network's
            outputs over draws.
        aleatoric_std: With a likelihood, the std of the noise alone
            (``sqrt(E[noise variance])``); None otherwise.
        epistemic_std: With a likelihood, the std of the mean over weight
            draws; None otherwise. ``std**2 == aleatoric_std**2 +
            epistemic_std**2``.
    """

    def __new__(cls, mean, std, aleatoric_std=None, epistemic_std=None):
        prediction = super().__new__(cls, (mean, std))
        prediction.aleatoric_std = aleatoric_std
        prediction.epistemic_std = epistemic_std
        return prediction

    mean = property(lambda self: self[0])
    std = property(lambda self: self[1])


class PredictiveModel(keras.Model):
    """Base class: wraps ``network`` and predicts by Monte Carlo.

    Subclasses say how one pass over rows laid out as ``num_draws`` equal,
    contiguous groups is computed (``_sample_rows``), and may add state in
    ``_build_extra``.

    A training step whose loss or gradients are not finite is skipped: no
    weight and no optimizer state changes (``bbh_tf.guard``); ``fit`` logs
    the skipped steps as ``non_finite_steps``.

    Args:
        network: A Keras model or layer with one input.
        max_non_finite_steps: How many consecutive non-finite steps ``fit``
            skips before it stops with a ``FloatingPointError`` (the weights
            then those before the first of them), >= 0. Default 10.
    """

    # Logs of training only, dropped from ``evaluate``'s.
    _training_only_logs = ("non_finite_steps",)

    def __init__(self, network, max_non_finite_steps=10, **kwargs):
        super().__init__(**kwargs)
        self.max_non_finite_steps = _checks.non_negative_int(
            "max_non_finite_steps", max_non_finite_steps
        )
        self.non_finite_tracker = guard.NonFiniteSteps()
        network = deserialize(network)
        if not isinstance(network, keras.layers.Layer):
            raise TypeError(
                "`network` must be a Keras model or layer, got "
                f"{type(network).__name__}."
            )
        self.network = network
        self.input_shape_ = None

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if self.built:
            return
        input_shape = (None,) + tuple(input_shape)[1:]
        if not self.network.built:
            # A symbolic call builds every sub-layer, whatever kind of model.
            self.network(keras.KerasTensor(input_shape))
        self._build_extra(input_shape)
        self.input_shape_ = input_shape
        self.built = True

    def _build_extra(self, input_shape):
        """Build what the subclass adds to the network."""

    def _layers_of_type(self, types):
        """The layers of ``network`` (itself included) that are ``types``,
        each listed once, in the network's order."""
        return [
            layer
            for layer in self.network._flatten_layers(include_self=True)
            if isinstance(layer, types)
        ]

    def get_build_config(self):
        return {"input_shape": list(self.input_shape_ or ())}

    def build_from_config(self, config):
        if config.get("input_shape"):
            self.build(tuple(config["input_shape"]))

    # -------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def _sample_rows(self, rows, num_draws, **kwargs):
        """Outputs for ``rows`` laid out as ``num_draws`` equal groups."""
        return self.network(rows, training=False)

    def sample_predictions(self, inputs, num_samples, **kwargs):
        """Outputs for ``num_samples`` draws: ``(num_samples, batch, ...)``.

        All draws run in one vectorised pass (see :meth:`_sample_batch`).
        """
        inputs = tf.cast(tf.convert_to_tensor(inputs), self.compute_dtype)
        outputs = self._sample_batch(inputs, num_samples, **kwargs)
        return tf.reshape(
            outputs,
            tf.concat([[num_samples, tf.shape(inputs)[0]], tf.shape(outputs)[1:]], 0),
        )

    def _sample_batch(self, inputs, num_samples, **kwargs):
        """Outputs ``(num_samples * batch, ...)`` for a batch, rows of draw
        ``d`` at ``[d * batch, (d + 1) * batch)``: the batch tiled once per
        draw through :meth:`_sample_rows`."""
        return self._sample_rows(
            repeat_for_draws(inputs, num_samples), num_samples, **kwargs
        )

    # ------------------------------------------------------------ inference
    def predict_distribution(self, x, num_samples=100, batch_size=128):
        """Mean and standard deviation of the predictions over weight draws.

        Args:
            x: Inputs, an array of shape ``(n,) + input_shape[1:]``, finite.
            num_samples: Weight draws, >= 1. Default 100.
            batch_size: Examples per vectorised pass (each pass evaluates
                ``batch_size * num_samples`` rows). Default 128.

        Returns:
            A :class:`Prediction`, which unpacks as ``(mean, std)``: numpy
            float32 arrays ``(n, ...)``. For a model compiled with a
            ``bbh_tf`` likelihood loss these are the targets' predictive
            mean and total std, split in ``aleatoric_std`` and
            ``epistemic_std``; otherwise the mean and std of the network's
            outputs.
        """
        parts = self._predict_batches("moments", x, num_samples, batch_size)
        return Prediction(*(np.concatenate(part) for part in parts))

    def predict_samples(self, x, num_samples=100, batch_size=128):
        """The outputs of every weight draw, for metrics that need them
        (mutual information, ``bbh_tf.metrics``).

        Takes the arguments of :meth:`predict_distribution`. Within one batch
        of ``batch_size`` examples, all examples share each draw.

        Returns:
            A numpy float32 array ``(num_samples, n, ...)``.
        """
        (samples,) = self._predict_batches("samples", x, num_samples, batch_size)
        return np.concatenate(samples, axis=1)

    def _predict_batches(self, kind, x, num_samples, batch_size):
        """Per-batch numpy results of ``kind`` ("moments" or "samples"),
        one list per returned tensor. Draws beyond what one pass may hold
        (``_PASS_VALUES`` input values) run in several passes, their results
        joined (samples) or pooled (moments)."""
        num_samples = _checks.positive_int("num_samples", num_samples)
        batch_size = _checks.positive_int("batch_size", batch_size)
        x = validation.inputs(x, self.input_shape_)
        if not self.built:
            self.build(x.shape)
        per_pass = draws_per_pass(num_samples, batch_size, x.shape[1:])
        passes = [per_pass] * (num_samples // per_pass)
        if num_samples % per_pass:
            passes.append(num_samples % per_pass)
        results = None
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            parts = [
                [t.numpy() for t in self._predict_function(kind, draws)(batch)]
                for draws in passes
            ]
            if kind == "samples":
                outputs = [np.concatenate(p, axis=0) for p in zip(*parts)]
            else:
                outputs = pooled_moments(parts, passes)
            if results is None:
                results = [[] for _ in outputs]
            for result, output in zip(results, outputs):
                result.append(output)
        return results

    def _predict_function(self, kind, num_samples):
        """The traced ``_samples`` or ``_moments`` for ``num_samples`` draws."""
        # The likelihood is read when tracing: a new compile, a new function.
        key = (kind, num_samples, id(self.likelihood))
        function = self._predict_functions.get(key)
        if function is None:
            function = tf.function(
                functools.partial(getattr(self, "_" + kind), num_samples=num_samples),
                reduce_retracing=True,
            )
            self._predict_functions[key] = function
        return function

    @property
    def _predict_functions(self):
        # A plain dict kept out of Keras' attribute tracking.
        cache = self.__dict__.get("_predict_function_cache")
        if cache is None:
            cache = {}
            self.__dict__["_predict_function_cache"] = cache
        return cache

    # Results in float32 whatever the compute dtype (mixed precision).
    def _samples(self, batch, num_samples):
        return (tf.cast(self.sample_predictions(batch, num_samples), tf.float32),)

    def _moments(self, batch, num_samples):
        samples = tf.cast(self.sample_predictions(batch, num_samples), tf.float32)
        return self._moments_of(samples)

    def _moments_of(self, samples):
        """``(mean, std)`` of ``samples`` ``(draws, batch, ...)``, or with a
        likelihood ``(mean, std, aleatoric_std, epistemic_std)`` of the
        targets."""
        if self.likelihood is not None:
            return self.likelihood.predictive_moments(samples)
        mean = tf.reduce_mean(samples, axis=0)
        std = tf.sqrt(tf.reduce_mean(tf.square(samples - mean), axis=0))
        return mean, std

    @property
    def likelihood(self):
        """The compiled loss if it is a ``bbh_tf`` likelihood, else None."""
        loss = getattr(self, "loss", None)
        return loss if isinstance(loss, Likelihood) else None

    # -------------------------------------------------------------- training
    def _prepare_fit(self, arguments):
        """Build before ``fit`` where the data's shape can be read off."""
        if not self.built:
            shape = validation.input_shape_of(arguments.get("x"))
            if shape is not None:
                with self.distribute_strategy.scope():
                    self.build(shape)

    def train_step(self, data):
        """Keras' standard step (the compiled loss), skipped if not finite."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
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
            self.build(validation.inputs(arguments["x"], None).shape)
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

    @property
    def output_shape_(self):
        """The network's output shape for ``input_shape_``, or None when not
        built or not computable."""
        if self.input_shape_ is None:
            return None
        cached = self.__dict__.get("_output_shape_cache")
        if cached is None:
            try:
                cached = tuple(self.network.compute_output_shape(self.input_shape_))
            except Exception:  # A network that cannot say: skip the checks.
                return None
            self.__dict__["_output_shape_cache"] = cached
        return cached

    # ------------------------------------------------- multi-worker training
    # Keras 3.15's fit and evaluate fail under MultiWorkerMirroredStrategy
    # (keras-team/keras#20585) in two places; these overrides replace just
    # those, and only in multi-worker mode. Everything else (data sharding,
    # variable mirroring, gradient all-reduce) is TensorFlow's own.

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
        if not is_multi_worker(self.distribute_strategy):
            return super().make_train_function(force)
        if self.train_function is None or force:
            self.train_function = self._multi_worker_function(self.train_step)
        return self.train_function

    def make_test_function(self, force=False):
        if not is_multi_worker(self.distribute_strategy):
            return super().make_test_function(force)
        if self.test_function is None or force:
            self.test_function = self._multi_worker_function(self.test_step)
        return self.test_function

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

    def get_config(self):
        config = super().get_config()
        config["network"] = self.network
        config["max_non_finite_steps"] = self.max_non_finite_steps
        config["bbh_tf_version"] = __version__
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuild from ``get_config``'s dict; a config written by a newer
        bbh_tf, or naming a class that cannot be loaded, is refused with the
        cause first."""
        config = dict(config)
        saving.check_version(config.pop("bbh_tf_version", None), __version__, "bbh_tf")
        try:
            return cls(**config)
        except TypeError as error:
            raise ValueError(
                f"{cls.__name__} could not be rebuilt from its config: "
                f"{saving.root_cause(error)}"
            ) from error


# Most input values one vectorised prediction pass holds (draws x batch rows
# x values per row); beyond it the draws are split across passes, which also
# keeps every row index far inside int32.
_PASS_VALUES = 2**26


def draws_per_pass(num_samples, batch_size, row_shape):
    """How many of ``num_samples`` draws one pass over ``batch_size`` rows of
    ``row_shape`` runs."""
    row = max(1, int(np.prod(row_shape)))
    return max(1, min(num_samples, _PASS_VALUES // (batch_size * row)))


def pooled_moments(parts, counts):
    """The moments of all draws from per-pass moments ``parts`` (each
    ``(mean, std)`` or ``(mean, std, aleatoric_std, epistemic_std)``) of
    ``counts`` draws each."""
    if len(parts) == 1:
        return parts[0]
    weights = np.asarray(counts, np.float64) / sum(counts)

    def average(values):
        return sum(w * v.astype(np.float64) for w, v in zip(weights, values))

    means = [p[0] for p in parts]
    mean = average(means)

    def pooled_std(stds):
        second = average(
            [
                s.astype(np.float64) ** 2 + m.astype(np.float64) ** 2
                for s, m in zip(stds, means)
            ]
        )
        return np.sqrt(np.maximum(second - mean**2, 0.0))

    pooled = [mean, pooled_std([p[1] for p in parts])]
    if len(parts[0]) == 4:
        pooled.append(np.sqrt(average([p[2].astype(np.float64) ** 2 for p in parts])))
        pooled.append(pooled_std([p[3] for p in parts]))
    return [v.astype(np.float32) for v in pooled]


def _bound_arguments(method, model, args, kwargs):
    """``method``'s arguments as a dict of name -> value (``self`` dropped)."""
    arguments = inspect.signature(method).bind(model, *args, **kwargs).arguments
    arguments.pop("self")
    extra = arguments.pop("kwargs", None)
    if extra:
        arguments.update(extra)
    return arguments


def is_multi_worker(strategy):
    """Whether ``strategy`` spans several workers (processes or machines)."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


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
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._build_on_first_trace(x)
        return self._model_update(x, y, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
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
        config.update({"num_examples": self.num_examples, "kl_weight": self.kl_weight})
        return config
