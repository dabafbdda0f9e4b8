"""Tabular regression: every method on the standard small-benchmark protocol.

Random 90/10 train/test splits from a fixed seed (``--splits``, ``--seed``),
inputs and targets standardised by the training split, a network with one
hidden layer of ``--hidden_units`` ReLU units (50) and a Gaussian likelihood
whose scale the network predicts (heteroscedastic: two outputs, mean and raw
scale; ``--likelihood=homoscedastic`` learns one scale), Adam at
``--learning_rate`` for every optimizer, ``--epochs`` (40) of batch 32.
Methods (``--methods``, default all):

* ``bbh_<mode>_<estimator>``: Bayes by Hypernet with the package defaults
  (the shared hypernetwork flags, e.g. ``--hypernet_learning_rate_scale``,
  change them),
  ``mode`` ``scale`` (the default), ``weight_norm`` or ``full``, ``estimator``
  ``semi_implicit``,
  ``nearest_neighbour`` or ``adversarial``;
* ``bbb``: Bayes by Backprop; ``mc_dropout``: dropout ``--dropout_rate``
  after the hidden layer; ``deep_ensemble``: ``--ensemble_members`` maximum
  likelihood networks trained together; ``ml``: maximum likelihood.

The data: ``--dataset=generated`` (``bbh_tf.data.synthetic_regression``),
``--dataset=diabetes`` (scikit-learn's bundled diabetes data, 442 rows and
10 features; ``pip install -e ".[regression]"``) or any CSV file with a
header row (``--csv=FILE --target=COLUMN``, every column numeric).

Prints, per method, the test RMSE and log-likelihood (in the targets'
units), the 95 % interval coverage and the CRPS as mean +- standard error
over the splits, with the number of splits whose training loss stayed
finite at every step (no step skipped as non-finite), and writes them to ``--output`` (JSON: every split, the
flags, the environment).

Run::

    python examples/regression.py                            # generated data
    python examples/regression.py --dataset=diabetes --learning_rate=1e-2
    python examples/regression.py --csv=data.csv --target=price --splits=20
"""

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import shared_flags  # noqa: E402
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

