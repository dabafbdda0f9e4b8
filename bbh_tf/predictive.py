"""``PredictiveModel``: a Keras network with Monte Carlo predictions.

The common base of ``BayesByHypernet`` and the baselines: it wraps a Keras
network, builds from an input shape (recorded so ``.keras`` files rebuild on
load) and gives ``predict_distribution`` (mean and std over weight draws,
vectorised by tiling the batch once per draw). Its training step and checked
``fit``/``evaluate``/``predict`` come from ``bbh_tf.training``, multi-worker
support from ``bbh_tf.multi_worker``, the models trained on a KL term derive
from ``bbh_tf.variational.VariationalModel``.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import _checks, batches, guard, saving
from bbh_tf._version import __version__
from bbh_tf.layers import repeat_for_draws
from bbh_tf.likelihoods import Likelihood
from bbh_tf.multi_worker import MultiWorkerFit
from bbh_tf.prediction import Prediction, evaluation_metrics, joined, pass_sizes
from bbh_tf.training import GuardedFit


def scale_for_replicas(value):
    """Divide a per-replica loss so the summed gradients are a mean."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


def deserialize(value):
    """A Keras object from its serialized config, or ``value`` unchanged."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


class PredictiveModel(GuardedFit, MultiWorkerFit, keras.Model):
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
            self.network(keras.KerasTensor(input_shape, dtype=self.input_dtype_))
        self._build_extra(input_shape)
        self.input_shape_ = input_shape
        self.built = True

    @property
    def input_dtype_(self):
        """The network's ``keras.Input`` dtype (int32 for token ids), else float32."""
        try:
            inputs = self.network.inputs
        except (AttributeError, ValueError):
            inputs = None
        if inputs and len(inputs) == 1:
            return keras.backend.standardize_dtype(inputs[0].dtype)
        return "float32"

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

    def _require_layers(self, layers, what):
        """Refuse a network without ``layers``: ``what`` says which and why."""
        if not layers:
            raise ValueError(f"`network` contains no {what}.")

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

    def _network_input(self, inputs):
        """``inputs`` as a tensor, floats in the compute dtype (ids stay ints)."""
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype.is_floating:
            inputs = tf.cast(inputs, self.compute_dtype)
        return inputs

    def sample_predictions(self, inputs, num_samples, **kwargs):
        """Outputs for ``num_samples`` draws: ``(num_samples, batch, ...)``.

        All draws run in one vectorised pass (see :meth:`_sample_batch`).
        """
        inputs = self._network_input(inputs)
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
            x: Inputs, finite: an array of shape ``(n,) + input_shape[1:]``
                (cut into batches of ``batch_size``), or what
                ``model.predict`` takes besides: a ``tf.data.Dataset``, a
                ``keras.utils.PyDataset`` or a generator of batches (``x``
                or ``(x, y, ...)`` elements; ``y`` is ignored), streamed.
            num_samples: Weight draws, >= 1. Default 100.
            batch_size: Examples per vectorised pass for arrays (each pass
                evaluates ``batch_size * num_samples`` rows). Default 128.

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
        of ``batch_size`` examples, all examples share each draw (with
        Bayes by Hypernet and an array, all batches do).

        Returns:
            A numpy float32 array ``(num_samples, n, ...)``.
        """
        (samples,) = self._predict_batches("samples", x, num_samples, batch_size)
        return np.concatenate(samples, axis=1)

    def evaluate_distribution(self, x, y=None, num_samples=100, batch_size=128):
        """Metrics of the Bayesian model average over ``num_samples`` draws.

        Keras' ``evaluate`` scores one weight draw per batch; this scores
        the predictive distribution itself. Takes ``x`` as
        :meth:`predict_distribution` does, with the targets in ``y`` (arrays)
        or in the elements (``(x, y)`` datasets and generators).

        Returns:
            A dict of floats. Classifiers (softmax outputs, sparse labels):
            ``accuracy``, ``nll``, ``brier`` and ``ece`` (15 bins) of the
            mean probabilities. Models compiled with a ``bbh_tf`` likelihood:
            ``rmse``, ``log_likelihood``, ``coverage_95`` and ``crps`` (in
            the targets' units, ``bbh_tf.metrics``).
        """
        num_samples = _checks.positive_int("num_samples", num_samples)
        batch_size = _checks.positive_int("batch_size", batch_size)
        kind = "samples" if self.likelihood is not None else "moments"
        outputs, targets = [], []
        for batch, labels in batches.iterate(
            x, self.input_shape_, batch_size, y=y, dtype=self.input_dtype_
        ):
            if labels is None:
                raise ValueError(
                    "`y` (or the (x, y) elements of `x`) must give the targets."
                )
            if not self.built:
                self.build(batch.shape)
            (first, *_) = self._predict_batches(kind, batch, num_samples, len(batch))
            outputs.append(first[0])
            targets.append(labels)
        axis = 1 if kind == "samples" else 0  # samples: (draws, n, ...)
        return evaluation_metrics(
            self.likelihood, np.concatenate(outputs, axis=axis), np.concatenate(targets)
        )

    def _predict_batches(self, kind, x, num_samples, batch_size):
        """Per-batch numpy results of ``kind`` ("moments" or "samples"),
        one list per returned tensor. Draws beyond what one pass may hold
        (``_PASS_VALUES`` input values) run in several passes, their results
        joined (samples) or pooled (moments)."""
        num_samples = _checks.positive_int("num_samples", num_samples)
        batch_size = _checks.positive_int("batch_size", batch_size)
        results = None
        for batch, _ in batches.iterate(
            x, self.input_shape_, batch_size, dtype=self.input_dtype_
        ):
            if not self.built:
                self.build(batch.shape)
            passes = pass_sizes(num_samples, len(batch), batch.shape[1:])
            parts = [
                [t.numpy() for t in self._predict_function(kind, draws)(batch)]
                for draws in passes
            ]
            outputs = joined(kind, parts, passes)
            if results is None:
                results = [[] for _ in outputs]
            for result, output in zip(results, outputs):
                result.append(output)
        return results

    def _predict_function(self, kind, num_samples):
        """The traced ``_samples`` or ``_moments`` for ``num_samples`` draws."""
        # The likelihood is read when tracing: a new compile, a new function.
        return self._traced(
            (kind, num_samples, id(self.likelihood)),
            functools.partial(getattr(self, "_" + kind), num_samples=num_samples),
            reduce_retracing=True,
        )

    def _traced(self, key, function, **kwargs):
        """``tf.function(function, **kwargs)``, made once per ``key`` and
        kept in a plain dict out of Keras' attribute tracking."""
        cache = self.__dict__.setdefault("_predict_function_cache", {})
        if key not in cache:
            cache[key] = tf.function(function, **kwargs)
        return cache[key]

    # Results in float32 whatever the compute dtype (mixed precision).
    def _samples(self, batch, num_samples, **kwargs):
        samples = self.sample_predictions(batch, num_samples, **kwargs)
        return (tf.cast(samples, tf.float32),)

    def _moments(self, batch, num_samples, **kwargs):
        samples = self.sample_predictions(batch, num_samples, **kwargs)
        samples = tf.cast(samples, tf.float32)
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

    def get_config(self):
        config = super().get_config()
        # Plain JSON: the network's serialized config.
        config["network"] = keras.saving.serialize_keras_object(self.network)
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
