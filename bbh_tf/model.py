"""``BayesByHypernet``: prior-contrastive adversarial VI around a Keras network.

Each training step (``train_step``, traced by ``fit`` into a tf.function):

1. ``discriminator_steps - 1`` discriminator updates on fresh draws:
   generated values (label 1) against prior samples (label 0), logistic loss.
2. One joint pass: the network runs on the batch with ``num_weight_samples``
   draws, and the discriminator scores those draws' values together with as
   many prior samples. From that one pass come
   ``loss = data_loss + kl_weight * KL_estimate / num_examples`` (gradient to
   the hypernetwork and the point-estimate weights; ``KL_estimate`` sums the
   logits over the generated values, averaged over draws) and the last
   discriminator update (gradient to the discriminator only).

The batch is split across the draws (each example meets one weight sample),
so several draws per step cost about as much as one; sharing the draws
between the model and the discriminator saves a second hypernetwork and
discriminator pass.
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.discriminator import Discriminator, discriminator_loss
from bbh_tf.hypernet import injected_values
from bbh_tf.layers import HyperLayer
from bbh_tf.predictive import VariationalModel, deserialize, scale_for_replicas
from bbh_tf.priors import ScaleMixturePrior


class _Group(
    collections.namedtuple("_Group", ["hypernet", "layers", "chunks", "used"])
):
    """Hyper layers sharing one hypernetwork (see BayesByHypernet._groups)."""

    def codes(self):
        return tf.concat([layer.position_codes for layer in self.layers], axis=0)

    @property
    def total_chunks(self):
        """Chunks of all the group's layers: what one draw generates."""
        return sum(self.chunks)


