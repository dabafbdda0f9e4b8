"""Smoke tests of the example scripts: each runs end to end in a subprocess
with tiny settings and writes its files, so the scripts cannot silently rot.

The MNIST ones need the IDX files: set ``BBH_MNIST_DIR`` (CI sets it);
without it they are skipped.
"""

import json
import math
import os

import numpy as np
import pytest
from conftest import REPO, run_subprocess

import bbh_tf

METHODS = {"bbh", "ml", "mc_dropout", "bbb"}
# The MNIST examples train a deep ensemble too.
MNIST_METHODS = METHODS | {"deep_ensemble"}
MNIST_DIR = os.environ.get("BBH_MNIST_DIR")
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR, reason="BBH_MNIST_DIR is not set (folder of the MNIST IDX files)"
)


def run_example(script, *args, cwd):
    """Run ``examples/<script>`` with ``args``; fail with its stderr on error."""
    result = run_subprocess(os.path.join(REPO, "examples", script), *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def run_failing_example(script, *args, cwd):
    """Run ``examples/<script>``, expecting a usage error: its stderr."""
    result = run_subprocess(
        os.path.join(REPO, "examples", script), *args, cwd=cwd, timeout=300
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr


def printed_json(module, code, cwd):
    """Run the Python ``code`` after ``import json, sys`` and ``import
    <module> as example`` (a script of ``examples/``); the JSON it prints
    last."""
    prelude = (
        "import json, sys\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'examples')!r})\n"
        f"import {module} as example\n"
    )
    result = run_subprocess("-c", prelude + code, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def rejections(script, flags, *args, cwd):
    """Run ``examples/<script>``'s ``main`` through ``absl.app.run`` once for
    each flag of ``flags`` (with ``args``), all in one process, the flags
    reset to their defaults before each run: per flag, ``[exit code,
    stderr]``; an exception other than ``SystemExit`` shows as its
    traceback. (One process for all flags; the script's own entry point is
    run by ``run_failing_example``.)"""
    code = (
        "import contextlib, io, traceback\n"
        "from absl import app\n"
        "rejected = {}\n"
        f"for flag in {list(flags)!r}:\n"
        "    example.FLAGS.unparse_flags()\n"
        "    stderr = io.StringIO()\n"
        "    with contextlib.redirect_stderr(stderr):\n"
        "        try:\n"
        f"            app.run(example.main, argv=[{script!r}, flag, *{list(args)!r}])\n"
        "            status = 0\n"
        "        except SystemExit as exit:\n"
        "            status = exit.code\n"
        "        except Exception:\n"
        "            status = 'exception'\n"
        "            traceback.print_exc()\n"
        "    rejected[flag] = [status, stderr.getvalue()]\n"
        "print(json.dumps(rejected))\n"
    )
    return printed_json(script[:-3], code, cwd=cwd)


def built_settings(module, flagfile, builds, cwd, extra="{}"):
    """The settings of the models an example builds after parsing
    ``flagfile``: ``builds`` (Python lines, run after ``import <module> as
    example``) defines ``bbh`` and ``bbb``; ``extra`` is a dict expression
    of more entries."""
    script = (
        f"example.FLAGS(['example', '--flagfile={flagfile}'])\n"
        f"{builds}\n"
        "print(json.dumps({\n"
        "    'bbh_prior': bbh.prior.get_config(),\n"
        "    'bbb_priors': [l.prior.get_config() for l in bbb.network.layers\n"
        "                   if hasattr(l, 'prior')],\n"
        "    'draws': bbh.num_weight_samples, 'kl_weight': bbh.kl_weight,\n"
        "    'estimator': type(bbh.kl_estimator).__name__,\n"
        "    'semi_implicit': bbh.hypernets[0].semi_implicit,\n"
        "    'learning_rate_scale': bbh.hypernets[0].learning_rate_scale,\n"
        "    'conditional': bbh.kl_estimator.discriminator.conditional,\n"
        "    'steps': bbh.kl_estimator.steps,\n"
        f"    'warmup': bbh.kl_estimator.warmup_steps, **{extra}}}))\n"
    )
    return printed_json(module, script, cwd=cwd)


def test_toy_regression_runs_every_method(tmp_path):
    output = tmp_path / "toy.png"
    run_example(
        "toy_regression.py",
        "--steps=20",
        "--num_samples=5",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert output.stat().st_size > 0
    summary = json.loads((tmp_path / "toy.json").read_text())
    assert set(summary["methods"]) == METHODS
    for row in summary["methods"].values():
        assert all(math.isfinite(row[k]) for k in ("std_inside", "std_outside"))
    assert summary["methods"]["ml"]["std_outside"] == 0.0
    assert_records_the_environment(summary)


def assert_records_the_environment(results):
    """A results JSON names the processor and the versions it ran with."""
    import keras
    import tensorflow as tf

    import bbh_tf

    environment = results["environment"]
    assert environment["tensorflow"] == tf.__version__
    assert environment["keras"] == keras.__version__
    assert environment["bbh_tf"] == bbh_tf.__version__
    assert isinstance(environment["processor"], str) and environment["processor"]
    assert environment["cpu_count"] >= 1


FLAGFILE = os.path.join(REPO, "examples", "toy_authors_notebook.flags")


def test_toy_regression_takes_the_authors_notebook_flagfile(tmp_path):
    # The flagfile's settings reach the run; later flags override it.
    run_example(
        "toy_regression.py",
        f"--flagfile={FLAGFILE}",
        "--method=bbh",
        "--steps=2",
        "--discriminator_warmup_steps=1",
        "--num_samples=5",
        f"--output={tmp_path / 'toy.png'}",
        cwd=tmp_path,
    )
    summary = json.loads((tmp_path / "toy.json").read_text())
    flags = summary["flags"]
    assert flags["noise_std"] == 9.0 and flags["prior"] == [0.7, 0.01, 5.0]
    assert flags["discriminator_steps"] == 20 and flags["conditional"] is False
    assert flags["steps"] == 2 and flags["discriminator_warmup_steps"] == 1
    assert set(summary["methods"]) == {"bbh"}
    assert math.isfinite(summary["methods"]["bbh"]["std_outside"])


def test_toy_regression_flagfile_reaches_the_models(tmp_path):
    # The models the script builds carry the flagfile's settings: Bayes by
    # Hypernet's prior, draws, KL weight, discriminator form and steps, and
    # Bayes by Backprop's prior in both layers.
    built = built_settings(
        "toy_regression",
        FLAGFILE,
        "bbh, bbb = example.build_bbh(20), example.build_bbb(20)",
        tmp_path,
    )
    authors_prior = {"pi": 0.7, "sigma1": 0.01, "sigma2": 5.0}
    assert built["bbh_prior"] == authors_prior
    assert built["bbb_priors"] == [authors_prior, authors_prior]
    assert built["draws"] == 1 and built["kl_weight"] == pytest.approx(0.1)
    # The paper's deterministic generator and adversarial estimator.
    assert built["estimator"] == "AdversarialKL" and built["semi_implicit"] is False
    assert built["learning_rate_scale"] == 1.0
    assert built["conditional"] is False
    assert built["steps"] == 20 and built["warmup"] == 100


def test_toy_regression_runs_with_the_layer_flags(tmp_path):
    # --bbb_layers=first and --bbh_layers=both end to end, recorded in the
    # JSON (which layers each builds: the network-order test below).
    output = tmp_path / "toy.png"
    run_example(
        "toy_regression.py",
        "--method=all",
        "--bbb_layers=first",
        "--bbh_layers=both",
        "--steps=20",
        "--num_samples=5",
        f"--output={output}",
        cwd=tmp_path,
    )
    summary = json.loads((tmp_path / "toy.json").read_text())
    assert (summary["flags"]["bbb_layers"], summary["flags"]["bbh_layers"]) == (
        "first",
        "both",
    )
    for name in ("bbh", "bbb"):
        assert summary["methods"][name]["std_outside"] > 0


def test_toy_regression_creates_the_layers_in_network_order(tmp_path):
    # Each layer flag builds the layer types it names (--bbb_layers=first: a
    # posterior on the first layer only, the output layer plain Dense;
    # --bbh_layers=both: both layers generated; by default both layers of
    # both methods), first to
    # last: unseeded Keras initializers and seed generators take their seeds
    # when a layer is created, so the order fixes the initial weights and
    # noise streams of the default runs (and docs/results.md's toy numbers).
    # Each network's variables, seed states included, must equal those of
    # the layers named here, created in network order from the same seed.
    script = (
        "import keras, numpy as np, bbh_tf\n"
        "from bbh_tf import BayesByBackpropDense as BbB, HyperDense\n"
        "from keras.layers import Dense\n"
        "def in_order(*make_layers, hyper=True):\n"
        "    keras.utils.set_random_seed(3)\n"
        "    hypernet = bbh_tf.HyperNetwork() if hyper else None\n"
        "    layers = [make(hypernet) for make in make_layers]\n"
        "    return keras.Sequential([keras.Input((1,)), *layers])\n"
        "def same(network, reference):\n"
        "    return len(network.variables) == len(reference.variables) and all(\n"
        "        np.array_equal(a.numpy(), b.numpy())\n"
        "        for a, b in zip(network.variables, reference.variables))\n"
        "first_bbh = lambda h: HyperDense(\n"
        "    100, activation='relu', mode='full', hypernet=h)\n"
        "first_bbb = lambda h: BbB(100, activation='relu')\n"
        "hyper_output = lambda h: HyperDense(1, mode='full', hypernet=h)\n"
        "same_as_in_order = {}\n"
        "for layers, flags, bbh_second, bbb_second in [\n"
        "        ('first', ['--bbh_layers=first', '--bbb_layers=first'],\n"
        "         lambda h: Dense(1), lambda h: Dense(1)),\n"
        "        ('both', ['--bbh_layers=both', '--bbb_layers=both'],\n"
        "         hyper_output, lambda h: BbB(1)),\n"
        "        ('default', [], hyper_output, lambda h: BbB(1))]:\n"
        "    example.FLAGS.unparse_flags()\n"
        "    example.FLAGS(['example', *flags])\n"
        "    keras.utils.set_random_seed(3)\n"
        "    bbh = example.build_bbh(20).network\n"
        "    keras.utils.set_random_seed(3)\n"
        "    bbb = example.build_bbb(20).network\n"
        "    same_as_in_order[f'bbh {layers}'] = same(\n"
        "        bbh, in_order(first_bbh, bbh_second))\n"
        "    same_as_in_order[f'bbb {layers}'] = same(\n"
        "        bbb, in_order(first_bbb, bbb_second, hyper=False))\n"
        "print(json.dumps(same_as_in_order))\n"
    )
    same_as_in_order = printed_json("toy_regression", script, cwd=tmp_path)
    assert same_as_in_order == {
        f"{method} {layers}": True
        for method in ("bbh", "bbb")
        for layers in ("first", "both", "default")
    }


@pytest.mark.parametrize(
    "module, build_bbh",
    [
        ("toy_regression", "example.build_bbh(20)"),
        ("mnist_mlp", "example.BUILDERS['bbh'](60000)"),
    ],
)
def test_noise_flags_reach_the_hypernetwork(tmp_path, module, build_bbh):
    # One process parses each set of flags afresh (defaults restored first)
    # and reports the (noise_per_chunk, output_dim) of every hyper layer's
    # hypernetwork.
    flag_sets = {
        "per value": ["--noise_per_chunk", "--hypernet_output_dim=1"],
        "shared": ["--nonoise_per_chunk", "--hypernet_output_dim=256"],
        "default": [],
    }
    script = (
        "hypernets = {}\n"
        f"for name, flags in {flag_sets!r}.items():\n"
        "    example.FLAGS.unparse_flags()\n"
        "    example.FLAGS(['example', *flags])\n"
        f"    bbh = {build_bbh}\n"
        "    hypernets[name] = sorted({\n"
        "        (l.hypernet.noise_per_chunk, l.hypernet.output_dim)\n"
        "        for l in bbh.hyper_layers})\n"
        "print(json.dumps(hypernets))\n"
    )
    hypernets = printed_json(module, script, cwd=tmp_path)
    # Default: the paper's shared noise, in both examples.
    assert hypernets == {
        "per value": [[True, 1]],
        "shared": [[False, 256]],
        "default": [[False, 256]],
    }


def test_jit_compile_flag_reaches_every_mnist_model(tmp_path):
    # --jit_compile XLA-compiles the training step of every method the MNIST
    # example and the epoch-time benchmark build; off by default.
    script = (
        f"sys.path.insert(0, {os.path.join(REPO, 'benchmarks')!r})\n"
        "import epoch_time\n"
        "compiled = {}\n"
        "for flags in ([], ['--jit_compile']):\n"
        "    example.FLAGS.unparse_flags()\n"
        "    example.FLAGS(['example', *flags])\n"
        "    models = {m: example.BUILDERS[m](256) for m in example.METHOD_NAMES}\n"
        "    models['bbh_paper'] = epoch_time.build_earlier_bbh(256)\n"
        "    compiled[' '.join(flags) or 'default'] = sorted(\n"
        "        name for name, model in models.items() if model.jit_compile)\n"
        "print(json.dumps(compiled))\n"
    )
    compiled = printed_json("mnist_mlp", script, cwd=tmp_path)
    assert compiled == {
        "default": [],
        "--jit_compile": sorted(MNIST_METHODS | {"bbh_paper"}),
    }


MNIST_FLAGFILE = os.path.join(REPO, "examples", "mnist_authors_notebook.flags")


def test_mnist_mlp_flagfile_reaches_the_models(tmp_path):
    # The authors' MNIST settings reach the models the script builds: Bayes
    # by Hypernet's prior, draws, KL weight, discriminator form, steps and
    # warm-up, both optimizers, and Bayes by Backprop's prior in every layer.
    built = built_settings(
        "mnist_mlp",
        MNIST_FLAGFILE,
        "bbh = example.BUILDERS['bbh'](60000)\n"
        "bbb = example.BUILDERS['bbb'](60000)\n"
        "d_opt = bbh.discriminator_optimizer",
        tmp_path,
        extra="{'epsilons': [bbh.optimizer.epsilon, d_opt.epsilon], "
        "'rates': [float(bbh.optimizer.learning_rate), float(d_opt.learning_rate)], "
        "'clipvalue': d_opt.clipvalue, 'hypernets': [{k: l.hypernet.get_config()[k] "
        "for k in ('noise_per_chunk', 'output_dim')} for l in bbh.hyper_layers]}",
    )
    authors_prior = {"pi": 0.7, "sigma1": 0.01, "sigma2": 5.0}
    assert built["bbh_prior"] == authors_prior
    assert built["bbb_priors"] == [authors_prior] * 3
    assert built["draws"] == 1 and built["kl_weight"] == pytest.approx(
        128 / 1610, rel=1e-3
    )
    assert built["estimator"] == "AdversarialKL" and built["semi_implicit"] is False
    assert built["conditional"] is False
    assert built["steps"] == 20 and built["warmup"] == 300
    assert built["epsilons"] == [1e-5, 1e-5]
    assert built["rates"] == pytest.approx([1e-3, 1e-3])
    assert built["clipvalue"] == 5.0
    # The notebook's generator shares one noise draw across the scales.
    assert built["hypernets"] == [{"noise_per_chunk": False, "output_dim": 256}] * 3


def test_mnist_paper_flagfile_reaches_the_model(tmp_path):
    # The paper's MNIST form: weight-normalised layers, a hypernetwork at the
    # optimizer's full rate, the semi-implicit defaults otherwise; the
    # network's rate decays along a cosine to 0 over all steps (50 epochs of
    # 1000 examples in batches of 128: 8 steps each), for MC dropout alike.
    script = (
        "example.FLAGS(['example', '--flagfile="
        + os.path.join(REPO, "examples", "mnist_paper.flags")
        + "'])\n"
        "bbh = example.BUILDERS['bbh'](1000)\n"
        "mcd = example.BUILDERS['mc_dropout'](1000)\n"
        "import keras\n"
        "schedules = [keras.optimizers.schedules.deserialize(\n"
        "    m.optimizer.get_config()['learning_rate']) for m in (bbh, mcd)]\n"
        "rates = [[float(s(step)) for step in (0, 200, 400)] for s in schedules]\n"
        "print(json.dumps({'modes': [l.mode for l in bbh.hyper_layers],\n"
        "    'rate': bbh.hypernets[0].learning_rate_scale,\n"
        "    'estimator': type(bbh.kl_estimator).__name__,\n"
        "    'method': example.FLAGS.method, 'rates': rates}))\n"
    )
    built = printed_json("mnist_mlp", script, cwd=tmp_path)
    for rates in built.pop("rates"):  # Bayes by Hypernet, MC dropout
        assert rates == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)
    assert built == {
        "modes": ["weight_norm"] * 3,
        "rate": 1.0,
        "estimator": "SemiImplicitKL",
        "method": "bbh",
    }


def test_discriminator_sample_size_flag_reaches_the_model(tmp_path):
    script = (
        "sizes = []\n"
        "for flags in ([], ['--discriminator_sample_size=256']):\n"
        "    example.FLAGS.unparse_flags()\n"
        "    example.FLAGS(['example', '--kl_estimator=adversarial', *flags])\n"
        "    sizes.append(example.BUILDERS['bbh'](600).kl_estimator.sample_size)\n"
        "print(json.dumps(sizes))\n"
    )
    assert printed_json("mnist_mlp", script, cwd=tmp_path) == [None, 256]


# Per example: bad flag -> the message that must name it.
BAD_FLAGS = {
    "toy_regression.py": {
        "--hypernet_output_dim=0": "--hypernet_output_dim must be a finite number > 0",
        "--prior=0.7,0.01": "--prior must be pi,sigma1,sigma2",
        "--prior=1.5,0.01,5": "--prior must be pi,sigma1,sigma2",
        "--noise_std=0": "--noise_std must be a finite number > 0",
        "--kl_weight=-1": "--kl_weight must be finite and >= 0",
        "--seed=-1": "flag --seed=-1: -1 is not an integer in the range [0, 4294967295]",
    },
    "mnist_mlp.py": {
        "--prior=0.7,0.01": "--prior must be pi,sigma1,sigma2",
        "--discriminator_clipvalue=0": "--discriminator_clipvalue must be a finite number > 0",
        "--adam_epsilon=nan": "--adam_epsilon must be a finite number > 0",
        "--kl_weight=-1": "--kl_weight must be finite and >= 0",
        "--num_weight_samples=0": "--num_weight_samples must be >= 1",
        "--dropout_rate=1": "--dropout_rate must be in [0, 1)",
        "--hypernet_output_dim=0": "--hypernet_output_dim must be a finite number > 0",
        "--seed=4294967296": "flag --seed=4294967296: 4294967296 is not an integer in the range",
    },
}


def arguments_beside_a_bad_flag(script, folder):
    """The rest of the command; whatever it would write goes to folder/out."""
    if script == "toy_regression.py":
        # --steps=1: a check that let the flag through would fail fast, later.
        return [
            "--method=bbh",
            "--steps=1",
            "--num_samples=2",
            f"--output={folder / 'out' / 'toy.png'}",
        ]
    # The checks come before the data are read: no data folder is needed.
    return [f"--data_dir={folder / 'no_data'}", f"--output_dir={folder / 'out'}"]


@pytest.fixture(scope="module")
def rejected_flags(tmp_path_factory):
    """``rejected_flags(script)``: its folder and, per flag of BAD_FLAGS,
    the exit code and stderr (one process per script, run once)."""
    found = {}

    def rejected(script):
        if script not in found:
            folder = tmp_path_factory.mktemp(script[:-3])
            found[script] = (
                folder,
                rejections(
                    script,
                    BAD_FLAGS[script],
                    *arguments_beside_a_bad_flag(script, folder),
                    cwd=folder,
                ),
            )
        return found[script]

    return rejected


@pytest.mark.parametrize(
    "script, flag",
    [(script, flag) for script in BAD_FLAGS for flag in BAD_FLAGS[script]],
)
def test_examples_reject_bad_flags_by_name(rejected_flags, script, flag):
    folder, rejected = rejected_flags(script)
    status, stderr = rejected[flag]
    assert status != 0 and "Traceback" not in stderr
    assert BAD_FLAGS[script][flag] in stderr
    assert not (folder / "out").exists()


@pytest.mark.parametrize(
    "script, flag",
    [("toy_regression.py", "--noise_std=0"), ("mnist_mlp.py", "--dropout_rate=1")],
)
def test_example_command_lines_reject_a_bad_flag(tmp_path, script, flag):
    # The scripts' own entry points: a usage error, no traceback, no files.
    stderr = run_failing_example(
        script, flag, *arguments_beside_a_bad_flag(script, tmp_path), cwd=tmp_path
    )
    assert BAD_FLAGS[script][flag] in stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory):
    """Every method trained for 2 tiny epochs, in one subprocess."""
    output_dir = tmp_path_factory.mktemp("mnist_mlp")
    run_example(
        "mnist_mlp.py",
        "--method=all",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=512",
        "--test_size=1000",
        "--epochs=2",
        "--num_samples=3",
        "--verbose=0",
        f"--output_dir={output_dir}",
        cwd=output_dir,
    )
    return output_dir


@needs_mnist
def test_mnist_mlp_saves_models_and_metrics(mnist_runs):
    for method in MNIST_METHODS:
        assert (mnist_runs / f"{method}.keras").stat().st_size > 0
        results = json.loads((mnist_runs / f"{method}.json").read_text())
        assert 0.0 <= results["test_accuracy"] <= 1.0
        assert math.isfinite(results["test_nll"]) and results["test_nll"] > 0
        assert len(results["epoch_seconds"]) == 2
        assert results["median_epoch_seconds"] > 0
        assert "loss" in results["final_train_logs"]
        assert results["flags"]["train_size"] == 512
        assert results["test_size"] == 1000
        # One draw for the deterministic network, one per member (default 5)
        # for the ensemble, --num_samples for the others.
        expected = {"ml": 1, "deep_ensemble": 5}.get(method, 3)
        assert results["num_samples"] == expected
        assert_records_the_environment(results)


@needs_mnist
def test_rotated_digit_plots_the_saved_models(mnist_runs, tmp_path):
    output = tmp_path / "rotated.png"
    run_example(
        "rotated_digit.py",
        f"--model_dir={mnist_runs}",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--num_angles=4",
        "--num_samples=3",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert output.stat().st_size > 0
    summary = json.loads((tmp_path / "rotated.json").read_text())
    assert set(summary["methods"]) == MNIST_METHODS
    for curves in summary["methods"].values():
        mean = np.array(curves["mean"])
        assert mean.shape == (4, 10)
        np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-4)
        entropy = -(mean * np.log(np.clip(mean, 1e-12, 1))).sum(axis=1)
        assert curves["mean_entropy"] == pytest.approx(
            entropy.mean(), rel=1e-4, abs=1e-6
        )
        assert curves["mean_largest_std"] == pytest.approx(
            np.max(curves["std"], axis=1).mean()
        )
    assert summary["methods"]["ml"]["mean_largest_std"] == 0.0


@pytest.fixture(scope="module")
def lenet_runs(tmp_path_factory):
    """LeNet-5, every method, one tiny epoch on digits 0-4 only."""
    output_dir = tmp_path_factory.mktemp("lenet5")
    run_example(
        "lenet5.py",
        "--method=all",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--classes=0,1,2,3,4",
        "--train_size=256",
        "--test_size=1000",
        "--epochs=1",
        "--num_samples=2",
        "--verbose=0",
        f"--output_dir={output_dir}",
        cwd=output_dir,
    )
    return output_dir


@needs_mnist
def test_lenet5_trains_every_method_on_the_selected_classes(lenet_runs):
    for method in MNIST_METHODS:
        results = json.loads((lenet_runs / f"{method}.json").read_text())
        assert results["classes"] == [0, 1, 2, 3, 4]
        assert 0.0 <= results["test_accuracy"] <= 1.0
        assert (lenet_runs / f"{method}.keras").stat().st_size > 0


@needs_mnist
def test_sequence_mnist_reads_digits_row_by_row_with_every_method(tmp_path):
    run_example(
        "sequence_mnist.py",
        "--method=all",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=128",
        "--test_size=500",
        "--epochs=1",
        "--num_samples=2",
        "--lstm_units=8",
        "--verbose=0",
        f"--output_dir={tmp_path}",
        cwd=tmp_path,
    )
    for method in MNIST_METHODS:
        results = json.loads((tmp_path / f"{method}.json").read_text())
        assert 0.0 <= results["test_accuracy"] <= 1.0
    loaded = bbh_tf.load_model(str(tmp_path / "bbh.keras"))
    cell = loaded.network.layers[1].cell
    assert type(cell).__name__ == "HyperLSTMCell" and cell.units == 8


@needs_mnist
def test_evaluate_writes_every_measure_and_figure(lenet_runs, tmp_path):
    run_example(
        "evaluate.py",
        f"--model_dir={lenet_runs}",
        f"--split_model_dir={lenet_runs}",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--name=tiny",
        f"--output_dir={tmp_path}",
        "--num_samples=2",
        "--test_images=100",
        "--shift_images=20",
        "--ood_images=20",
        "--adversarial_images=20",
        "--gradient_samples=2",
        cwd=tmp_path,
    )
    for figure in ("reliability", "shift", "adversarial"):
        assert (tmp_path / f"tiny_{figure}.png").stat().st_size > 0
    results = json.loads((tmp_path / "tiny_evaluation.json").read_text())["results"]
    assert set(results) == MNIST_METHODS
    for method, result in results.items():
        assert set(result["in_distribution"]) >= {"accuracy", "nll", "brier", "ece"}
        assert len(result["shift"]["accuracy"]) == 13  # 0 to 180 in 15-degree steps
        assert len(result["adversarial"]["accuracy"]) == 9  # eps 0 to 0.4
        for test in ("split_mnist", "uniform_noise", "inverted"):
            aurocs = result["ood_auroc"][test]
            assert 0.0 <= aurocs["entropy"] <= 1.0
            if method == "ml":  # Deterministic: no epistemic part to rank by.
                assert aurocs["mutual_information"] == 0.5
