"""Training and prediction cost of every method, side by side, with a peer.

The MNIST MLP 784-W-W-10 (ReLU), batch 128, Adam 1e-3, trained on the MNIST
training digits by:

* ``ml``: plain Keras ``Dense`` layers (``MaximumLikelihood``), the reference;
* ``ml_weight_norm``: the same network with deterministic weight-normalised
  layers (``w = g v / ||v||``): what weight normalisation alone costs, since
  Bayes by Hypernet's MNIST network is weight-normalised;
* ``two_products``: the same network whose layers compute ``x @ K + x^2 @
  L + b`` with twice the trained weights (``MaximumLikelihood``): the two
  products of Bayes by Backprop's local reparameterisation and nothing
  else, the least such a method can cost;
* ``mc_dropout``: ``Dense`` + ``Dropout(0.3)`` (``MCDropout``);
* ``bbb``: ``BayesByBackpropDense`` layers (``BayesByBackprop``, its
  default KL estimate: Monte Carlo with noise per kernel row and column);
* ``bbb_paper_kl``: the same with the paper's Monte Carlo KL
  (``kl_estimate="independent_monte_carlo"``: one normal draw per weight);
* ``bbh``: ``HyperDense(mode="weight_norm")``, ``BayesByHypernet`` with the
  package defaults (5 draws per step, the semi-implicit KL bound with 16
  extra mixture draws);
* ``bbh_scale``: the same in ``mode="scale"`` (``HyperDense``'s default: no
  weight normalisation);
* ``bbh_full``: ``HyperDense(mode="full")`` (every weight and bias
  generated), package defaults;
* ``flipout``: TensorFlow Probability's ``tfp.layers.DenseFlipout`` network
  on tf_keras (the outside peer), KL scaled by ``1 / num_examples``;
* ``deep_ensemble``: ``DeepEnsemble`` of 5 plain networks, trained together.

Two measurements (``--measure``):

* ``processes``: each (method, width) in a fresh process, one after the
  other: seconds per epoch (``--epochs`` epochs, the first dropped as
  warm-up: it traces; median of the rest), peak memory while training (on a
  GPU the device's peak allocation, else the process's peak resident memory
  and its rise over the memory held before the model was built), and at
  ``--predict_width`` the seconds of ``predict_distribution`` on the 10 000
  test digits with each of ``--predict_draws`` draws (median of
  ``--predict_repeats`` after an untimed call on a slice, which traces).
  ``--slow_methods`` train their epochs on
  ``--slow_train_size`` digits (KL still weighted by 1 / 60 000) and their
  epoch time is scaled to 60 000 digits, at ``--slow_widths`` only.
* ``interleaved``: per width, one process trains every other method one
  epoch per round for ``--rounds`` rounds (the first dropped), so a slow
  spell of a shared machine hits all methods alike: the epoch ratios to
  quote.

Ratios are to the ``ml`` row of the same measurement and width; the
prediction ratio divides by one ``ml`` prediction pass
(``predict_distribution`` with one draw).

Run (two CPU cores: well over an hour for the defaults, which train Bayes by
Backprop and DenseFlipout at W = 1600 too; docs/performance.md splits them)::

    python benchmarks/performance.py --data_dir=../shared/data/mnist \
        --output=docs/runs/performance.json \
        --figure=docs/figures/performance_scaling.png

``--measure=interleaved`` alone adds the interleaved timings to an existing
``--output``; ``python benchmarks/performance.py
--report=docs/runs/performance.json [--figure=...]`` prints the Markdown
tables of docs/performance.md (and redraws the figure) from the JSON.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
METHODS = (
    "ml",
    "ml_weight_norm",
    "two_products",
    "mc_dropout",
    "bbb",
    "bbb_paper_kl",
    "bbh",
    "bbh_scale",
    "bbh_full",
    "flipout",
    "deep_ensemble",
)
flags.DEFINE_list("methods", list(METHODS), f"Methods, of {', '.join(METHODS)}.")
flags.DEFINE_list("widths", ["200", "800", "1600"], "Hidden layer widths W.")
flags.DEFINE_integer("epochs", 4, "Epochs per (method, width); the first is dropped.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("train_size", 0, "First N training digits; 0: all 60 000.")
flags.DEFINE_list(
    "slow_methods",
    ["bbh_full"],
    "Methods timed on --slow_train_size digits per epoch, scaled to a full epoch.",
)
flags.DEFINE_integer("slow_train_size", 1280, "Digits per epoch of --slow_methods.")
flags.DEFINE_list(
    "slow_widths", ["200", "800"], "The only widths run for --slow_methods."
)
flags.DEFINE_string("data_dir", None, "MNIST IDX folder; default $BBH_MNIST_DIR.")
flags.DEFINE_integer("predict_width", 800, "Width at which prediction is timed.")
flags.DEFINE_list(
    "predict_draws", ["1", "10", "100"], "Draws for predict_distribution."
)
flags.DEFINE_integer("predict_repeats", 2, "Timed prediction calls per draw count.")
flags.DEFINE_integer(
    "seed",
    0,
    "Seed of initialisation, shuffling and noise.",
    lower_bound=0,
    upper_bound=2**32 - 1,
)
flags.DEFINE_string(
    "output", "", "JSON file for the results (appended as runs finish)."
)
flags.DEFINE_string("figure", "", "PNG of epoch seconds and ratios against width.")
flags.DEFINE_string(
    "report", "", "Print the Markdown tables of this JSON (and draw --figure) and exit."
)
flags.DEFINE_list(
    "measure",
    ["processes", "interleaved"],
    "processes: one process per (method, width) for memory, prediction and "
    "the slow methods; interleaved: epoch times of the other methods "
    "interleaved in one process per width (with only this, --output is "
    "updated in place).",
)
flags.DEFINE_integer(
    "rounds", 4, "Interleaved rounds of one epoch per method; the first is dropped."
)
flags.DEFINE_string(
    "worker", "", "Internal: 'method:width' to measure in this process."
)
flags.DEFINE_bool(
    "jit", False, "Compile every method's training step with XLA (flipout's too)."
)

DROPOUT_RATE = 0.3
ENSEMBLE_MEMBERS = 5


# ------------------------------------------------------------------ worker
def resident_mib():
    """This process's resident memory now, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_resident_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_bbh_tf(method, width, num_examples):
    """A compiled bbh_tf model of ``method`` with hidden width ``width``."""
    import keras
    from reference_layers import TwoProductDense, WeightNormDense

    import bbh_tf

    hypernet = bbh_tf.HyperNetwork() if method.startswith("bbh") else None

    def dense(units, activation):
        if method in ("bbh", "bbh_scale"):
            mode = "scale" if method == "bbh_scale" else "weight_norm"
            return bbh_tf.HyperDense(
                units, activation=activation, mode=mode, hypernet=hypernet
            )
        if method == "bbh_full":
            return bbh_tf.HyperDense(
                units, activation=activation, mode="full", hypernet=hypernet
            )
        if method.startswith("bbb"):
            return bbh_tf.BayesByBackpropDense(units, activation=activation)
        if method == "ml_weight_norm":
            return WeightNormDense(units, activation=activation)
        if method == "two_products":
            return TwoProductDense(units, activation=activation)
        return keras.layers.Dense(units, activation=activation)

    stack = [keras.Input((784,))]
    for _ in range(2):
        stack.append(dense(width, "relu"))
        if method == "mc_dropout":
            stack.append(keras.layers.Dropout(DROPOUT_RATE))
    stack.append(dense(10, "softmax"))
    network = keras.Sequential(stack)

    compile_args = dict(
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=FLAGS.jit,
    )
    if method.startswith("bbh"):
        model = bbh_tf.BayesByHypernet(network, num_examples=num_examples)
    elif method.startswith("bbb"):
        paper = method == "bbb_paper_kl"
        model = bbh_tf.BayesByBackprop(
            network,
            num_examples=num_examples,
            kl_estimate="independent_monte_carlo" if paper else "monte_carlo",
        )
    elif method == "mc_dropout":
        model = bbh_tf.MCDropout(network)
    elif method == "deep_ensemble":
        model = bbh_tf.DeepEnsemble(network, num_members=ENSEMBLE_MEMBERS)
    else:
        model = bbh_tf.MaximumLikelihood(network)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args)
    return model


