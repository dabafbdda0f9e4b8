"""``BayesByHypernet``: variational inference with a hypernetwork posterior.

Each training step (``train_step``, traced by ``fit`` into a tf.function):

1. The KL estimator's own work before the update, if any (the adversarial
   estimator's extra discriminator updates).
2. One pass: the network runs on the batch with ``num_weight_samples``
   joint draws of every hypernetwork's values (the batch split across the
   draws: each example meets one draw), and the KL estimator estimates
   ``KL(q || p)`` from those same draws. The model minimises
   ``loss = data_loss + kl_weight * KL / num_examples`` (gradient to the
   hypernetworks, the conditional ``sigma`` and the point-estimate weights);
   an estimator with weights of its own (a discriminator) gets its loss's
   gradient from the same pass, applied by ``discriminator_optimizer``.
"""

import keras
import tensorflow as tf

from bbh_tf import _checks, batches, kl, sharing, validation
from bbh_tf.injection import injected_values
from bbh_tf.layers import HyperLayer
from bbh_tf.posterior import claim_hypernets, groups_of, shared_input_layer
from bbh_tf.prediction import joined, pass_sizes
from bbh_tf.predictive import deserialize, scale_for_replicas
from bbh_tf.priors import ScaleMixturePrior
from bbh_tf.second_optimizer import SecondOptimizer
from bbh_tf.variational import VariationalModel


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByHypernet(SecondOptimizer, VariationalModel):
    """A Bayesian network whose hyper layers share a hypernetwork posterior.

    Args:
        network: A Keras model (Sequential, functional or subclassed) with
            one input, containing hyper layers (``HyperDense``...). Hyper
            layers made without a ``hypernet`` share one default
            ``HyperNetwork`` in the model.
        prior: Diagonal prior on the generated values. Default
            ``ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=exp(-6))``.
        kl_estimator: How ``KL(q || p)`` is estimated: ``"semi_implicit"``
            (default), ``"nearest_neighbour"``, ``"adversarial"`` or a
            ``bbh_tf.kl.KLEstimator`` instance (see ``bbh_tf.kl``).
        num_examples: Size of the training set (required): the KL term is
            counted once per dataset, so per example it is ``KL / N``.
        num_weight_samples: Weight draws per training step, shared by the
            data term (the batch is split across them) and the KL estimate.
            Default 5, as in the authors' code.
        kl_weight: Multiplier of the KL term: a float >= 0 or a
            ``keras.optimizers.schedules.LearningRateSchedule`` of the
            model optimizer's step (annealing). Default 1.0.

    Calling the model runs the network with one joint weight draw for the
    whole batch. ``predict_distribution`` averages over many draws. ``fit``
    logs ``loss``, ``nll`` (the data term), ``kl`` (nats, whole training set)
    and what the estimator logs (``kl_estimator.log_names``).

    Example:

    >>> hypernet = bbh_tf.HyperNetwork()
    >>> net = keras.Sequential([keras.Input((784,)),
    ...     bbh_tf.HyperDense(800, activation="relu", hypernet=hypernet),
    ...     bbh_tf.HyperDense(10, activation="softmax", hypernet=hypernet)])
    >>> model = bbh_tf.BayesByHypernet(net, num_examples=60000)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x, y, batch_size=128, epochs=5)
    >>> mean, std = model.predict_distribution(x_test, num_samples=100)
    """

    def __init__(
        self,
        network,
        prior=None,
        kl_estimator="semi_implicit",
        num_examples=None,
        num_weight_samples=5,
        kl_weight=1.0,
        **kwargs,
    ):
        super().__init__(
            network, num_examples=num_examples, kl_weight=kl_weight, **kwargs
        )
        prior = ScaleMixturePrior() if prior is None else deserialize(prior)
        if not (
            hasattr(prior, "sample")
            and hasattr(prior, "log_prob")
            and hasattr(prior, "get_config")
        ):
            raise TypeError(
                "`prior` must be a bbh_tf prior such as ScaleMixturePrior or "
                f"GaussianPrior, got {type(prior).__name__}."
            )
        self.prior = prior
        self.kl_estimator = kl.get(kl_estimator)
        self.num_weight_samples = _checks.positive_int(
            "num_weight_samples", num_weight_samples
        )
        self.discriminator_optimizer = None
        self.estimator_trackers = [
            keras.metrics.Mean(name=name) for name in self.kl_estimator.log_names
        ]

    # ------------------------------------------------------------------ build
    @property
    def hyper_layers(self):
        """The hyper layers of ``network``, each listed once."""
        return self._layers_of_type(HyperLayer)

    @property
    def hypernets(self):
        """The distinct hypernetworks the hyper layers draw from."""
        return [group.hypernet for group in self._groups]

    @property
    def _groups(self):
        """The hyper layers grouped by hypernetwork (``HyperGroup``), for one
        hypernetwork call per group. Kept out of Keras' attribute tracking;
        valid once built."""
        groups = self.__dict__.get("_group_cache")
        if groups is None:
            groups = groups_of(self.hyper_layers)
            self.__dict__["_group_cache"] = groups
        return groups

    def _build_extra(self, input_shape):
        self._require_layers(
            self.hyper_layers,
            "hyper layers (HyperDense, ...): there is no posterior to learn",
        )
        # Layers given no hypernetwork share one: the first one's default.
        defaults = [layer for layer in self.hyper_layers if layer.default_hypernet]
        for layer in defaults[1:]:
            layer.share_hypernet(defaults[0].hypernet)
        sharing.merge_copies(self.hyper_layers)
        claim_hypernets(self.hypernets, self)
        self.kl_estimator.setup(self._groups, self.prior)

    # ---------------------------------------------------------- forward pass
    def _draw_noise(self, num_draws):
        """Fresh ``GroupNoise`` for ``num_draws`` draws, one per group."""
        return [group.sample_noise(num_draws) for group in self._groups]

    def draw(self, num_draws, noise=None):
        """``num_draws`` joint draws of the generated values: one ``Draws``
        (noise, conditional means, values) per group. ``noise``: optional
        ``GroupNoise`` per group (default fresh)."""
        noise = noise or self._draw_noise(num_draws)
        return [group.draw(n) for group, n in zip(self._groups, noise)]

    def _run_network(
        self,
        rows,
        num_draws,
        training=None,
        noise=None,
        shared_input_layer=None,
        values=None,
    ):
        """Network output for ``rows`` laid out as ``num_draws`` equal groups
        (or, with ``shared_input_layer``, one group that layer shares), and
        the draws used (None where ``values``, each group's generated values,
        were given)."""
        draws = None
        if values is None:
            draws = self.draw(num_draws, noise)
            values = [group_draws.values for group_draws in draws]
        per_layer = {}
        for group, group_values in zip(self._groups, values):
            per_layer.update(group.split(group_values))
        with injected_values(per_layer, shared_input_layer):
            outputs = self.network(rows, training=training)
        return outputs, draws

    def call(self, inputs, training=None):
        outputs, _ = self._run_network(inputs, 1, training=training)
        return outputs

    @property
    def _shared_input_layer(self):
        return shared_input_layer(self.network)

    def _sample_batch(self, inputs, num_samples, noise=None, values=None):
        """In a Sequential network the layers up to the first hyper layer see
        the batch once, and that layer expands it to one group per draw (in
        ``weight_norm`` mode its product with the direction ``V`` is
        computed once for all draws); other networks get the batch tiled
        once per draw. ``noise``: optional ``GroupNoise`` per group for
        ``num_samples`` draws; ``values``: instead, each group's generated
        values of ``num_samples`` draws."""
        first = self._shared_input_layer
        if first is None:
            return super()._sample_batch(
                inputs, num_samples, noise=noise, values=values
            )
        outputs, _ = self._run_network(
            inputs,
            num_samples,
            training=False,
            noise=noise,
            shared_input_layer=first,
            values=values,
        )
        return outputs

    def _sample_rows(self, rows, num_draws, noise=None, values=None):
        # ``noise``: the SavedModel export brings its own.
        outputs, _ = self._run_network(
            rows, num_draws, training=False, noise=noise, values=values
        )
        return outputs

    def _predict_batches(self, kind, x, num_samples, batch_size):
        """For an array, each pass's draws are generated once and shared by
        all batches (the hypernetwork runs once per pass, not once per
        batch: in ``full`` mode generating the weights costs more than
        using them); a dataset or generator, streamed, gets fresh draws
        per batch."""
        if not validation.is_array(x):
            return super()._predict_batches(kind, x, num_samples, batch_size)
        num_samples = _checks.positive_int("num_samples", num_samples)
        batch_size = _checks.positive_int("batch_size", batch_size)
        inputs = [
            batch
            for batch, _ in batches.iterate(
                x, self.input_shape_, batch_size, dtype=self.input_dtype_
            )
        ]
        if not inputs:
            return super()._predict_batches(kind, x, num_samples, batch_size)
        if not self.built:
            self.build(inputs[0].shape)
        passes = pass_sizes(num_samples, len(inputs[0]), inputs[0].shape[1:])
        parts = [[] for _ in inputs]
        for draws in passes:
            values = self._generation_function(draws)()
            function = self._predict_function(kind, draws)
            for part, batch in zip(parts, inputs):
                part.append([t.numpy() for t in function(batch, values=values)])
        results = [joined(kind, part, passes) for part in parts]
        return [list(result) for result in zip(*results)]

    def _generation_function(self, num_draws):
        """Traced: every group's generated values for ``num_draws`` fresh draws."""
        return self._traced(
            ("generated values", num_draws),
            lambda: [draws.values for draws in self.draw(num_draws)],
        )

    def _split_forward(self, x, training):
        """One pass with the batch split across ``num_weight_samples`` draws."""
        draws = self.num_weight_samples
        batch = tf.shape(x)[0]
        per_draw = (batch + draws - 1) // draws
        # Pad with repeated examples to equal groups; the padding is dropped.
        rows = tf.gather(x, tf.range(per_draw * draws) % batch)
        outputs, used = self._run_network(rows, draws, training=training)
        return outputs[:batch], used

    def sample_generated_values(self, num_draws):
        """Every used generated value for ``num_draws`` joint draws, groups
        side by side: ``(num_draws, total used)``. For inspecting ``q``."""
        return tf.concat(
            [
                group.used_values(d.values)
                for group, d in zip(self._groups, self.draw(num_draws))
            ],
            axis=1,
        )

    # -------------------------------------------------------------- the KL
    def kl_estimate(self, draws):
        """The estimator's ``KL(q || p)`` in nats for ``draws`` (from
        :meth:`draw`)."""
        return self.kl_estimator.estimate(self._groups, draws, self.prior).kl

    def _forward_and_kl(self, x, training):
        y_pred, draws = self._split_forward(x, training=training)
        return y_pred, self.kl_estimate(draws)

    # -------------------------------------------------------------- training
    def train_step(self, data):
        x, y, sample_weight = validation.unpack(data)
        self._build_on_first_trace(x)
        estimator = self.kl_estimator
        estimator.before_update(
            self._groups,
            self.prior,
            self.discriminator_optimizer,
            self.num_weight_samples,
        )
        variables = self.network.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            y_pred, draws = self._split_forward(x, training=True)
            estimate = estimator.estimate(self._groups, draws, self.prior)
            loss, data_loss = self._loss_terms(
                x, y, y_pred, sample_weight, estimate.kl, training=True
            )
            scaled = self.optimizer.scale_loss(loss)
            if estimate.loss is not None:
                own_scaled = self.discriminator_optimizer.scale_loss(
                    scale_for_replicas(estimate.loss)
                )
        # Each loss moves only its own side: the model's gradient reaches the
        # estimator's input (the generated values), not its weights.
        updates = [(self.optimizer, tape.gradient(scaled, variables), variables)]
        losses = [loss]
        if estimate.loss is not None:
            own = estimator.trainable_variables
            updates.append(
                (self.discriminator_optimizer, tape.gradient(own_scaled, own), own)
            )
            losses.append(estimate.loss)
        del tape

        def record():
            for tracker in self.estimator_trackers:
                tracker.update_state(estimate.logs[tracker.name])
            self._update_trackers(loss, data_loss, estimate.kl, tf.shape(x)[0])
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        return self._guarded_update(losses, updates, record)

    @property
    def _training_only_logs(self):
        # Evaluation trains no estimator: its trackers would log zeros.
        return super()._training_only_logs + tuple(self.kl_estimator.log_names)

    # ---------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "prior": keras.saving.serialize_keras_object(self.prior),
                "kl_estimator": keras.saving.serialize_keras_object(self.kl_estimator),
                "num_weight_samples": self.num_weight_samples,
            }
        )
        return config
