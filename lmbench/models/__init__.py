"""The model registry: ``model=<name>`` finds its factory and config schema here, never by an if-chain.

``register`` records a model's factory and schema together, once. A torch family names its factory
by import path (``"lmbench.models.recurrent:make_lstm"``), imported only when that model is built, so
composing a config and running a count-based model never import torch. ``load_all`` registers every
built-in model by importing the torch-free modules that declare them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from lmbench.config import register_schema

_REGISTRY: dict[str, Callable | str] = {}  # name -> factory(cfg, corpus), or its "module:attribute" path
MODULES = ("configs", "ngram", "unigram", "oracle")  # the modules that register the built-in models


class UnknownModelError(ValueError):
    """Raised for a model name nobody registered."""


def register(name: str, *, schema: type, factory: str | None = None):
    """Make ``model=<name>`` a model whose config ``schema`` (a ``ModelConfig`` dataclass) validates
    its YAML and overrides, and whose factory builds it from that config and the corpus. Used as a
    class decorator, or with ``factory="module:attribute"`` for a torch family (imported when built)."""

    def add(built: Callable | str):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        register_schema("model", name, schema)
        _REGISTRY[name] = built
        return built

    return add if factory is None else add(factory)


def load_all() -> None:
    """Register every built-in model (their schemas before Hydra composes a config); imports no torch."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


def build(name: str, cfg, corpus):
    """Construct the registered model ``name`` from its config node and the prepared corpus."""
    load_all()
    if name not in _REGISTRY:
        raise UnknownModelError(f"Unknown model {name!r}. Registered models: {', '.join(names())}.")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory(cfg, corpus)


def uses_torch(name: str) -> bool:
    """Whether model ``name`` is a torch network: one whose factory is imported when built."""
    load_all()
    return isinstance(_REGISTRY.get(name), str)


def names() -> list[str]:
    load_all()
    return sorted(_REGISTRY)
