"""The toy regression's exact posterior, by Hamiltonian Monte Carlo.

A reference for the bands of examples/toy_regression.py: the same 1-100-1
ReLU network, data (``--seed``), likelihood ``N(f(x), --noise_std^2)`` and
prior (``--prior``, default the package's ``ScaleMixturePrior()``), with
every weight and bias (301 values) random, sampled by NUTS
(``tfp.mcmc.NoUTurnSampler``) in ``--chains`` chains. The variational
methods approximate this posterior (Bayes by Backprop as in the example,
Bayes by Hypernet with ``--bbh_layers=both``); if its bands are narrower
outside the data than a baseline's, that baseline is wider than the exact
answer there.

It reports what the example reports (mean std of ``f(x)`` inside
``|x| <= 4`` and outside ``4 < |x| <= 6`` the data, train RMSE of the
predictive mean), the prior's bands (``--prior_draws`` networks drawn from
the prior, no data), and convergence diagnostics: the largest R-hat of
``f(x)`` over the grid (between the chains; near 1 when they agree), the
same with split chains, and the smallest effective sample size. ``converged``
in the JSON is the plan's rule, R-hat at most 1.1
(docs/runs/toy_hmc/PLAN.txt); today's usual threshold is 1.01. It writes a PNG with the example's
panel layout and a JSON beside it; ``--with_methods`` trains the example's
methods too (as the example does, every flag of which applies) and adds
their panels and numbers, so that one run on one machine compares them.

``--output_layer_from=bbh`` (or ``bbb`` with ``--bbb_layers=first``) is the
reference for the example's own placement, a posterior on the first layer
with a point-estimate output layer: it trains that method as the example
does, fixes the output layer at what the method learned, and samples the
first layer's 200 values. With that output layer held fixed, the ELBO is
the log marginal likelihood of the output layer (the first layer
integrated out under its prior) minus KL(q || this conditional posterior), so the conditional posterior is the best q there is (at
``--kl_weight=1``, and for the exact KL, which Bayes by Hypernet only
estimates); the method's bands are set beside it. The joint optimum over
q and the output layer may pick another output layer; this compares q only
at the method's. The prior's bands are then those of the first layer's
prior with the same output layer, and the JSON records that layer.

Usage (a few minutes per seed on two CPU cores; docs/runs/toy_hmc/)::

    python research/toy_hmc_reference.py --seed=0 \\
        --output=docs/runs/toy_hmc/hmc_seed0.png
    python research/toy_hmc_reference.py --seed=0 --with_methods=bbh,ml,mc_dropout,bbb \
        --output=docs/runs/toy_hmc/with_methods_seed0.png
    python research/toy_hmc_reference.py --seed=0 --output_layer_from=bbh \
        --output=docs/runs/toy_hmc/first_layer/bbh_seed0.png
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
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import toy_regression as toy  # noqa: E402  (defines --seed, --noise_std, --prior, --output)
from absl import app, flags  # noqa: E402
from method_names import TITLES  # noqa: E402

import bbh_tf  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("chains", 8, "Independent NUTS chains.")
flags.DEFINE_integer(
    "burnin", 1000, "Steps per chain before the kept draws; the step size adapts here."
)
flags.DEFINE_integer("draws", 1000, "Kept steps per chain.")
flags.DEFINE_integer(
    "max_tree_depth", 10, "NUTS: at most 2^depth - 1 leapfrog steps per step."
)
flags.DEFINE_integer(
    "prior_draws", 10000, "Networks drawn from the prior for its bands."
)
flags.DEFINE_float(
    "init_stddev",
    0.1,
    "Chains start at independent N(0, init_stddev^2) networks; a larger value "
    "starts them further apart (a check that they still agree).",
)
flags.DEFINE_bool(
    "init_from_prior",
    False,
    "Chains start at networks drawn from the prior instead (each value in "
    "the prior's narrow or wide component), a check that they still agree.",
)
flags.DEFINE_enum(
    "output_layer_from",
    "",
    ["", "bbh", "bbb"],
    "Sample the first layer only (200 values), the output layer fixed at the "
    "point estimate this method of the example learns (its posterior on the "
    "first layer only: --bbh_layers=first, --bbb_layers=first): the exact "
    "posterior given that output layer, drawn beside the method's bands. "
    "Empty: every value random.",
)
flags.DEFINE_list(
    "with_methods",
    [],
    "Also train these methods of the example (its names: bbh, ml, mc_dropout, "
    "bbb), with its flags and seeding, and draw them beside HMC.",
)

HIDDEN = toy.HIDDEN_UNITS
# Layout of one flat state vector: first kernel, first bias, output kernel,
# output bias; with a fixed output layer, the first two only.
NUM_VALUES = 3 * HIDDEN + 1
NUM_FIRST_LAYER_VALUES = 2 * HIDDEN
# --output_layer_from: method -> (its trainer in the example, the flag that
# must keep its output layer a point estimate).
TRAINERS = {"bbh": (toy.train_bbh, "bbh_layers"), "bbb": (toy.train_bbb, "bbb_layers")}


def network(state, x, output_layer=None):
    """``f(x)`` for a batch of flat states ``(..., NUM_VALUES)`` at inputs
    ``x`` ``(n,)``: shape ``(..., n)``. With ``output_layer`` (kernel
    ``(HIDDEN,)``, bias ``()``) fixed, the states hold the first layer only
    ``(..., NUM_FIRST_LAYER_VALUES)``."""
    kernel, bias = state[..., :HIDDEN], state[..., HIDDEN : 2 * HIDDEN]
    if output_layer is None:
        output_kernel, output_bias = (
            state[..., 2 * HIDDEN : 3 * HIDDEN],
            state[..., -1:],
        )
    else:
        output_kernel, output_bias = output_layer
    hidden = tf.nn.relu(kernel[..., None, :] * x[:, None] + bias[..., None, :])
    return tf.reduce_sum(hidden * output_kernel[..., None, :], -1) + output_bias


def fixed_output_layer(model):
    """The learned output layer of a trained example model (a point-estimate
    ``Dense(1)`` last in its network), as ``network``'s ``output_layer``."""
    kernel, bias = model.network.layers[-1].get_weights()
    # reshape, not indexing: a layer of another shape fails here.
    return tf.constant(kernel.reshape(HIDDEN)), tf.constant(bias.reshape(()))


