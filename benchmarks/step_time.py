"""Milliseconds per training step of the MNIST MLP, by what the step does.

Calls each model's compiled ``train_function`` directly on fixed random
batches (no data pipeline, no callbacks), ``--steps`` steps per round, the
variants interleaved for ``--rounds`` rounds; prints the minimum and the
median per variant. Variants:

* ``ml``: the plain 784-800-800-10 network (maximum likelihood);
* ``ml_weight_norm``: the plain network with deterministic weight
  normalisation (what weight normalisation alone costs);
* ``ml_extra_variables``: the plain network with twelve more small trained
  variables of the sizes Bayes by Hypernet adds (the hypernetwork's six
  kernels and biases, each layer's generated means and ``stddev_rho``):
  what the optimizer's per-variable work costs;
* ``bbh_generation_only``: Bayes by Hypernet's model step without the KL
  term (what the hypernetwork, the batch split across draws and the
  per-draw scaling cost);
* ``bbh_scale_mode``: the package defaults with ``mode="scale"`` (no weight
  normalisation);
* ``bbh_one_draw``: the package defaults with ``num_weight_samples=1``;
* ``bbh_no_mixture``: the semi-implicit bound without extra mixture draws
  (``SemiImplicitKL(num_mixture_draws=0)``);
* ``bbh``: Bayes by Hypernet with the package defaults (``weight_norm``
  layers, 5 draws, the semi-implicit bound with 16 extra mixture draws);
* ``bbh_nearest_neighbour``: the nearest-neighbour estimator;
* ``bbh_adversarial``: the adversarial estimator, one discriminator update
  per step, shared with the model update;
* ``bbh_full_mode`` (only when named in ``--variants``): the package
  defaults with ``mode="full"``, every weight generated.

``--jit`` compiles every variant with XLA. Run::

    python benchmarks/step_time.py
    python benchmarks/step_time.py --jit
    python benchmarks/step_time.py --variants=ml,bbh_full_mode --rounds=3 --steps=5
"""

import os
import statistics
import sys
import time

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from reference_layers import WeightNormDense  # noqa: E402

import bbh_tf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 60, "Steps per variant and round.")
flags.DEFINE_integer("rounds", 7, "Interleaved rounds.")
flags.DEFINE_bool("jit", False, "Compile every variant with XLA.")

VARIANTS = (
    "ml",
    "ml_weight_norm",
    "ml_extra_variables",
    "bbh_generation_only",
    "bbh_scale_mode",
    "bbh_one_draw",
    "bbh_no_mixture",
    "bbh",
    "bbh_nearest_neighbour",
    "bbh_adversarial",
)
flags.DEFINE_list(
    "variants",
    list(VARIANTS),
    f"Variants to time, of {', '.join(VARIANTS)} and bbh_full_mode.",
)
ESTIMATORS = {
    "bbh_nearest_neighbour": "nearest_neighbour",
    "bbh_adversarial": "adversarial",
    "bbh_no_mixture": bbh_tf.kl.SemiImplicitKL(num_mixture_draws=0),
}
# Shapes of the trained variables Bayes by Hypernet adds to the plain MLP.
EXTRA_SHAPES = [(800,)] * 4 + [(10,)] * 2
EXTRA_SHAPES += [(80, 64), (64,), (64, 256), (256,), (256, 256), (256,)]


class _ExtraVariables(keras.layers.Layer):
    """Trains ``EXTRA_SHAPES`` variables that do not change the output
    (timing only)."""

    def build(self, input_shape):
        self.extra = [
            self.add_weight(shape=shape, initializer="zeros") for shape in EXTRA_SHAPES
        ]

    def call(self, inputs):
        return inputs + 0.0 * tf.add_n([tf.reduce_sum(v) for v in self.extra])


class _GenerationOnly(bbh_tf.BayesByHypernet):
    """Bayes by Hypernet's model step without the KL term (timing only)."""

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._build_on_first_trace(x)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            y_pred, _ = self._split_forward(x, training=True)
            loss, _ = self._loss_terms(x, y, y_pred, sample_weight, 0.0, training=True)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def build(variant):
    if variant in ("ml", "ml_extra_variables"):
        network = mnist_mlp.mlp(mnist_mlp.Layers("ml"))
        if variant == "ml_extra_variables":
            network = keras.Sequential(
                [keras.Input((784,)), _ExtraVariables()] + network.layers
            )
        return mnist_mlp.compiled(bbh_tf.MaximumLikelihood(network), 60000)
    if variant == "ml_weight_norm":
        network = keras.Sequential(
            [keras.Input((784,))]
            + [
                WeightNormDense(units, activation="relu")
                for units in mnist_mlp.HIDDEN_UNITS
            ]
            + [WeightNormDense(10, activation="softmax")]
        )
        return mnist_mlp.compiled(bbh_tf.MaximumLikelihood(network), 60000)
    cls = (
        _GenerationOnly if variant == "bbh_generation_only" else bbh_tf.BayesByHypernet
    )
    mode = {"bbh_scale_mode": "scale", "bbh_full_mode": "full"}.get(
        variant, "weight_norm"
    )
    model = cls(
        mnist_mlp.mlp(
            mnist_mlp.Layers("bbh", hypernet=bbh_tf.HyperNetwork(), mode=mode)
        ),
        num_examples=60000,
        kl_estimator=ESTIMATORS.get(variant, "semi_implicit"),
        num_weight_samples=1 if variant == "bbh_one_draw" else 5,
    )
    model.compile(
        optimizer="adam",
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv):
    del argv
    unknown = set(FLAGS.variants) - set(VARIANTS) - {"bbh_full_mode"}
    if unknown:
        raise app.UsageError(f"--variants: unknown {sorted(unknown)}.")
    keras.utils.set_random_seed(FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)
    x = rng.random((10 * FLAGS.batch_size, 784), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    models = {}
    for variant in FLAGS.variants:
        model = build(variant)
        model.jit_compile = FLAGS.jit
        # One step traces the train function.
        model.fit(x[: FLAGS.batch_size], y[: FLAGS.batch_size], epochs=1, verbose=0)
        models[variant] = model
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(FLAGS.batch_size).repeat()
    milliseconds = {variant: [] for variant in models}
    for _ in range(FLAGS.rounds):
        for variant, model in models.items():
            iterator = iter(data)
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                model.train_function(iterator)
            model.optimizer.iterations.numpy()  # wait for the last step
            milliseconds[variant].append(
                (time.perf_counter() - start) / FLAGS.steps * 1000
            )
    print(f"{'variant':<22} {'min ms/step':>12} {'median':>8}  (jit={FLAGS.jit})")
    for variant, values in milliseconds.items():
        print(f"{variant:<22} {min(values):>12.2f} {statistics.median(values):>8.2f}")


if __name__ == "__main__":
    app.run(main)
