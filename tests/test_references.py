"""The committed reference sweeps are what their commands compose today: rerunning one would skip
every job as done. A default changed under a committed sweep fails here until the sweep is rerun."""

from __future__ import annotations

import itertools

import pytest
import yaml
from conftest import ROOT

from lmbench.compose import compose
from lmbench.runs.jobs import config_hash
from lmbench.runs.rundir import find_runs

pytestmark = pytest.mark.slow  # composes every job of every committed sweep: ~40 s
SWEEPS = sorted((ROOT / "results" / "reference").glob("*/multirun.yaml"))
# Sweeps known to predate today's defaults, each until it is rerun on an idle machine (their neural
# jobs train for a wall-time budget): listed here, they must still fail, so the list cannot go stale.
STALE = {name: "ran before train.precision replaced train.bf16 and train.threads became auto; its FNN "
               "before direct connections were turned off by default"
         for name in ("ptb", "synthetic", "tinyshakespeare")}


def jobs(multirun: dict) -> list[list[str]]:
    """The overrides of every job of the sweep a ``multirun.yaml`` records: its command's fixed
    overrides, and one value of each swept key (the experiment's sweep, as the command overrode it)."""
    swept = dict(multirun["hydra"]["sweeper"].get("params") or {})
    fixed = []
    for override in multirun["hydra"]["overrides"]["task"]:
        key, value = override.split("=", 1)
        if key in swept or "," in value:
            swept[key] = value
        else:
            fixed.append(override)
    choices = [[f"{key}={value}" for value in str(values).split(",")] for key, values in swept.items()]
    return [[*fixed, *combination] for combination in itertools.product(*choices)]


@pytest.mark.parametrize("multirun", [
    pytest.param(path, marks=pytest.mark.xfail(reason=STALE[path.parent.name], strict=True))
    if path.parent.name in STALE else path for path in SWEEPS], ids=lambda path: path.parent.name)
def test_every_job_of_a_committed_sweep_has_its_record(multirun):
    folder = multirun.parent
    committed = {run.record.get("config_hash") for run in find_runs(folder)[0]}
    missing = [job for job in jobs(yaml.safe_load(multirun.read_text()))
               if config_hash(compose(*job)) not in committed]
    assert not missing, (f"{len(missing)} job(s) of {folder.name} compose to a config no committed record "
                         f"has (a default changed since the sweep ran): rerun them, e.g. {missing[0]}")