def log_posterior_fn(prior, x, y, noise_std, output_layer=None):
    """Unnormalised log posterior of flat states: the prior's log-density
    of every sampled value plus the Gaussian log-likelihood of the data."""
    likelihood_scale = tf.constant(noise_std, tf.float32)

    def log_posterior(state):
        log_prior = tf.reduce_sum(prior.log_prob(state), -1)
        log_likelihood = tf.reduce_sum(
            tfp.distributions.Normal(
                network(state, x, output_layer), likelihood_scale
            ).log_prob(y),
            -1,
        )
        return log_prior + log_likelihood

    return log_posterior


def sample(log_posterior, initial_state, seed):
    """NUTS draws ``(draws, chains, values)`` and the per-step traces."""
    kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
        tfp.mcmc.NoUTurnSampler(
            log_posterior, step_size=1e-3, max_tree_depth=FLAGS.max_tree_depth
        ),
        num_adaptation_steps=int(0.8 * FLAGS.burnin),
    )

    @tf.function(jit_compile=True)
    def run(initial_state, seed):
        return tfp.mcmc.sample_chain(
            num_results=FLAGS.draws,
            num_burnin_steps=FLAGS.burnin,
            current_state=initial_state,
            kernel=kernel,
            trace_fn=lambda _, results: (
                results.inner_results.leapfrogs_taken,
                results.inner_results.has_divergence,
                results.new_step_size,
            ),
            seed=seed,
        )

    return run(initial_state, seed)