def build_flipout(width, num_examples):
    """TFP's DenseFlipout MLP on tf_keras, and a function(x, draws) giving
    the mean and std of its outputs over draws (the batch tiled once per
    draw: flipout perturbs every row differently, so this is one pass)."""
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    tfd = tfp.distributions

    def kl(q, p, _):
        return tfd.kl_divergence(q, p) / num_examples

    model = tf_keras.Sequential(
        [tf_keras.Input((784,))]
        + [
            tfp.layers.DenseFlipout(width, activation="relu", kernel_divergence_fn=kl)
            for _ in range(2)
        ]
        + [tfp.layers.DenseFlipout(10, activation="softmax", kernel_divergence_fn=kl)]
    )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=FLAGS.jit,
    )
    functions = {}

    def predict_distribution(x, num_samples, batch_size=128):
        function = functions.get(num_samples)
        if function is None:

            @tf.function(reduce_retracing=True)
            def function(batch):
                n = tf.shape(batch)[0]
                out = model(tf.tile(batch, [num_samples, 1]), training=False)
                out = tf.reshape(out, (num_samples, n, -1))
                return tf.reduce_mean(out, 0), tf.math.reduce_std(out, 0)

            functions[num_samples] = function
        means, stds = [], []
        for start in range(0, len(x), batch_size):
            mean, std = function(x[start : start + batch_size])
            means.append(mean.numpy())
            stds.append(std.numpy())
        return means, stds

    return model, predict_distribution


