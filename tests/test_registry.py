"""One registration per model (its schema and factory together), and one home per default."""

from __future__ import annotations

import pytest
from conftest import ROOT, compose_config
from omegaconf import OmegaConf

from lmbench import models
from lmbench.config import SCHEMAS

OPTIONS = sorted((ROOT / "conf" / "model").glob("*.yaml")) + sorted((ROOT / "conf" / "corpus").glob("*.yaml"))


def test_every_model_option_is_a_registered_model_with_its_schema():
    assert models.names() == sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
    for name in models.names():
        assert OmegaConf.get_type(compose_config(f"model={name}").model) is SCHEMAS["model"][name]


def test_exactly_the_torch_families_import_torch_when_built(small_synthetic):
    from lmbench.models.neural import NeuralModel

    for name in models.names():
        model = models.build(name, OmegaConf.structured(SCHEMAS["model"][name]), small_synthetic)
        assert isinstance(model, NeuralModel) == models.uses_torch(name), name


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_yaml_option_sets_only_what_differs_from_its_schema(path):
    group, option = path.parent.name, OmegaConf.to_container(OmegaConf.load(path))
    schema = next(entry[f"/schema/{group}@_here_"] for entry in option.pop("defaults")
                  if isinstance(entry, dict))
    defaults = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[group][schema]), enum_to_str=True)
    assert [key for key, value in option.items() if value == defaults[key]] == []