MODES = ("scale", "weight_norm", "full")
ESTIMATORS = ("semi_implicit", "nearest_neighbour", "adversarial")
BBH_METHODS = tuple(f"bbh_{m}_{e}" for m in MODES for e in ESTIMATORS)
METHOD_NAMES = BBH_METHODS + ("bbb", "mc_dropout", "deep_ensemble", "ml")

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "methods", ["all"], f"Methods to run: {', '.join(METHOD_NAMES)} or all."
)
flags.DEFINE_enum(
    "dataset",
    "generated",
    ["generated", "diabetes"],
    "Built-in data set, unless --csv is given.",
)
flags.DEFINE_string("csv", "", "A CSV file with a header row (then --target).")
flags.DEFINE_string("target", "", "The target column of --csv.")
flags.DEFINE_integer("splits", 5, "Random 90/10 splits.", lower_bound=1)
flags.DEFINE_integer(
    "seed",
    0,
    "Seed of the splits and the training.",
    lower_bound=0,
    upper_bound=2**32 - 1,
)
flags.DEFINE_integer("epochs", 40, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Training batch size.", lower_bound=1)
flags.DEFINE_integer(
    "hidden_units", 50, "ReLU units of the hidden layer.", lower_bound=1
)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of every optimizer.")
flags.DEFINE_enum(
    "likelihood",
    "heteroscedastic",
    ["heteroscedastic", "homoscedastic"],
    "Gaussian noise scale predicted per input, or one learned scale.",
)
flags.DEFINE_float("dropout_rate", 0.05, "mc_dropout: the dropout rate.")
flags.DEFINE_integer(
    "num_samples", 100, "Posterior draws per test input.", lower_bound=1
)
flags.DEFINE_string("output", "runs/regression.json", "Where the JSON goes.")


def network(layer, input_dim, dropout_rate=0.0):
    """One hidden layer of ReLU units, then the likelihood's outputs."""
    stack = [keras.Input((input_dim,)), layer(FLAGS.hidden_units, "relu")]
    if dropout_rate:
        stack.append(keras.layers.Dropout(dropout_rate))
    if FLAGS.likelihood == "heteroscedastic":
        stack.append(layer(2, None))  # mean and raw scale
    else:
        stack += [layer(1, None), bbh_tf.HomoscedasticScale()]
    return keras.Sequential(stack)


def adam():
    return keras.optimizers.Adam(FLAGS.learning_rate)


def build(method, input_dim, num_examples):
    """A compiled model of ``method`` for ``input_dim`` features."""
    if method.startswith("bbh_"):
        mode, estimator = next(
            (m, e) for m in MODES for e in ESTIMATORS if method == f"bbh_{m}_{e}"
        )
        hypernet = shared_flags.hypernetwork()
        net = network(
            lambda units, activation: bbh_tf.HyperDense(
                units, activation=activation, mode=mode, hypernet=hypernet
            ),
            input_dim,
        )
        model = bbh_tf.BayesByHypernet(
            net, num_examples=num_examples, kl_estimator=estimator
        )
        model.compile(
            optimizer=adam(),
            discriminator_optimizer=adam(),
            loss=bbh_tf.GaussianLikelihood(),
        )
        return model
    dense = lambda units, activation: keras.layers.Dense(units, activation=activation)  # noqa: E731
    if method == "bbb":
        model = bbh_tf.BayesByBackprop(
            network(
                lambda units, activation: bbh_tf.BayesByBackpropDense(
                    units, activation=activation
                ),
                input_dim,
            ),
            num_examples=num_examples,
        )
    elif method == "mc_dropout":
        model = bbh_tf.MCDropout(network(dense, input_dim, FLAGS.dropout_rate))
    elif method == "deep_ensemble":
        model = bbh_tf.DeepEnsemble(
            network(dense, input_dim), num_members=FLAGS.ensemble_members
        )
    else:
        model = bbh_tf.MaximumLikelihood(network(dense, input_dim))
    model.compile(optimizer=adam(), loss=bbh_tf.GaussianLikelihood())
    return model


def draws(method):
    """Posterior draws per test input: 1 for the deterministic network, one
    per member for the ensemble."""
    if method == "ml":
        return 1
    return FLAGS.ensemble_members if method == "deep_ensemble" else FLAGS.num_samples


def evaluate(model, method, split):
    """Test metrics of one trained model, in the targets' original units."""
    samples = model.predict_samples(split["x_test"], num_samples=draws(method))
    locs, scales = (t.numpy() for t in model.likelihood.location_and_scale(samples))
    y, y_std = split["y_test"], split["y_std"]
    return {
        "rmse": bbh_tf.metrics.rmse(y, locs.mean(axis=0), target_scale=y_std),
        "log_likelihood": bbh_tf.metrics.predictive_log_likelihood(
            y, locs, scales, target_scale=y_std
        ),
        "coverage_95": bbh_tf.metrics.interval_coverage(y, locs, scales, level=0.95),
        "crps": bbh_tf.metrics.crps(y, locs, scales, target_scale=y_std),
    }


def run_split(method, split, index):
    """Train and evaluate ``method`` on one split; a dict of its results."""
    keras.utils.set_random_seed(FLAGS.seed + index)
    model = build(method, split["x_train"].shape[1], len(split["x_train"]))
    start = time.perf_counter()
    try:
        history = model.fit(
            split["x_train"],
            split["y_train"],
            epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size,
            verbose=0,
        ).history
    except FloatingPointError as error:
        return {"finite": False, "error": str(error), "split": index}
    losses = history["loss"]
    # Steps skipped for a non-finite loss or gradient count as not finite.
    skipped = int(sum(history.get("non_finite_steps", [0])))
    result = {
        "split": index,
        "finite": bool(np.all(np.isfinite(losses))) and skipped == 0,
        "non_finite_steps": skipped,
        "max_epoch_loss": float(np.max(losses)),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return result | evaluate(model, method, split)


def summary(results):
    """Mean and standard error over the splits that trained to the end."""
    finished = [r for r in results if "rmse" in r]
    row = {"splits_finite": sum(r["finite"] for r in results), "splits": len(results)}
    for key in ("rmse", "log_likelihood", "coverage_95", "crps"):
        values = np.array([r[key] for r in finished])
        row[key] = float(values.mean()) if len(values) else math.nan
        row[key + "_se"] = (
            float(values.std(ddof=1) / math.sqrt(len(values)))
            if len(values) > 1
            else 0.0
        )
    return row


def load_data():
    if FLAGS.csv:
        if not FLAGS.target:
            raise app.UsageError("--csv needs --target, the target column's name.")
        x, y, _ = bbh_tf.data.load_csv(FLAGS.csv, FLAGS.target)
        return x, y, os.path.basename(FLAGS.csv)
    if FLAGS.dataset == "diabetes":
        try:
            from sklearn.datasets import load_diabetes
        except ImportError:
            raise app.UsageError(
                '--dataset=diabetes needs scikit-learn: pip install -e ".[regression]"'
            ) from None
        data = load_diabetes()
        return data.data.astype("float32"), data.target.astype("float32"), "diabetes"
    x, y = bbh_tf.data.synthetic_regression(seed=FLAGS.seed)
    return x, y, "generated"


def selected_methods():
    if FLAGS.methods == ["all"]:
        return list(METHOD_NAMES)
    unknown = [m for m in FLAGS.methods if m not in METHOD_NAMES]
    if unknown:
        raise app.UsageError(
            f"--methods: unknown {unknown}; choose from {list(METHOD_NAMES)} or all."
        )
    return list(FLAGS.methods)


def main(argv):
    del argv
    methods = selected_methods()
    if not (np.isfinite(FLAGS.learning_rate) and FLAGS.learning_rate > 0):
        raise app.UsageError(
            f"--learning_rate must be a finite number > 0, got {FLAGS.learning_rate}."
        )
    if not 0 <= FLAGS.dropout_rate < 1:
        raise app.UsageError(
            f"--dropout_rate must be in [0, 1), got {FLAGS.dropout_rate}."
        )
    shared_flags.check()
    x, y, name = load_data()
    splits = list(bbh_tf.data.standardized_splits(x, y, FLAGS.splits, seed=FLAGS.seed))
    print(f"{name}: {len(x)} rows, {x.shape[1]} features, {len(splits)} splits")
    results, rows = {}, {}
    for method in methods:
        results[method] = [
            run_split(method, split, i) for i, split in enumerate(splits)
        ]
        rows[method] = summary(results[method])
        row = rows[method]
        print(
            f"{method:<32} RMSE {row['rmse']:.3f} +- {row['rmse_se']:.3f}  "
            f"LL {row['log_likelihood']:.3f} +- {row['log_likelihood_se']:.3f}  "
            f"cover95 {row['coverage_95']:.2f}  CRPS {row['crps']:.3f}  "
            f"finite {row['splits_finite']}/{row['splits']}",
            flush=True,
        )
    document = {
        "dataset": name,
        "rows": len(x),
        "features": int(x.shape[1]),
        "summary": rows,
        "splits": results,
        "flags": {
            key: FLAGS[key].value
            for key in (
                "methods",
                "dataset",
                "csv",
                "target",
                "splits",
                "seed",
                "epochs",
                "batch_size",
                "hidden_units",
                "learning_rate",
                "likelihood",
                "dropout_rate",
                "ensemble_members",
                "num_samples",
            )
        }
        | {
            "hypernet": {
                k: v
                for k, v in shared_flags.values().items()
                if k.startswith("hypernet") or k in ("semi_implicit", "noise_per_chunk")
            }
        },
        "environment": shared_flags.environment(),
    }
    shared_flags.write_json(FLAGS.output, document)


if __name__ == "__main__":
    app.run(main)
