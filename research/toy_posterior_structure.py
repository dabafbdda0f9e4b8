"""How Bayes by Hypernet's toy posterior spends its spread.

Trains Bayes by Hypernet on the toy regression of examples/toy_regression.py
(same data, network and flags) for each ``--seeds`` and each ``--variants``:

* ``shared``: the paper's hypernetwork, one noise draw shared by the 200
  generated first-layer values (``HyperNetwork()``, 256 values per chunk);
* ``per_value``: fresh noise for every value
  (``HyperNetwork(output_dim=1, noise_per_chunk=True)``), so the values are
  independent.

Then it draws the generated values ``--draws`` times and reports:

* the predictive std of ``f(x)`` inside (``|x| <= 4``) and outside
  (``4 < |x| <= 6``) the data, and the train RMSE, as the example does
  (``--num_samples`` draws); ``std_outside_draws``: the std outside from the
  ``--draws`` draws analysed below;
* ``marginal_std``: the median over the 200 positions of a value's std
  across draws (how random each weight is on its own);
* ``mean_abs_correlation`` between positions, and ``participation_ratio``,
  ``(sum of covariance eigenvalues)^2 / sum of their squares``: the number
  of independent directions the draws spread along (1 to 200);
* ``std_outside_shuffled``: the std outside the data when every position's
  draws are shuffled on their own, which keeps each value's marginal and
  removes the dependence between values;
* ``output_weight_median``: the median |weight| of the point-estimate
  output layer.

The discriminator compares one value at a time, so it estimates the sum of
the per-position KLs and cannot see the dependence (docs/research/discriminator.md).
If ``std_outside`` is far below ``std_outside_shuffled``, the dependence
between the values, not narrow marginals, is what keeps the bands narrow.

Usage (each seed and variant takes 45-90 s on two CPU cores)::

    python research/toy_posterior_structure.py --seeds=0,1,2 \\
        --results=docs/runs/toy_structure/default_prior.json
    python research/toy_posterior_structure.py --prior=0.7,0.01,5 ...

Every flag of examples/toy_regression.py applies (``--prior``, ``--steps``,
...), except ``--seed``, ``--noise_per_chunk`` and ``--hypernet_output_dim``,
which ``--seeds`` and ``--variants`` set. The defaults are the study's: the
paper's deterministic generator on the first layer, learning at the
optimizer's full rate, with the per-position adversarial estimator
(``--kl_estimator=adversarial --nosemi_implicit
--hypernet_learning_rate_scale=1 --bbh_layers=first``).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import shared_flags  # noqa: E402
import toy_regression as toy  # noqa: E402  (defines the example's flags)
from absl import app, flags  # noqa: E402

import bbh_tf  # noqa: E402

# Variant name -> (noise_per_chunk, hypernet_output_dim).
VARIANTS = {"shared": (False, 256), "per_value": (True, 1)}

FLAGS = flags.FLAGS
# The study's posterior: the paper's (docs/research/discriminator.md).
for _name, _value in (
    ("kl_estimator", "adversarial"),
    ("semi_implicit", False),
    ("hypernet_learning_rate_scale", 1.0),
    ("bbh_layers", "first"),
):
    FLAGS.set_default(_name, _value)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (data and training).")
flags.register_validator(
    "seeds",
    lambda seeds: all(s.isdecimal() and int(s) < 2**32 for s in seeds),
    message="--seeds must be integers in [0, 2**32 - 1].",
)
flags.DEFINE_list("variants", list(VARIANTS), f"Any of {sorted(VARIANTS)}.")
flags.DEFINE_integer("draws", 2000, "Draws of the generated values to analyse.")
flags.DEFINE_string(
    "results", "toy_posterior_structure.json", "Where to write the JSON."
)


def participation_ratio(values):
    """``(sum lambda)^2 / sum lambda^2`` of the covariance of ``values``
    ``(draws, positions)``: the effective number of directions of spread."""
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(values.T)), 0.0, None)
    return float(eigenvalues.sum() ** 2 / np.sum(eigenvalues**2))


def network_outputs(grid, kernel, bias, output_kernel, output_bias):
    """``f(grid)`` of the 1-100-1 network for each draw of the first layer's
    ``kernel`` and ``bias`` ``(draws, 100)``: ``(draws, len(grid))``."""
    hidden = np.maximum(grid[None, :, None] * kernel[:, None] + bias[:, None], 0.0)
    return hidden @ output_kernel + output_bias


def analyse(model, x, y, grid, rng):
    """The reported numbers of one trained model."""
    outside = np.abs(grid) > toy.DATA_RANGE
    mean, std = toy.predictive(model, np.concatenate([grid[:, None], x]))
    output = model.network.layers[-1]
    values = model.sample_generated_values(FLAGS.draws).numpy()  # kernel, then bias
    units = toy.HIDDEN_UNITS
    output_kernel, output_bias = output.kernel.numpy()[:, 0], output.bias.numpy()[0]

    def std_outside_of(draws):
        return float(
            network_outputs(
                grid, draws[:, :units], draws[:, units:], output_kernel, output_bias
            )
            .std(axis=0)[outside]
            .mean()
        )

    shuffled = np.stack([rng.permutation(column) for column in values.T], axis=1)
    correlations = np.corrcoef(values.T)[np.triu_indices(values.shape[1], 1)]
    row = toy.summarize(grid, y, mean, std)
    return row | {
        "std_outside_draws": std_outside_of(values),
        "marginal_std": float(np.median(values.std(axis=0))),
        "mean_abs_correlation": float(np.nanmean(np.abs(correlations))),
        "participation_ratio": participation_ratio(values),
        "std_outside_shuffled": std_outside_of(shuffled),
        "output_weight_median": float(np.median(np.abs(output_kernel))),
    }


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(
            f"--variants must be among {sorted(VARIANTS)}, got {unknown}."
        )
    seeds = [int(seed) for seed in FLAGS.seeds]
    if FLAGS.draws < 2:
        raise app.UsageError(f"--draws must be >= 2, got {FLAGS.draws}.")
    toy.check_flags()
    grid = np.linspace(*toy.GRID).astype(np.float32)
    rows = []
    for variant in FLAGS.variants:
        FLAGS.noise_per_chunk, FLAGS.hypernet_output_dim = VARIANTS[variant]
        for seed in seeds:
            print(f"== {variant}, seed {seed}")
            x, y = bbh_tf.data.toy_regression(
                n=20, seed=seed, noise_std=FLAGS.noise_std
            )
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            model = toy.train_bbh(x, y)
            row = {
                "variant": variant,
                "seed": seed,
                "noise_per_chunk": FLAGS.noise_per_chunk,
                "hypernet_output_dim": FLAGS.hypernet_output_dim,
            }
            row.update(analyse(model, x, y, grid, np.random.default_rng(seed)))
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)

    columns = (
        "std_inside",
        "std_outside",
        "train_rmse",
        "std_outside_draws",
        "marginal_std",
        "mean_abs_correlation",
        "participation_ratio",
        "std_outside_shuffled",
        "output_weight_median",
    )
    print("\n| variant | seed | " + " | ".join(columns) + " |")
    print("| --- | ---: |" + " ---: |" * len(columns))
    for row in rows:
        cells = " | ".join(f"{row[c]:.2f}" for c in columns)
        print(f"| {row['variant']} | {row['seed']} | {cells} |")
    settings = {
        name: FLAGS[name].value
        for name in (
            "steps",
            "num_samples",
            "noise_std",
            "learning_rate",
            "conditional",
            "num_weight_samples",
            "kl_weight",
            "discriminator_steps",
            "discriminator_learning_rate",
            "draws",
        )
    } | shared_flags.values()
    # Set per variant: stored in each row.
    del settings["noise_per_chunk"], settings["hypernet_output_dim"]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    with open(FLAGS.results, "w") as f:
        json.dump({"flags": settings, "results": rows}, f, indent=2)
    print(f"\nWrote {FLAGS.results}")


if __name__ == "__main__":
    app.run(main)