def main(argv):
    del argv
    toy.check_flags()  # the example's flags, --noise_std and --prior among them
    shared_flags.check(
        {
            name: FLAGS[name].value
            for name in (
                "chains",
                "burnin",
                "draws",
                "max_tree_depth",
                "prior_draws",
                "init_stddev",
            )
        }
    )
    if FLAGS.seed >= 2**31:  # the sampler's seed is an int32 pair
        raise app.UsageError(f"--seed must be below 2**31 here, got {FLAGS.seed}.")
    if FLAGS.chains < 2:
        raise app.UsageError(
            f"--chains must be at least 2 for R-hat, got {FLAGS.chains}."
        )
    unknown = sorted(set(FLAGS.with_methods) - set(toy.METHODS))
    if unknown:
        raise app.UsageError(
            f"--with_methods must name methods of {sorted(toy.METHODS)}, got {unknown}."
        )
    if FLAGS.output_layer_from:
        layers_flag = TRAINERS[FLAGS.output_layer_from][1]
        if FLAGS[layers_flag].value != "first":
            raise app.UsageError(
                f"--output_layer_from={FLAGS.output_layer_from} needs "
                f"--{layers_flag}=first (a point-estimate output layer), got "
                f"{FLAGS[layers_flag].value!r}."
            )

    prior = (shared_flags.prior() or bbh_tf.ScaleMixturePrior()).distribution()
    x, y = bbh_tf.data.toy_regression(n=20, seed=FLAGS.seed, noise_std=FLAGS.noise_std)
    grid = np.linspace(*toy.GRID).astype(np.float32)
    x_eval = tf.constant(np.concatenate([grid, x[:, 0]]))

    methods, method_bands, output_layer = {}, {}, None
    num_values = NUM_VALUES
    if FLAGS.output_layer_from:
        name = FLAGS.output_layer_from
        print(f"== {name}, whose output layer the chains keep fixed")
        keras.utils.set_random_seed(FLAGS.seed)  # as the example seeds each method
        model = TRAINERS[name][0](x, y)
        output_layer = fixed_output_layer(model)
        method_mean, method_std = toy.predictive(model, x_eval.numpy()[:, None])
        method_bands[f"{TITLES[name]}, first layer"] = (
            method_mean[: len(grid)],
            method_std[: len(grid)],
        )
        methods[name] = toy.summarize(grid, y, method_mean, method_std)
        print(name, json.dumps(methods[name]))
        num_values = NUM_FIRST_LAYER_VALUES
    log_posterior = log_posterior_fn(
        prior, tf.constant(x[:, 0]), tf.constant(y[:, 0]), FLAGS.noise_std, output_layer
    )

    prior_states = prior.sample([FLAGS.prior_draws, num_values], seed=FLAGS.seed)
    prior_outputs = np.concatenate(
        [  # in slices: all at once is gigabytes
            network(prior_states[i : i + 1000], x_eval, output_layer).numpy()
            for i in range(0, FLAGS.prior_draws, 1000)
        ]
    )
    prior_summary = toy.summarize(grid, y, prior_outputs.mean(0), prior_outputs.std(0))

    # Chains start at independent random networks, not at one point: R-hat
    # compares them.
    if FLAGS.init_from_prior:
        initial_state = prior.sample([FLAGS.chains, num_values], seed=FLAGS.seed + 1)
    else:
        initial_state = tf.random.stateless_normal(
            [FLAGS.chains, num_values], seed=[FLAGS.seed, 1], stddev=FLAGS.init_stddev
        )
    start = time.perf_counter()
    states, (leapfrogs, divergences, step_sizes) = sample(
        log_posterior, initial_state, tf.constant([FLAGS.seed, 2], tf.int32)
    )
    seconds = time.perf_counter() - start

    outputs = network(states, x_eval, output_layer)  # (draws, chains, grid + data)
    rhat = tfp.mcmc.potential_scale_reduction(outputs[:, :, : len(grid)]).numpy()
    # Split R-hat also compares each chain's halves (catches a drifting chain).
    split_rhat = tfp.mcmc.potential_scale_reduction(
        outputs[:, :, : len(grid)], split_chains=True
    ).numpy()
    ess = tfp.mcmc.effective_sample_size(
        outputs[:, :, : len(grid)], cross_chain_dims=1
    ).numpy()
    outputs = outputs.numpy().reshape(-1, outputs.shape[-1])
    mean, std = outputs.mean(0), outputs.std(0)
    summary = toy.summarize(grid, y, mean, std)
    diagnostics = {
        "max_rhat_f": float(np.max(rhat)),
        "max_split_rhat_f": float(np.max(split_rhat)),
        "min_ess_f": float(np.min(ess)),
        # Traced over the kept draws only (sample_chain drops the burn-in).
        "divergent_fraction": float(np.mean(divergences.numpy())),
        "mean_leapfrogs": float(np.mean(leapfrogs.numpy())),
        "step_size": float(step_sizes.numpy()[-1]),
        "seconds": round(seconds, 1),
        "sampled_values": num_values,
    }
    converged = diagnostics["max_rhat_f"] <= 1.1

    print(f"{'':<8} {'std |x|<=4':>11} {'std 4<|x|<=6':>13} {'train RMSE':>11}")
    for name, row in (("hmc", summary), ("prior", prior_summary)):
        print(
            f"{name:<8} {row['std_inside']:>11.3f} {row['std_outside']:>13.3f} "
            f"{row['train_rmse']:>11.3f}"
        )
    print("diagnostics:", json.dumps(diagnostics), "converged:", converged)

    hmc_title = (
        f"HMC, first layer\n({TITLES[FLAGS.output_layer_from]}'s output layer)"
        if FLAGS.output_layer_from
        else "HMC, both layers"
    )
    bands = {hmc_title: (mean[: len(grid)], std[: len(grid)])} | method_bands
    for name in FLAGS.with_methods:
        if name in methods:
            continue  # trained above, with its output layer
        print(f"== {name}")
        keras.utils.set_random_seed(FLAGS.seed)  # as the example seeds each method
        method_mean, method_std = toy.METHODS[name](x, y, x_eval.numpy()[:, None])
        bands[name] = (method_mean[: len(grid)], method_std[: len(grid)])
        methods[name] = toy.summarize(grid, y, method_mean, method_std)
        print(name, json.dumps(methods[name]))
    toy.plot(FLAGS.output, grid, x, y, bands)
    toy.write_json(
        {
            # The example's flags apply to --with_methods' training.
            "flags": toy.flag_values()
            | {
                name: FLAGS[name].value
                for name in (
                    "chains",
                    "burnin",
                    "draws",
                    "max_tree_depth",
                    "prior_draws",
                    "init_stddev",
                    "init_from_prior",
                    "output_layer_from",
                    "with_methods",
                )
            },
            "hmc": summary,
            # The band itself, for the example's dashed reference band.
            "band": {
                "x": grid.tolist(),
                "mean": mean[: len(grid)].tolist(),
                "std": std[: len(grid)].tolist(),
            },
            "prior": prior_summary,
            "methods": methods,
            "output_layer": None
            if output_layer is None
            else {
                "kernel": output_layer[0].numpy().tolist(),
                "bias": float(output_layer[1]),
            },
            "diagnostics": diagnostics,
            "converged": converged,
        }
    )


if __name__ == "__main__":
    app.run(main)
