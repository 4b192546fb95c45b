"""The model table: ``model=<name>`` finds its config schema and factory here, never by an if-chain.

Adding a family takes its class file, one row of ``MODELS`` and one YAML file in ``conf/model/``.
Schemas and factories are named by import path, so composing a config and running a count-based
model never import torch: a factory's module is imported only when its model is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from lmbench.errors import UserError


@dataclass(frozen=True)
class Entry:
    """One family: its config schema and factory (``"module:attribute"``), whether it is a trained
    torch network (else estimated from counts: no training budget), and its colour in every figure."""

    schema: str
    factory: str
    torch: bool
    colour: str


MODELS = {
    "unigram": Entry("lmbench.models.unigram:UnigramConfig", "lmbench.models.unigram:Unigram",
                     torch=False, colour="#7f7f7f"),
    "ngram": Entry("lmbench.models.ngram:NgramConfig", "lmbench.models.ngram:Ngram",
                   torch=False, colour="#8c564b"),
    "oracle": Entry("lmbench.models.oracle:OracleConfig", "lmbench.models.oracle:Oracle",
                    torch=False, colour="#000000"),
    "fnn": Entry("lmbench.models.configs:FNNConfig", "lmbench.models.fnn:FNN",
                 torch=True, colour="#9467bd"),
    "rnn": Entry("lmbench.models.configs:RNNConfig", "lmbench.models.recurrent:make_rnn",
                 torch=True, colour="#d62728"),
    "lstm": Entry("lmbench.models.configs:LSTMConfig", "lmbench.models.recurrent:make_lstm",
                  torch=True, colour="#1f77b4"),
    "gru": Entry("lmbench.models.configs:GRUConfig", "lmbench.models.recurrent:make_gru",
                 torch=True, colour="#2ca02c"),
    "transformer": Entry("lmbench.models.configs:TransformerConfig", "lmbench.models.transformer:Transformer",
                         torch=True, colour="#ff7f0e"),
}
COUNT_BASED = tuple(name for name, entry in MODELS.items() if not entry.torch)
COLOURS = {name: entry.colour for name, entry in MODELS.items()}


class UnknownModelError(UserError):
    """A model name that is not in ``MODELS``."""


def imported(path: str):
    """The attribute a ``"module:attribute"`` path names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def schemas() -> dict[str, type]:
    """Every model's config schema, by name (imports no torch)."""
    return {name: imported(entry.schema) for name, entry in MODELS.items()}


def build(name: str, cfg, corpus):
    """Construct model ``name`` from its config node and the prepared corpus; what a factory builds
    must answer the ``LanguageModel`` contract."""
    from lmbench.models.base import LanguageModel

    if name not in MODELS:
        raise UnknownModelError(f"Unknown model {name!r}. Models: {', '.join(names())}.")
    model = imported(MODELS[name].factory)(cfg, corpus)
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model {name!r} built a {type(model).__name__}, which does not answer the "
                        "LanguageModel contract (lmbench/models/base.py)")
    return model


def uses_torch(name: str) -> bool:
    """Whether model ``name`` is a torch network."""
    return name in MODELS and MODELS[name].torch


def names() -> list[str]:
    return sorted(MODELS)
