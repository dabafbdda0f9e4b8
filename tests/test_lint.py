"""The code passes ruff's lint and format checks (settings in ruff.toml)."""

import subprocess
import sys

import pytest
from conftest import REPO

PATHS = ["bbh_tf", "tests", "examples", "benchmarks", "research"]


@pytest.mark.parametrize(
    "command", [["check"], ["format", "--check"]], ids=["check", "format"]
)
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *PATHS],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