def _kl_from_logits(logits, weights=None):
    """The KL estimate from logits ``(draws, values)``: the sum over values
    (the weights are independent under the prior), averaged over draws.
    ``weights`` ``(values,)`` scale a subsample up to all positions."""
    if weights is not None:
        logits = logits * weights
    return tf.reduce_mean(tf.reduce_sum(logits, axis=1))


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByHypernet(VariationalModel):
    """A Bayesian network whose hyper layers share an implicit posterior.

    Args:
        network: A Keras model (Sequential, functional or subclassed) with
            one input, containing hyper layers (``HyperDense``...).
        prior: Diagonal prior on the generated values. Default
            ``ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=exp(-6))``.
        discriminator: Density-ratio estimator. Default
            ``Discriminator(hidden_units=(20, 20), conditional=True)``.
        num_examples: Size of the training set (required): the KL term is
            counted once per dataset, so per example it is ``KL / N``.
        num_weight_samples: Weight draws per training step, shared by the
            data term (the batch is split across them) and the KL estimate.
            Default 5, as in the authors' code.
        kl_weight: Multiplier of the KL term: a float >= 0 or a
            ``keras.optimizers.schedules.LearningRateSchedule`` of the
            model optimizer's step (annealing). Default 1.0.
        discriminator_steps: Discriminator updates per training step.
            Default 1: the update shares the model step's weight draws and
            discriminator pass. Each further one draws afresh and costs a
            hypernetwork and discriminator pass of its own. The
            discriminator must keep up with the hypernetwork: if the logged
            ``discriminator_accuracy`` stays near 0.5, the KL term is blind
            and the posterior can collapse; raise this or the discriminator's
            learning rate (docs/discriminator.md measures it).
        discriminator_warmup_steps: Extra discriminator updates made once,
            at the start of ``fit``, before the first model update. Default 0.
        discriminator_sample_size: How many generated values the
            discriminator scores per step, an int >= 1, or None (default)
            for all of them. With a million generated weights
            (``mode="full"`` on a large network) scoring all of them
            dominates the step; a uniform random subset of positions (drawn
            with replacement each step, shared by all draws and the prior
            samples, spread over the hypernetworks in proportion to their
            values) keeps the KL estimate unbiased: its sum is scaled by
            ``values / subset``, at the price of more variance.

    Calling the model runs the network with one joint weight draw for the
    whole batch. ``predict_distribution`` averages over many draws.

    Example:

    >>> hypernet = bbh_tf.HyperNetwork()
    >>> net = keras.Sequential([keras.Input((784,)),
    ...     bbh_tf.HyperDense(800, activation="relu", hypernet=hypernet),
    ...     bbh_tf.HyperDense(10, activation="softmax", hypernet=hypernet)])
    >>> model = bbh_tf.BayesByHypernet(net, num_examples=60000)
    >>> model.compile(optimizer="adam", discriminator_optimizer="adam",
    ...               loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x, y, batch_size=128, epochs=5)
    >>> mean, std = model.predict_distribution(x_test, num_samples=100)
    """

    def __init__(
        self,
        network,
        prior=None,
        discriminator=None,
        num_examples=None,
        num_weight_samples=5,
        kl_weight=1.0,
        discriminator_steps=1,
        discriminator_warmup_steps=0,
        discriminator_sample_size=None,
        **kwargs,
    ):
        super().__init__(
            network, num_examples=num_examples, kl_weight=kl_weight, **kwargs
        )
        prior = ScaleMixturePrior() if prior is None else deserialize(prior)
        if not (hasattr(prior, "sample") and hasattr(prior, "get_config")):
            raise TypeError(
                "`prior` must be a bbh_tf prior such as ScaleMixturePrior or "
                f"GaussianPrior, got {type(prior).__name__}."
            )
        self.prior = prior
        discriminator = (
            Discriminator() if discriminator is None else deserialize(discriminator)
        )
        if not isinstance(discriminator, Discriminator):
            raise TypeError(
                "`discriminator` must be a bbh_tf.Discriminator, got "
                f"{type(discriminator).__name__}."
            )
        self.discriminator = discriminator
        self.num_weight_samples = _checks.positive_int(
            "num_weight_samples", num_weight_samples
        )
        self.discriminator_steps = _checks.positive_int(
            "discriminator_steps", discriminator_steps
        )
        self.discriminator_warmup_steps = _checks.non_negative_int(
            "discriminator_warmup_steps", discriminator_warmup_steps
        )
        self.discriminator_sample_size = (
            None if discriminator_sample_size is None
            else _checks.positive_int(
                "discriminator_sample_size", discriminator_sample_size
            )
        )
        self.discriminator_optimizer = None
        self.discriminator_loss_tracker = keras.metrics.Mean(
            name="discriminator_loss"
        )
        self.discriminator_accuracy_tracker = keras.metrics.Mean(
            name="discriminator_accuracy"
        )

    # ------------------------------------------------------------------ build
    @property
    def hyper_layers(self):
        """The hyper layers of ``network``, each listed once."""
        return self._layers_of_type(HyperLayer)

    @property
    def hypernets(self):
        """The distinct hypernetworks the hyper layers draw from."""
        unique = {}
        for layer in self.hyper_layers:
            unique.setdefault(id(layer.hypernet), layer.hypernet)
        return list(unique.values())

    def _build_extra(self, input_shape):
        hyper_layers = self.hyper_layers
        if not hyper_layers:
            raise ValueError(
                "`network` contains no hyper layers (HyperDense, ...): "
                "there is no posterior to learn."
            )
        hypernets = self.hypernets
        code_dims = {h.code_dim for h in hypernets}
        if len(code_dims) > 1:
            raise ValueError(
                "All hypernetworks of one model must share `code_dim` (one "
                f"discriminator serves them all), got {sorted(code_dims)}."
            )
        self.discriminator.build(
            (None, None, max(h.output_dim for h in hypernets)),
            (None, code_dims.pop()),
        )

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            if not self.optimizer.built:
                self.optimizer.build(self.network.trainable_variables)
            if not self.discriminator_optimizer.built:
                self.discriminator_optimizer.build(
                    self.discriminator.trainable_variables
                )

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="adam", discriminator_optimizer="adam", **kwargs):
        """Configure training; ``discriminator_optimizer`` trains ``T``.

        Takes every argument of ``keras.Model.compile``.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
        if self.discriminator_optimizer is self.optimizer:
            raise ValueError(
                "`discriminator_optimizer` must be a different optimizer "
                "object from `optimizer`: each keeps its own state."
            )
        self._compile_config.config["discriminator_optimizer"] = (
            self.discriminator_optimizer
        )

    def compile_from_config(self, config):
        config = {k: deserialize(v) for k, v in config.items()}
        self.compile(**config)
        if self.built:
            # Each optimizer on its own variables, so saved states match.
            self._build_optimizers()

    # ---------------------------------------------------------- forward pass
    def _draw_noise(self, num_draws):
        return {
            id(group.hypernet): group.hypernet.sample_noise(num_draws, group.total_chunks)
            for group in self._groups
        }

    @property
    def _groups(self):
        """Hyper layers grouped by hypernetwork, for one call per group.

        Each group holds its layers, their chunk counts and the flat indices
        of the values they use (the rest of each last chunk is sliced away).
        Kept out of Keras' attribute tracking; valid once built.
        """
        groups = self.__dict__.get("_group_cache")
        if groups is None:
            by_hypernet = {}
            for layer in self.hyper_layers:
                by_hypernet.setdefault(id(layer.hypernet), []).append(layer)
            groups = []
            for layers in by_hypernet.values():
                width = layers[0].hypernet.output_dim
                chunks = [int(layer.position_codes.shape[0]) for layer in layers]
                starts = np.cumsum([0] + chunks[:-1]) * width
                used = np.concatenate(
                    [start + np.arange(layer.num_generated)
                     for start, layer in zip(starts, layers)]
                ).astype("int32")
                groups.append(_Group(layers[0].hypernet, layers, chunks, used))
            self.__dict__["_group_cache"] = groups
        return groups

    def _generate(self, noise):
        """Raw hypernetwork output per group: ``(draws, chunks, output_dim)``.

        All layers sharing a hypernetwork are generated in one call.
        """
        return [
            group.hypernet(noise[id(group.hypernet)], group.codes())
            for group in self._groups
        ]

    def _run_network(self, rows, num_draws, training=None, noise=None,
                     shared_input_layer=None):
        """Network output for ``rows`` laid out as ``num_draws`` equal groups
        (or, with ``shared_input_layer``, one group that layer shares)."""
        generated = self._generate(noise or self._draw_noise(num_draws))
        per_layer = {}
        for group, raw in zip(self._groups, generated):
            per_layer.update(zip(group.layers, tf.split(raw, group.chunks, axis=1)))
        with injected_values(per_layer, shared_input_layer):
            outputs = self.network(rows, training=training)
        return outputs, generated

    def call(self, inputs, training=None):
        outputs, _ = self._run_network(inputs, 1, training=training)
        return outputs

    @property
    def _shared_input_layer(self):
        """The hyper layer that can take one copy of a prediction batch for
        all draws, or None: the first hyper layer of a Sequential network
        (everything before it sees the batch once, at ``training=False``,
        and everything after it one group of rows per draw)."""
        if not isinstance(self.network, keras.Sequential):
            return None
        for layer in self.network.layers:
            if isinstance(layer, HyperLayer):
                return layer
            if any(isinstance(inner, HyperLayer)
                   for inner in layer._flatten_layers(include_self=False)):
                return None
        return None

    def _sample_batch(self, inputs, num_samples, noise=None):
        """In a Sequential network the layers up to the first hyper layer see
        the batch once, and that layer expands it to one group per draw (in
        ``weight_norm`` mode its product with the direction ``V`` is
        computed once for all draws); other networks get the batch tiled
        once per draw. ``noise`` optionally maps ``id(hypernet)`` to noise of
        the hypernetwork's ``noise_shape`` for ``num_samples`` draws."""
        first = self._shared_input_layer
        if first is None:
            return super()._sample_batch(inputs, num_samples, noise=noise)
        outputs, _ = self._run_network(
            inputs, num_samples, training=False, noise=noise, shared_input_layer=first
        )
        return outputs

    def _sample_rows(self, rows, num_draws, noise=None):
        # ``noise`` optionally maps id(hypernet) to its noise for num_draws
        # draws: the SavedModel export brings its own.
        outputs, _ = self._run_network(rows, num_draws, training=False, noise=noise)
        return outputs

    def _split_forward(self, x, training):
        """One pass with the batch split across ``num_weight_samples`` draws."""
        draws = self.num_weight_samples
        batch = tf.shape(x)[0]
        per_draw = (batch + draws - 1) // draws
        # Pad with repeated examples to equal groups; the padding is dropped.
        rows = tf.gather(x, tf.range(per_draw * draws) % batch)
        outputs, generated = self._run_network(rows, draws, training=training)
        return outputs[:batch], generated

    # ------------------------------------------------------------ KL machinery
    def _scored_positions(self):
        """Per group, the flat positions (into the hypernetwork output) the
        discriminator scores this step, and the KL weights of the scored
        values (None when every used value is scored)."""
        size = self.discriminator_sample_size
        if size is None:
            return [tf.constant(group.used) for group in self._groups], None
        total = sum(len(group.used) for group in self._groups)
        positions, weights = [], []
        for group in self._groups:
            used = len(group.used)
            picked = min(used, -(-size * used // total))
            if picked == used:
                positions.append(tf.constant(group.used))
                weights.append(tf.ones([used]))
                continue
            index = tf.random.uniform([picked], 0, used, dtype=tf.int32)
            positions.append(tf.gather(group.used, index))
            weights.append(tf.fill([picked], used / picked))
        return positions, tf.concat(weights, axis=0)

    def _used_values(self, generated, positions):
        """The scored values, per group: ``(draws, n_scored)``."""
        return [
            tf.gather(tf.reshape(raw, (tf.shape(raw)[0], -1)), index, axis=1)
            for raw, index in zip(generated, positions)
        ]

    def _sample_used_values(self, num_draws):
        """Every used generated value for ``num_draws`` joint draws, groups
        side by side: ``(num_draws, total used)``. For inspecting ``q``."""
        generated = self._generate(self._draw_noise(num_draws))
        used = [group.used for group in self._groups]
        return tf.concat(self._used_values(generated, used), axis=1)

    def _position_features(self, positions):
        """The discriminator's position term of the scored values, per group."""
        return [
            self.discriminator.position_features(
                group.codes(), group.hypernet.output_dim, index
            )
            for group, index in zip(self._groups, positions)
        ]

    def _discriminator_logits(self, values, features):
        """Logits of scored values (per group), ``(draws, total_scored)``."""
        return tf.concat(
            [self.discriminator.score(v, f) for v, f in zip(values, features)],
            axis=1,
        )

    def kl_estimate(self, generated):
        """``E_q[sum_i T(w_i)]``, the estimate of ``KL(q || p)`` in nats."""
        positions, weights = self._scored_positions()
        logits = self._discriminator_logits(
            self._used_values(generated, positions),
            self._position_features(positions),
        )
        return _kl_from_logits(logits, weights)

    def _contrast(self, generated, positions):
        """Logits of the generated values at ``positions`` (per group) and of
        as many prior samples, scored in one pass: ``(logits_q, logits_p)``."""
        values = self._used_values(generated, positions)
        draws = tf.shape(values[0])[0]
        dtype = self.discriminator.compute_dtype
        both = [
            tf.concat(
                [tf.cast(v, dtype), self.prior.sample(tf.shape(v), dtype=dtype)],
                axis=0,
            )
            for v in values
        ]
        logits = self._discriminator_logits(both, self._position_features(positions))
        return logits[:draws], logits[draws:]

    def _scale_discriminator_loss(self, loss):
        # Inside the tape: the scaling must be recorded to be differentiated.
        return self.discriminator_optimizer.scale_loss(scale_for_replicas(loss))

    def _apply_discriminator_gradients(self, tape, scaled_loss):
        variables = self.discriminator.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.discriminator_optimizer.apply_gradients(zip(gradients, variables))

    def _discriminator_update(self):
        """One discriminator update on fresh draws; ``(loss, accuracy)``."""
        generated = self._generate(self._draw_noise(self.num_weight_samples))
        positions, _ = self._scored_positions()
        with tf.GradientTape() as tape:
            loss, accuracy = discriminator_loss(
                *self._contrast([tf.stop_gradient(g) for g in generated], positions)
            )
            scaled = self._scale_discriminator_loss(loss)
        self._apply_discriminator_gradients(tape, scaled)
        return loss, accuracy

    # -------------------------------------------------------------- training
    def _forward_and_kl(self, x, training):
        y_pred, generated = self._split_forward(x, training=training)
        return y_pred, self.kl_estimate(generated)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._build_on_first_trace(x)
        for _ in range(self.discriminator_steps - 1):
            self._discriminator_update()
        variables = self.network.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            y_pred, generated = self._split_forward(x, training=True)
            positions, weights = self._scored_positions()
            logits_q, logits_p = self._contrast(generated, positions)
            kl = _kl_from_logits(logits_q, weights)
            loss, data_loss = self._loss_terms(
                x, y, y_pred, sample_weight, kl, training=True
            )
            d_loss, d_accuracy = discriminator_loss(logits_q, logits_p)
            scaled = self.optimizer.scale_loss(loss)
            d_scaled = self._scale_discriminator_loss(d_loss)
        # Each loss moves only its own side: the model's gradient reaches the
        # discriminator's input (the generated values), not its weights.
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self._apply_discriminator_gradients(tape, d_scaled)
        del tape
        self.discriminator_loss_tracker.update_state(d_loss)
        self.discriminator_accuracy_tracker.update_state(d_accuracy)
        self._update_trackers(loss, data_loss, kl, tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        logs = super().test_step(data)
        # Evaluation trains no discriminator: its trackers would log zeros.
        return {
            name: value for name, value in logs.items()
            if name not in ("discriminator_loss", "discriminator_accuracy")
        }

    def _prepare_fit(self, arguments):
        if self.discriminator_optimizer is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        super()._prepare_fit(arguments)
        if not self.built:
            if self.discriminator_warmup_steps and self.optimizer.iterations == 0:
                raise ValueError(
                    "Discriminator warm-up runs before the first batch, so it "
                    "needs a built model: call `model.build(input_shape)` "
                    "first when `x` is a generator."
                )
            return  # Built on the first trace of train_step instead.
        self._build_optimizers()
        if self.discriminator_warmup_steps and self.optimizer.iterations == 0:
            verbose = arguments.get("verbose", "auto")
            self.warm_up_discriminator(
                self.discriminator_warmup_steps,
                verbose=1 if verbose == "auto" else min(int(verbose), 1),
            )

    def warm_up_discriminator(self, steps, verbose=1):
        """Make ``steps`` discriminator updates without touching the model."""
        steps = _checks.non_negative_int("steps", steps)
        if steps == 0:
            return
        strategy = self.distribute_strategy

        @tf.function
        def update():
            loss, accuracy = strategy.run(self._discriminator_update)
            return strategy.reduce("MEAN", loss, axis=None), accuracy

        progbar = keras.utils.Progbar(
            steps, verbose=verbose, unit_name="discriminator step"
        )
        for step in range(steps):
            loss, _ = update()
            progbar.update(step + 1, [("discriminator_loss", float(loss))])

    # ---------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "prior": self.prior,
                "discriminator": self.discriminator,
                "num_weight_samples": self.num_weight_samples,
                "discriminator_steps": self.discriminator_steps,
                "discriminator_warmup_steps": self.discriminator_warmup_steps,
                "discriminator_sample_size": self.discriminator_sample_size,
            }
        )
        return config

