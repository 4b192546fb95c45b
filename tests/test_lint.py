"""The code stays readable: ruff's style rules and its size rules (a function past ~40 lines or a
dozen branches is flagged; see [tool.ruff.lint] in pyproject.toml) hold over the whole tree."""

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "lmbench", "hydra_plugins", "tests",
                           "benchmarks", "setup.py"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
