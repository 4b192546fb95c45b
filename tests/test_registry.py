"""One row per model in ``lmbench.models.MODELS`` (schema, factory, torch or counts, colour), the
``LanguageModel`` contract enforced on what a factory builds, and one home per default."""

from __future__ import annotations

import pytest
from conftest import ROOT
from omegaconf import OmegaConf

from lmbench import models
from lmbench.compose import compose
from lmbench.config import SCHEMAS
from lmbench.errors import UserError

OPTIONS = sorted((ROOT / "conf" / "model").glob("*.yaml")) + sorted((ROOT / "conf" / "corpus").glob("*.yaml"))


def test_every_model_option_is_a_registered_model_with_its_schema():
    assert models.names() == sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
    for name in models.names():
        assert OmegaConf.get_type(compose(f"model={name}").model) is SCHEMAS["model"][name]


def test_exactly_the_torch_families_import_torch_when_built(small_synthetic):
    from lmbench.models.neural import NeuralModel

    for name in models.names():
        model = models.build(name, OmegaConf.structured(SCHEMAS["model"][name]), small_synthetic)
        assert isinstance(model, NeuralModel) == models.uses_torch(name), name


def test_what_a_factory_builds_must_answer_the_language_model_contract(small_synthetic, monkeypatch):
    broken = models.Entry("lmbench.models.unigram:UnigramConfig", "builtins:slice", torch=False, colour="#0")
    monkeypatch.setitem(models.MODELS, "broken", broken)
    with pytest.raises(TypeError, match="does not answer the LanguageModel contract"):
        models.build("broken", None, small_synthetic)


def test_an_unknown_model_is_a_user_error_naming_the_models(small_synthetic):
    with pytest.raises(UserError, match="Unknown model 'lstmm'. Models: fnn, gru, lstm"):
        models.build("lstmm", None, small_synthetic)


def test_every_family_has_its_own_colour():
    assert len(set(models.COLOURS.values())) == len(models.MODELS)


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_yaml_option_sets_only_what_differs_from_its_schema(path):
    group, option = path.parent.name, OmegaConf.to_container(OmegaConf.load(path))
    schema = next(entry[f"/schema/{group}@_here_"] for entry in option.pop("defaults")
                  if isinstance(entry, dict))
    defaults = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[group][schema]), enum_to_str=True)
    assert [key for key, value in option.items() if value == defaults[key]] == []