def measure(method, width):
    """Train and time ``method`` at ``width`` in this process; a dict."""
    import keras
    import tensorflow as tf

    import bbh_tf

    gpus = tf.config.list_physical_devices("GPU")
    keras.utils.set_random_seed(FLAGS.seed)
    x, y = bbh_tf.data.load_mnist("train", data_dir=FLAGS.data_dir, flatten=True)
    x_test, _ = bbh_tf.data.load_mnist("test", data_dir=FLAGS.data_dir, flatten=True)
    if FLAGS.train_size:
        x, y = x[: FLAGS.train_size], y[: FLAGS.train_size]
    # The KL term's weight 1 / num_examples stays that of the full set.
    num_examples = len(x)
    subset = method in FLAGS.slow_methods and FLAGS.slow_train_size < len(x)
    if subset:
        x, y = x[: FLAGS.slow_train_size], y[: FLAGS.slow_train_size]
    before_mib = resident_mib()

    if method == "flipout":
        import tf_keras

        model, predict = build_flipout(width, num_examples)
        callback_base = tf_keras.callbacks.Callback
    else:
        model = build_bbh_tf(method, width, num_examples)
        predict = model.predict_distribution
        callback_base = keras.callbacks.Callback

    class EpochTimer(callback_base):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    seconds = []
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    history = model.fit(
        x,
        y,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        callbacks=[EpochTimer()],
        verbose=0,
    ).history
    # Seconds for an epoch of all num_examples digits (scaled up for a subset).
    scale = num_examples / len(x)
    result = {
        "method": method,
        "width": width,
        "examples_per_timed_epoch": len(x),
        "epoch_seconds": seconds,
        "scaled_to_full_epoch": subset,
        "median_epoch_seconds": statistics.median(seconds[1:]) * scale,
        "final_loss": float(history["loss"][-1]),
        "final_accuracy": float(history["accuracy"][-1]),
        "device": "GPU" if gpus else "CPU",
    }
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        result["gpu_peak_mib"] = peak
        result["gpu_name"] = tf.config.experimental.get_device_details(gpus[0]).get(
            "device_name", "GPU"
        )
    result["peak_rss_mib"] = peak_resident_mib()
    result["rss_rise_mib"] = result["peak_rss_mib"] - before_mib

    if width == FLAGS.predict_width:
        draws_list = [1] if method == "ml" else [int(d) for d in FLAGS.predict_draws]
        result["predict_seconds"] = {}
        for draws in draws_list:
            # Traces for a full batch and for the last, shorter one.
            predict(x_test[: 128 + len(x_test) % 128], num_samples=draws)
            times = []
            for _ in range(FLAGS.predict_repeats):
                start = time.perf_counter()
                predict(x_test, num_samples=draws)
                times.append(time.perf_counter() - start)
            result["predict_seconds"][str(draws)] = statistics.median(times)
        result["peak_rss_mib_with_prediction"] = peak_resident_mib()
        if gpus:
            result["gpu_peak_mib_with_prediction"] = (
                tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
            )
    return result


