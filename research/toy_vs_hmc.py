"""The toy posterior of each KL estimator and variant against exact inference.

Trains examples/toy_regression.py's Bayes by Hypernet (its flags and
seeding; by default every weight of the 1-100-1 network random) for each
``--seeds`` and each ``--variants``, and compares the predictive std of
``f(x)`` inside (``|x| <= 4``) and outside (``4 < |x| <= 6``) the data with
the exact posterior's, sampled by HMC (``research/toy_hmc_reference.py``,
read from the example's ``--hmc_reference``). Variants:

* ``default``: the package defaults (semi-implicit posterior and bound);
* ``nearest_neighbour``, ``adversarial``, ``adversarial_joint``: the other
  estimators (``--kl_estimator``), at the example's discriminator settings;
* ``semi_implicit_k256``: the bound with 256 mixture draws instead of 16;
* ``noise_301``: a hypernetwork noise of 301 dimensions, as many as values;
* ``bbb``: Bayes by Backprop (mean-field Gaussian), for comparison.

Per variant it prints the ratio to HMC inside and outside for each seed,
their mean, the coefficient of variation (std / mean over seeds) of the
outside ratio and, for Bayes by Hypernet, the share of the posterior's
variance that the hypernetwork carries (``hypernetwork_share``; the rest is
each value's own Gaussian noise); ``--rerun_seed`` trains the first variant once more for that
seed in the same process (a rerun must give the same numbers).

Usage (about 20 s per seed and variant on two CPU cores)::

    python research/toy_vs_hmc.py --output=docs/runs/toy_vs_hmc.json
"""

import json
import os
import statistics
import sys

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

# Variant -> (method of the example, flags it changes).
VARIANTS = {
    "default": ("bbh", {}),
    "nearest_neighbour": ("bbh", {"kl_estimator": "nearest_neighbour"}),
    "adversarial": ("bbh", {"kl_estimator": "adversarial"}),
    "adversarial_joint": ("bbh", {"kl_estimator": "adversarial_joint"}),
    "semi_implicit_k256": ("bbh", {"num_mixture_draws": 256}),
    "noise_301": ("bbh", {"hypernet_noise_dim": 301}),
    "bbb": ("bbb", {}),
}

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (data and training).")
flags.register_validator(
    "seeds",
    lambda seeds: all(s.isdecimal() and int(s) < 2**32 for s in seeds),
    message="--seeds must be integers in [0, 2**32 - 1].",
)
flags.DEFINE_list("variants", list(VARIANTS), f"Any of {list(VARIANTS)}.")
flags.DEFINE_integer(
    "rerun_seed",
    0,
    "Train the first variant again for this seed (-1: no rerun).",
    lower_bound=-1,
)


def hypernetwork_share(model, draws=2000):
    """How much of the posterior's spread the hypernetwork carries: the mean
    over generated values of ``var(mu(eps)) / (var(mu(eps)) + sigma^2)``,
    the rest being each value's own Gaussian noise (near 0: the posterior is
    in effect mean-field)."""
    (group,) = model._groups
    means = group.used_values(group.draw(group.sample_noise(draws)).mean).numpy()
    sigma = group.used_values(group.stddev()[None]).numpy()[0]
    spread = means.var(axis=0)
    return float(np.mean(spread / (spread + sigma**2)))


def run(variant, seed, grid):
    """One trained variant's summary with its ratios to HMC."""
    method, changes = VARIANTS[variant]
    defaults = {name: FLAGS[name].value for name in changes}
    FLAGS.seed = seed
    for name, value in changes.items():
        FLAGS[name].value = value
    try:
        x, y = bbh_tf.data.toy_regression(n=20, seed=seed, noise_std=FLAGS.noise_std)
        reference = toy.hmc_reference(grid)
        if reference is None:
            raise app.UsageError(
                f"No exact reference for seed {seed}: run "
                "research/toy_hmc_reference.py first."
            )
        keras.utils.set_random_seed(seed)  # as the example seeds each method
        x_eval = np.concatenate([grid[:, None], x])
        share = None
        if method == "bbh":
            model = toy.train_bbh(x, y)
            mean, std = toy.predictive(model, x_eval)
            share = hypernetwork_share(model)
        else:
            mean, std = toy.METHODS[method](x, y, x_eval)
        row = toy.summarize(grid, y, mean, std) | {"hypernetwork_share": share}
        return toy.with_ratios({variant: row}, reference)[variant] | {"seed": seed}
    finally:
        for name, value in defaults.items():
            FLAGS[name].value = value


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(
            f"--variants must be among {list(VARIANTS)}, got {unknown}."
        )
    toy.check_flags()
    grid = np.linspace(*toy.GRID).astype(np.float32)
    seeds = [int(seed) for seed in FLAGS.seeds]
    results, summary = {}, {}
    for variant in FLAGS.variants:
        rows = [run(variant, seed, grid) for seed in seeds]
        results[variant] = rows
        outside = [row["ratio_to_hmc_outside"] for row in rows]
        inside = [row["ratio_to_hmc_inside"] for row in rows]
        summary[variant] = {
            "mean_ratio_inside": statistics.mean(inside),
            "mean_ratio_outside": statistics.mean(outside),
            "cv_ratio_outside": (
                statistics.stdev(outside) / statistics.mean(outside)
                if len(outside) > 1
                else 0.0
            ),
            "ratios_inside": inside,
            "ratios_outside": outside,
            "train_rmse": [row["train_rmse"] for row in rows],
            "hypernetwork_share": [row["hypernetwork_share"] for row in rows],
        }
        cells = ", ".join(f"{i:.2f}/{o:.2f}" for i, o in zip(inside, outside))
        print(
            f"{variant:<20} in/out per seed: {cells}; mean outside "
            f"{summary[variant]['mean_ratio_outside']:.2f}, CV "
            f"{summary[variant]['cv_ratio_outside']:.1%}"
            + (
                ""
                if rows[0]["hypernetwork_share"] is None
                else ", hypernetwork share "
                + ", ".join(f"{r['hypernetwork_share']:.2f}" for r in rows)
            ),
            flush=True,
        )
    rerun = None
    if FLAGS.rerun_seed >= 0 and FLAGS.variants:
        first = FLAGS.variants[0]
        rerun = run(first, FLAGS.rerun_seed, grid) | {"variant": first}
        print(
            f"rerun {first} seed {FLAGS.rerun_seed}: in/out "
            f"{rerun['ratio_to_hmc_inside']:.4f}/{rerun['ratio_to_hmc_outside']:.4f}"
        )
    document = {
        "summary": summary,
        "results": results,
        "rerun": rerun,
        "flags": toy.flag_values() | {"seeds": seeds, "variants": FLAGS.variants},
        "environment": shared_flags.environment(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    path = os.path.splitext(FLAGS.output)[0] + ".json"
    with open(path, "w") as f:
        json.dump(document, f, indent=2)
    print(f"Wrote {path}")


if __name__ == "__main__":
    FLAGS.set_default("output", "runs/toy_vs_hmc.json")
    app.run(main)
