"""The app's start-up: Hydra's run mode is read where lmbench declares it, not by composing twice."""

from __future__ import annotations

import pytest
from conftest import RECIPES, ROOT
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import lmbench.__main__ as app
from lmbench.paths import conf_dir

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
COMMANDS = [[], ["model=lstm"], ["hydra.mode=MULTIRUN"], ["experiment=ptb_table", "hydra.mode=RUN"],
            ["+experiment=compare"], *([f"experiment={e}"] for e in EXPERIMENTS),
            *([f"recipe={r}"] for r in RECIPES)]


@pytest.mark.parametrize("overrides", COMMANDS, ids=lambda o: " ".join(o) or "(defaults)")
def test_the_declared_run_mode_is_the_one_hydra_composes(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        hydra_app = GlobalHydra.instance().hydra
        composed = app._composed_mode(hydra_app, "config", list(overrides))
        assert app.declared_mode(hydra_app, "config", list(overrides)) == composed

