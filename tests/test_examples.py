"""Smoke tests of the example scripts: each runs end to end in a subprocess
with tiny settings and writes its files, so the scripts cannot silently rot.

The MNIST ones need the IDX files: set ``BBH_MNIST_DIR`` (CI sets it);
without it they are skipped.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

METHODS = {"bbh", "ml", "mc_dropout", "bbb"}
MNIST_DIR = os.environ.get("BBH_MNIST_DIR")
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR, reason="BBH_MNIST_DIR is not set (folder of the MNIST IDX files)"
)


def run_example(script, *args, cwd):
    """Run ``examples/<script>`` with ``args``; fail with its stderr on error."""
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", script), *args],
        cwd=cwd,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_toy_regression_runs_every_method(tmp_path):
    output = tmp_path / "toy.png"
    run_example(
        "toy_regression.py", "--steps=20", "--num_samples=5", f"--output={output}",
        cwd=tmp_path,
    )
    assert output.stat().st_size > 0
    summary = json.loads((tmp_path / "toy.json").read_text())
    assert set(summary["methods"]) == METHODS
    for row in summary["methods"].values():
        assert all(math.isfinite(row[k]) for k in ("std_inside", "std_outside"))
    assert summary["methods"]["ml"]["std_outside"] == 0.0


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory):
    """Every method trained for 2 tiny epochs, in one subprocess."""
    output_dir = tmp_path_factory.mktemp("mnist_mlp")
    run_example(
        "mnist_mlp.py",
        "--method=all",
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=512",
        "--epochs=2",
        "--num_samples=3",
        "--verbose=0",
        f"--output_dir={output_dir}",
        cwd=output_dir,
    )
    return output_dir


@needs_mnist
def test_mnist_mlp_saves_models_and_metrics(mnist_runs):
    for method in METHODS:
        assert (mnist_runs / f"{method}.keras").stat().st_size > 0
        results = json.loads((mnist_runs / f"{method}.json").read_text())
        assert 0.0 <= results["test_accuracy"] <= 1.0
        assert math.isfinite(results["test_nll"]) and results["test_nll"] > 0
        assert len(results["epoch_seconds"]) == 2
        assert results["median_epoch_seconds"] > 0
        assert "loss" in results["final_train_logs"]
        assert results["flags"]["train_size"] == 512
        assert results["num_samples"] == (1 if method == "ml" else 3)


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
    assert set(summary["methods"]) == METHODS
    for curves in summary["methods"].values():
        mean = np.array(curves["mean"])
        assert mean.shape == (4, 10)
        np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-4)


def test_rotate_matches_quarter_turns():
    spec = importlib.util.spec_from_file_location(
        "rotated_digit_example", os.path.join(REPO, "examples", "rotated_digit.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    np.testing.assert_allclose(module.rotate(image, 0.0), image, atol=1e-6)
    # Counter-clockwise, as numpy's rot90.
    np.testing.assert_allclose(module.rotate(image, 90.0), np.rot90(image), atol=1e-5)
    np.testing.assert_allclose(
        module.rotate(image, 180.0), np.rot90(image, 2), atol=1e-5
    )
