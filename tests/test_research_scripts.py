"""Smoke tests of the research scripts (research/) behind docs/results.md
and docs/research/, with tiny settings, so they cannot silently rot."""

import json
import os

from conftest import REPO, run_subprocess


def test_toy_posterior_structure_reports_both_variants(tmp_path):
    output = tmp_path / "structure.json"
    result = run_subprocess(
        os.path.join(REPO, "research", "toy_posterior_structure.py"),
        "--seeds=0",
        "--steps=20",
        "--draws=50",
        "--num_samples=10",
        f"--results={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(output.read_text())
    rows = {row["variant"]: row for row in document["results"]}
    assert set(rows) == {"shared", "per_value"}
    # Each variant ran with its own hypernetwork; the common flags hold neither.
    assert (
        rows["shared"]["noise_per_chunk"],
        rows["shared"]["hypernet_output_dim"],
    ) == (False, 256)
    assert (
        rows["per_value"]["noise_per_chunk"],
        rows["per_value"]["hypernet_output_dim"],
    ) == (True, 1)
    assert "noise_per_chunk" not in document["flags"]
    # Independent values: correlations at the noise level of 50 draws (about
    # 0.11 on average); one shared noise draw correlates them far more.
    assert rows["per_value"]["mean_abs_correlation"] < 0.2
    assert rows["shared"]["mean_abs_correlation"] > 0.3
    assert "| per_value | 0 |" in result.stdout
    rejected = run_subprocess(
        os.path.join(REPO, "research", "toy_posterior_structure.py"),
        "--seeds=0,-1",
        f"--results={tmp_path / 'rejected.json'}",
        cwd=tmp_path,
    )
    assert rejected.returncode != 0 and "Traceback" not in rejected.stderr
    assert "--seeds must be integers in [0, 2**32 - 1]" in rejected.stderr
    assert not (tmp_path / "rejected.json").exists()


def test_toy_hmc_reference_samples_the_example_network(tmp_path):
    script = os.path.join(REPO, "research", "toy_hmc_reference.py")
    output = tmp_path / "hmc.png"
    result = run_subprocess(
        script,
        "--chains=2",
        "--burnin=10",
        "--draws=10",
        "--max_tree_depth=3",
        "--prior_draws=300",
        "--with_methods=ml",
        "--steps=20",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    saved = json.loads((tmp_path / "hmc.json").read_text())
    assert output.exists()
    assert saved["flags"]["chains"] == 2 and saved["flags"]["prior"] == []
    assert saved["flags"]["steps"] == 20  # the example's flags train --with_methods
    assert saved["methods"]["ml"]["std_outside"] == 0.0
    assert set(saved["hmc"]) >= {"std_inside", "std_outside", "train_rmse"}
    assert saved["converged"] == (saved["diagnostics"]["max_rhat_f"] <= 1.1)
    assert saved["diagnostics"]["max_split_rhat_f"] > 0
    # ReLU features grow with |x|: the prior's bands widen outside the data.
    assert saved["prior"]["std_outside"] > 1.5 * saved["prior"]["std_inside"] > 0
    # The flat state's layout: a 1-100-1 ReLU network, as Keras computes it.
    check = (
        "import sys, numpy as np, keras, bbh_tf\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'research')!r})\n"
        "import toy_hmc_reference as hmc\n"
        "state = np.random.default_rng(0).normal(size=(3, hmc.NUM_VALUES)).astype('float32')\n"
        "x = np.linspace(-5, 5, 7).astype('float32')\n"
        "got = hmc.network(state, x).numpy()\n"
        "for s, row in zip(state, got):\n"
        "    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(100, activation='relu'), keras.layers.Dense(1)])\n"
        "    net.set_weights([s[None, :100], s[100:200], s[200:300, None], s[300:]])\n"
        "    np.testing.assert_allclose(row, net(x[:, None]).numpy()[:, 0], rtol=1e-5, atol=1e-4)\n"
        "    # The first layer alone, the output layer fixed at the model's.\n"
        "    fixed = hmc.fixed_output_layer(bbh_tf.MaximumLikelihood(net))\n"
        "    first = hmc.network(s[None, :200], x, fixed).numpy()[0]\n"
        "    np.testing.assert_allclose(first, net(x[:, None]).numpy()[:, 0], rtol=1e-5, atol=1e-4)\n"
        "print('layout ok')\n"
    )
    checked = run_subprocess("-c", check, cwd=tmp_path)
    assert "layout ok" in checked.stdout, checked.stderr[-4000:]
    rejected = run_subprocess(script, "--with_methods=ml,hmm", cwd=tmp_path)
    assert rejected.returncode != 0 and "Traceback" not in rejected.stderr
    assert "--with_methods must name methods of" in rejected.stderr
    rejected = run_subprocess(script, "--output_layer_from=bbb", cwd=tmp_path)
    assert rejected.returncode != 0 and "Traceback" not in rejected.stderr
    assert "--output_layer_from=bbb needs --bbb_layers=first" in rejected.stderr
    assert "== " not in rejected.stdout  # before any training


def test_toy_hmc_reference_can_fix_a_methods_output_layer(tmp_path):
    # --output_layer_from: the first layer's 200 values sampled, the output
    # layer the one the method learned; the method's bands beside them.
    output = tmp_path / "first.png"
    result = run_subprocess(
        os.path.join(REPO, "research", "toy_hmc_reference.py"),
        "--chains=2",
        "--burnin=5",
        "--draws=5",
        "--max_tree_depth=2",
        "--prior_draws=200",
        "--output_layer_from=bbb",
        "--bbb_layers=first",
        "--steps=20",
        "--num_samples=10",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    saved = json.loads((tmp_path / "first.json").read_text())
    assert saved["diagnostics"]["sampled_values"] == 200
    assert saved["flags"]["output_layer_from"] == "bbb"
    assert (
        set(saved["methods"]) == {"bbb"} and saved["methods"]["bbb"]["std_outside"] > 0
    )
    assert len(saved["output_layer"]["kernel"]) == 100
    assert output.exists()


def test_toy_vs_hmc_reports_ratios_and_the_hypernetwork_share(tmp_path):
    output = tmp_path / "toy_vs_hmc.json"
    reference = os.path.join(REPO, "docs", "runs", "toy_hmc", "hmc_seed{seed}.json")
    result = run_subprocess(
        os.path.join(REPO, "research", "toy_vs_hmc.py"),
        "--seeds=0",
        "--variants=default,bbb",
        "--steps=20",
        "--num_samples=10",
        "--rerun_seed=0",
        f"--hmc_reference={reference}",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(output.read_text())
    default, bbb = document["summary"]["default"], document["summary"]["bbb"]
    assert len(default["ratios_outside"]) == 1 and default["ratios_outside"][0] > 0
    assert 0.0 <= default["hypernetwork_share"][0] <= 1.0
    assert bbb["hypernetwork_share"] == [None]
    # The rerun of the first variant gives the same numbers.
    assert document["rerun"]["ratio_to_hmc_outside"] == default["ratios_outside"][0]