def measure_interleaved(width):
    """Epoch seconds of every non-slow method at ``width``, their epochs
    interleaved (one of each per round), so slow drifts of a shared machine
    hit all methods alike; a list of dicts."""
    import keras

    import bbh_tf

    x, y = bbh_tf.data.load_mnist("train", data_dir=FLAGS.data_dir, flatten=True)
    if FLAGS.train_size:
        x, y = x[: FLAGS.train_size], y[: FLAGS.train_size]
    models = {}
    for method in driver_methods():
        if method in FLAGS.slow_methods:
            continue
        keras.utils.set_random_seed(FLAGS.seed)
        if method == "flipout":
            models[method], _ = build_flipout(width, len(x))
        else:
            models[method] = build_bbh_tf(method, width, len(x))
    seconds = {method: [] for method in models}
    for _ in range(FLAGS.rounds):
        for method, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0)
            seconds[method].append(time.perf_counter() - start)
    return [
        {
            "method": method,
            "width": width,
            "epoch_seconds": values,
            "median_epoch_seconds": statistics.median(values[1:]),
            "fastest_epoch_seconds": min(values[1:]),
        }
        for method, values in seconds.items()
    ]


# ------------------------------------------------------------------ driver
def driver_methods():
    """``--methods`` with ``ml`` (the reference) first."""
    return ["ml"] + [m for m in FLAGS.methods if m != "ml"]


def run_worker(method, width):
    """Measure in a fresh process; the result, or a dict with an error."""
    args = [
        sys.executable,
        os.path.abspath(__file__),
        f"--worker={method}:{width}",
        f"--methods={','.join(FLAGS.methods)}",
        f"--rounds={FLAGS.rounds}",
        f"--epochs={FLAGS.epochs}",
        f"--batch_size={FLAGS.batch_size}",
        f"--train_size={FLAGS.train_size}",
        f"--predict_width={FLAGS.predict_width}",
        f"--predict_draws={','.join(FLAGS.predict_draws)}",
        f"--predict_repeats={FLAGS.predict_repeats}",
        f"--seed={FLAGS.seed}",
        f"--slow_methods={','.join(FLAGS.slow_methods)}",
        f"--slow_train_size={FLAGS.slow_train_size}",
        f"--jit={FLAGS.jit}",
    ]
    if FLAGS.data_dir:
        args.append(f"--data_dir={FLAGS.data_dir}")
    completed = subprocess.run(args, capture_output=True, text=True)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    # Out of memory or a crash: recorded, not hidden.
    return {
        "method": method,
        "width": width,
        "error": f"exit {completed.returncode}: {completed.stderr.strip()[-500:]}",
    }


def add_ratios(results):
    """Ratios to the ml row of the same width (epochs and prediction)."""
    reference = {
        r["width"]: r for r in results if r["method"] == "ml" and "error" not in r
    }
    for r in results:
        ml = reference.get(r["width"])
        if ml is None or "error" in r:
            continue
        r["epoch_ratio_to_ml"] = r["median_epoch_seconds"] / ml["median_epoch_seconds"]
        if "fastest_epoch_seconds" in r and "fastest_epoch_seconds" in ml:
            r["fastest_epoch_ratio_to_ml"] = (
                r["fastest_epoch_seconds"] / ml["fastest_epoch_seconds"]
            )
        if "predict_seconds" in r and "predict_seconds" in ml:
            one_pass = ml["predict_seconds"]["1"]
            r["predict_ratio_to_one_ml_pass"] = {
                d: s / one_pass for d, s in r["predict_seconds"].items()
            }


