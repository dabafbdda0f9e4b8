"""Prior-contrastive adversarial KL: a discriminator's logits as log q / p."""

import keras
import tensorflow as tf

from bbh_tf import _checks, guard
from bbh_tf.discriminator import Discriminator, JointDiscriminator, discriminator_loss
from bbh_tf.kl.base import KLEstimate, KLEstimator
from bbh_tf.predictive import deserialize, scale_for_replicas


@keras.saving.register_keras_serializable(package="bbh_tf")
class AdversarialKL(KLEstimator):
    """``KL(q || p)`` from a discriminator ``T`` (the paper's estimator).

    ``T`` is trained by logistic regression to tell generated values (label
    1) from prior samples (label 0); at its optimum ``T = log q / p``, so
    ``E_q[T]`` estimates the KL. Which ratio ``T`` can represent is set by
    the discriminator:

    * ``Discriminator(conditional=True)`` (default): one value and its
      position at a time; the summed logits estimate the sum of the
      per-position marginal KLs, ``sum_i KL(q_i || p_i)``, a lower bound of
      the joint KL that misses the dependence between values;
    * ``Discriminator(conditional=False)``: the paper's pooled form, one value
      without its position (``d * KL(qbar || p0)``, looser still);
    * ``JointDiscriminator()``: whole draws of each hypernetwork's values,
      so it can see their dependence: the joint KL, well-posed when ``q`` has
      a density (``HyperNetwork(semi_implicit=True)``).

    The model's gradient reaches the generated values through ``T``, not
    ``T``'s weights; ``T`` is trained by ``compile``'s
    ``discriminator_optimizer``. Logs ``discriminator_loss`` (at most about
    ``2 ln 2`` when ``T`` cannot tell the two apart) and
    ``discriminator_accuracy``.

    Args:
        discriminator: A ``Discriminator`` or ``JointDiscriminator``.
            Default ``Discriminator()``.
        steps: Discriminator updates per training step, >= 1. Default 1: the
            update shares the model step's draws and discriminator pass; each
            further one draws afresh. If ``discriminator_accuracy`` stays
            near 0.5 the KL term is blind: raise this or the discriminator's
            learning rate.
        warmup_steps: Discriminator updates made once, at the start of the
            first ``fit``, before the first model update. Default 0.
        sample_size: How many generated values a ``Discriminator`` scores per
            step, or None (default) for all. A uniform random subset of
            positions (with replacement, shared by all draws and the prior
            samples, spread over the hypernetworks in proportion to their
            values) keeps the estimate unbiased: its sum is scaled by
            ``values / subset``.

    Example:

    >>> estimator = bbh_tf.kl.AdversarialKL(bbh_tf.Discriminator(), steps=5)
    >>> model = bbh_tf.BayesByHypernet(net, num_examples=60000,
    ...                                kl_estimator=estimator)
    """

    log_names = ("discriminator_loss", "discriminator_accuracy")
    has_own_weights = True

    def __init__(
        self, discriminator=None, steps=1, warmup_steps=0, sample_size=None, **kwargs
    ):
        super().__init__(**kwargs)
        discriminator = (
            Discriminator() if discriminator is None else deserialize(discriminator)
        )
        if not isinstance(discriminator, (Discriminator, JointDiscriminator)):
            raise TypeError(
                "`discriminator` must be a bbh_tf.Discriminator or "
                f"JointDiscriminator, got {type(discriminator).__name__}."
            )
        self.discriminator = discriminator
        self.steps = _checks.positive_int("steps", steps)
        self.warmup_steps = _checks.non_negative_int("warmup_steps", warmup_steps)
        if sample_size is not None:
            sample_size = _checks.positive_int("sample_size", sample_size)
            if self.joint:
                raise ValueError(
                    "`sample_size` subsamples single values, which a "
                    "JointDiscriminator does not score: leave it None."
                )
        self.sample_size = sample_size

    @property
    def joint(self):
        return isinstance(self.discriminator, JointDiscriminator)

    def setup(self, groups, prior):
        super().setup(groups, prior)
        if self.joint:
            self.discriminator.build([group.num_values for group in groups])
            return
        code_dims = {group.hypernet.code_dim for group in groups}
        if len(code_dims) > 1:
            raise ValueError(
                "All hypernetworks of one model must share `code_dim` (one "
                f"discriminator serves them all), got {sorted(code_dims)}."
            )
        self.discriminator.build(
            (None, None, max(group.hypernet.output_dim for group in groups)),
            (None, code_dims.pop()),
        )

    # ------------------------------------------------------------- scoring
    def _scored_positions(self, groups):
        """Per group, the flat positions scored this step, and the KL weights
        of the scored values (None when every used value is scored)."""
        size = self.sample_size
        if size is None:
            return [tf.constant(group.used) for group in groups], None
        total = sum(group.num_values for group in groups)
        positions, weights = [], []
        for group in groups:
            used = group.num_values
            picked = min(used, -(-size * used // total))
            if picked == used:
                positions.append(tf.constant(group.used))
                weights.append(tf.ones([used]))
                continue
            index = tf.random.uniform([picked], 0, used, dtype=tf.int32)
            positions.append(tf.gather(group.used, index))
            weights.append(tf.fill([picked], used / picked))
        return positions, tf.concat(weights, axis=0)

    def _logits(self, groups, values, positions):
        """Logits ``(draws, scored)`` of ``values`` (per group, the layout
        ``(draws, chunks, output_dim)``) at ``positions``."""
        if self.joint:
            return self.discriminator.score(
                [group.used_values(v) for group, v in zip(groups, values)]
            )
        scores = []
        for group, v, index in zip(groups, values, positions):
            flat = tf.gather(tf.reshape(v, (tf.shape(v)[0], -1)), index, axis=1)
            features = self.discriminator.position_features(
                group.codes(), group.hypernet.output_dim, index
            )
            scores.append(self.discriminator.score(flat, features))
        return tf.concat(scores, axis=1)

    def contrast(self, groups, values, prior):
        """Logits of generated ``values`` (per group) and of as many prior
        samples, in one pass: ``(logits_q, logits_p, kl_weights)``."""
        positions, weights = self._scored_positions(groups)
        dtype = self.discriminator.compute_dtype
        both = [
            tf.concat([tf.cast(v, dtype), prior.sample(tf.shape(v), dtype=dtype)], 0)
            for v in values
        ]
        logits = self._logits(groups, both, positions)
        draws = tf.shape(values[0])[0]
        return logits[:draws], logits[draws:], weights

    # -------------------------------------------------------------- the KL
    def estimate(self, groups, draws, prior):
        logits_q, logits_p, weights = self.contrast(
            groups, [d.values for d in draws], prior
        )
        scaled = logits_q if weights is None else logits_q * weights
        # The sum over values (independent under the prior), mean over draws.
        kl = tf.reduce_mean(tf.reduce_sum(scaled, axis=1))
        loss, accuracy = discriminator_loss(logits_q, logits_p)
        return KLEstimate(
            kl, loss, {"discriminator_loss": loss, "discriminator_accuracy": accuracy}
        )

    def warm_up(self, groups, prior, optimizer, num_draws):
        """One discriminator update on fresh draws; returns its loss."""
        values = [
            tf.stop_gradient(group.draw(group.sample_noise(num_draws)).values)
            for group in groups
        ]
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            logits_q, logits_p, _ = self.contrast(groups, values, prior)
            loss, _ = discriminator_loss(logits_q, logits_p)
            scaled = optimizer.scale_loss(scale_for_replicas(loss))
        gradients = tape.gradient(scaled, variables)
        # A non-finite update is skipped, as the model's own steps are.
        guard.apply_if(
            guard.all_finite([loss, *gradients]),
            lambda gradients: optimizer.apply_gradients(zip(gradients, variables)),
            gradients,
        )
        return loss

    def before_update(self, groups, prior, optimizer, num_draws):
        for _ in range(self.steps - 1):
            self.warm_up(groups, prior, optimizer, num_draws)

    def get_config(self):
        return {
            **super().get_config(),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "steps": self.steps,
            "warmup_steps": self.warmup_steps,
            "sample_size": self.sample_size,
        }
