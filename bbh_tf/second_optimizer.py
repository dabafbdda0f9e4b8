"""The second optimizer of ``BayesByHypernet``: it trains the KL
estimator's own weights (the adversarial estimator's discriminator), is set
in ``compile``, built on those weights alone, restored on load, follows
Keras' learning-rate callbacks, and can warm the discriminator up before the
first model update."""

import keras
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.callbacks import DiscriminatorFollowsLearningRate
from bbh_tf.predictive import deserialize


class SecondOptimizer:
    """Mixin of ``BayesByHypernet`` (before ``VariationalModel`` in its
    bases); needs ``kl_estimator``, ``network``, ``prior``, ``_groups`` and
    ``num_weight_samples`` from the model."""

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            if not self.optimizer.built:
                self.optimizer.build(self.network.trainable_variables)
            if not self.discriminator_optimizer.built:
                self.discriminator_optimizer.build(
                    self.kl_estimator.trainable_variables
                )

    # ---------------------------------------------------------------- compile
    def compile(
        self, optimizer="adam", *args, discriminator_optimizer="adam", **kwargs
    ):
        """Configure training, as ``keras.Model.compile`` (same arguments,
        same order). ``discriminator_optimizer`` (keyword only) trains the
        KL estimator's own weights (the adversarial estimator's
        discriminator; other estimators have none).
        """
        super().compile(optimizer, *args, **kwargs)
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

    def _prepare_fit(self, arguments):
        if self.discriminator_optimizer is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        super()._prepare_fit(arguments)
        warmup = getattr(self.kl_estimator, "warmup_steps", 0)
        if not self.built:
            if warmup and self.optimizer.iterations == 0:
                raise ValueError(
                    "Discriminator warm-up runs before the first batch, so it "
                    "needs a built model: call `model.build(input_shape)` "
                    "first when `x` is a generator."
                )
            return  # Built on the first trace of train_step instead.
        self._build_optimizers()
        if warmup and self.optimizer.iterations == 0:
            verbose = arguments.get("verbose", "auto")
            self.warm_up_discriminator(
                warmup, verbose=1 if verbose == "auto" else min(int(verbose), 1)
            )

    def _fit_callbacks(self):
        callbacks = super()._fit_callbacks()
        if self.kl_estimator.has_own_weights:
            # Learning-rate callbacks move the discriminator's rate too.
            callbacks.append(DiscriminatorFollowsLearningRate())
        return callbacks

    def warm_up_discriminator(self, steps, verbose=1):
        """Make ``steps`` updates of the KL estimator's own weights (the
        adversarial estimator's discriminator) without touching the model."""
        steps = _checks.non_negative_int("steps", steps)
        if steps == 0:
            return
        strategy = self.distribute_strategy

        @tf.function
        def update():
            loss = strategy.run(
                self.kl_estimator.warm_up,
                args=(
                    self._groups,
                    self.prior,
                    self.discriminator_optimizer,
                    self.num_weight_samples,
                ),
            )
            return strategy.reduce("MEAN", loss, axis=None)

        progbar = keras.utils.Progbar(
            steps, verbose=verbose, unit_name="discriminator step"
        )
        for step in range(steps):
            loss = update()
            progbar.update(step + 1, [("discriminator_loss", float(loss))])