def epoch_rows(document):
    """One row per (method, width) for the figure: the interleaved timing
    where there is one, else the separate process's."""
    rows = {
        (r["method"], r["width"]): r for r in document["results"] if "error" not in r
    }
    rows.update(
        {
            (r["method"], r["width"]): r
            for r in document.get("interleaved", [])
            if "error" not in r
        }
    )
    return list(rows.values())


def plot(document, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = epoch_rows(document)
    widths = sorted({r["width"] for r in results})
    fig, (ax_seconds, ax_ratio) = plt.subplots(1, 2, figsize=(13, 4.4))
    for method in METHODS:
        rows = sorted(
            (r for r in results if r["method"] == method), key=lambda r: r["width"]
        )
        if not rows:
            continue
        style = "o--" if rows[0].get("scaled_to_full_epoch") else "o-"
        label = method + (" (scaled)" if rows[0].get("scaled_to_full_epoch") else "")
        x = [r["width"] for r in rows]
        # The fastest interleaved epoch where there is one: on a shared
        # host the medians carry its slow spells.
        ax_seconds.plot(
            x,
            [r.get("fastest_epoch_seconds", r["median_epoch_seconds"]) for r in rows],
            style,
            label=label,
        )
        ax_ratio.plot(
            x,
            [
                r.get("fastest_epoch_ratio_to_ml", r.get("epoch_ratio_to_ml"))
                for r in rows
            ],
            style,
            label=label,
        )
    ax_seconds.set(
        xlabel="hidden width W",
        ylabel="seconds per epoch (60 000 digits; fastest)",
        yscale="log",
        title="Training cost, MLP 784-W-W-10, batch 128",
    )
    ax_ratio.set(
        xlabel="hidden width W",
        ylabel="epoch time / ML epoch time",
        yscale="log",
        title="Ratio to maximum likelihood (same width)",
    )
    ax_ratio.axhline(1.15, color="gray", linestyle=":", linewidth=1)
    for ax in (ax_seconds, ax_ratio):
        ax.set_xscale("log")
        ax.set_xticks(widths)
        ax.set_xticklabels([str(w) for w in widths])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    ax_ratio.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


def report(document):
    """Print the Markdown tables of a results document."""
    separate = {(r["method"], r["width"]): r for r in document["results"]}
    together = {(r["method"], r["width"]): r for r in document.get("interleaved", [])}
    keys = sorted(
        set(separate) | set(together), key=lambda k: (k[1], METHODS.index(k[0]))
    )
    lines = [
        "| width | method | s/epoch, interleaved: median | ratio to ML | fastest "
        "| ratio to ML | s/epoch, own process | ratio to ML | peak RSS MiB "
        "| RSS rise MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cells(r, interleaved):
        # Interleaved rows: median and fastest epoch; own-process rows:
        # median epoch and memory.
        if r is None:
            return ["", "", "", ""]
        if "error" in r:
            return ["failed: " + r["error"][:60], "", "", ""]
        scaled = " (scaled)" if r.get("scaled_to_full_epoch") else ""
        out = [
            f"{r['median_epoch_seconds']:.2f}{scaled}",
            f"{r.get('epoch_ratio_to_ml', float('nan')):.2f}",
        ]
        if interleaved:
            fastest = r.get("fastest_epoch_seconds")
            return out + (
                ["", ""]
                if fastest is None
                else [
                    f"{fastest:.2f}",
                    f"{r.get('fastest_epoch_ratio_to_ml', float('nan')):.2f}",
                ]
            )
        return out + [f"{r['peak_rss_mib']:.0f}", f"{r['rss_rise_mib']:.0f}"]

    for method, width in keys:
        row = [str(width), method]
        row += cells(together.get((method, width)), True)
        row += cells(separate.get((method, width)), False)
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "| method | draws | seconds | ratio to one ML pass |",
        "|---|---:|---:|---:|",
    ]
    for r in document["results"]:
        for draws, seconds in r.get("predict_seconds", {}).items():
            ratio = r.get("predict_ratio_to_one_ml_pass", {}).get(draws, float("nan"))
            lines.append(f"| {r['method']} | {draws} | {seconds:.3f} | {ratio:.1f} |")
    print("\n".join(lines))


def save(document):
    if FLAGS.output:
        document["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(FLAGS.output, "w") as f:
            json.dump(document, f, indent=1)


def main(argv):
    del argv
    if FLAGS.worker:
        method, width = FLAGS.worker.split(":")
        if method == "interleaved":
            result = measure_interleaved(int(width))
        else:
            result = measure(method, int(width))
        print("RESULT " + json.dumps(result), flush=True)
        return
    if FLAGS.report:
        with open(FLAGS.report) as f:
            document = json.load(f)
        report(document)
        if FLAGS.figure:
            plot(document, FLAGS.figure)
        return
    unknown = set(FLAGS.methods) - set(METHODS)
    if unknown:
        raise app.UsageError(f"--methods: unknown {sorted(unknown)}; known: {METHODS}")
    if FLAGS.epochs < 2 or FLAGS.rounds < 2:
        raise app.UsageError(
            "--epochs and --rounds must be >= 2 (the first is dropped)."
        )
    for name in ("widths", "slow_widths", "predict_draws"):
        if not all(v.isdigit() and int(v) > 0 for v in FLAGS[name].value):
            raise app.UsageError(
                f"--{name} must list integers >= 1, got {FLAGS[name].value}."
            )
    widths = [int(w) for w in FLAGS.widths]
    methods = driver_methods()
    flag_names = (
        "methods",
        "widths",
        "epochs",
        "batch_size",
        "train_size",
        "slow_methods",
        "slow_train_size",
        "slow_widths",
        "predict_width",
        "predict_draws",
        "predict_repeats",
        "seed",
        "rounds",
        "jit",
    )
    if (
        "processes" not in FLAGS.measure
        and FLAGS.output
        and os.path.exists(FLAGS.output)
    ):
        with open(FLAGS.output) as f:
            document = json.load(f)
    else:
        document = {"cpu_count": os.cpu_count(), "results": []}
    results = document["results"]
    slow_widths = {int(w) for w in FLAGS.slow_widths}
    if "processes" in FLAGS.measure:
        document["flags"] = {name: FLAGS[name].value for name in flag_names}
        document["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    for width in widths if "processes" in FLAGS.measure else ():
        for method in methods:
            if method in FLAGS.slow_methods and width not in slow_widths:
                continue
            start = time.perf_counter()
            results.append(run_worker(method, width))
            add_ratios(results)
            r = results[-1]
            summary = r.get("error") or (
                f"{r['median_epoch_seconds']:.2f} s/epoch, "
                f"ratio {r.get('epoch_ratio_to_ml', float('nan')):.2f}, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
            print(
                f"W={width} {method}: {summary} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            save(document)
    if "interleaved" in FLAGS.measure:
        document["interleaved_flags"] = {name: FLAGS[name].value for name in flag_names}
        document["interleaved_started"] = time.strftime("%Y-%m-%d %H:%M:%S")
        interleaved = document["interleaved"] = []
        for width in widths:
            start = time.perf_counter()
            rows = run_worker("interleaved", width)
            if isinstance(rows, dict):  # an error
                rows = [rows]
            interleaved.extend(rows)
            add_ratios(interleaved)
            for r in rows:
                print(
                    f"interleaved W={width} {r['method']}: "
                    + (
                        r.get("error")
                        or f"{r['median_epoch_seconds']:.2f} s/epoch, "
                        f"ratio {r.get('epoch_ratio_to_ml', float('nan')):.2f}"
                    ),
                    flush=True,
                )
            print(f"({time.perf_counter() - start:.0f} s)", flush=True)
            save(document)
    if FLAGS.figure:
        plot(document, FLAGS.figure)
    report(document)


if __name__ == "__main__":
    app.run(main)
