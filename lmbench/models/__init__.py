"""Model registry: models are found by their config name, never by an if-chain."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

_REGISTRY: dict[str, Callable] = {}


class UnknownModelError(ValueError):
    """Raised for a model name nobody registered."""


def register(name: str) -> Callable:
    """Class decorator: make a model constructible as ``model=<name>``."""

    def add(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return add


# built-in model name -> the module defining it, imported only when that model is built (so a
# count-based run never imports torch); a module dropped in this package still registers itself
BUILTIN = {"ngram": "ngram", "unigram": "unigram", "oracle": "oracle", "fnn": "fnn", "rnn": "recurrent",
           "lstm": "recurrent", "gru": "recurrent", "transformer": "transformer"}
TORCH_MODULES = {"fnn", "recurrent", "transformer"}


def build(name: str, cfg, corpus):
    """Construct the registered model ``name`` from its config node and the prepared corpus."""
    if name in BUILTIN:
        importlib.import_module(f"{__name__}.{BUILTIN[name]}")
    else:
        _import_builtin_models()
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"Unknown model {name!r}. Registered models: {', '.join(names())}.")
    return _REGISTRY[name](cfg, corpus)


def uses_torch(name: str) -> bool:
    """Whether model ``name`` is a torch network (a model this package does not know is assumed so)."""
    return BUILTIN.get(name, "fnn") in TORCH_MODULES


def names() -> list[str]:
    """Every model name; registers every built-in model's config schema (without importing torch)."""
    importlib.import_module(f"{__name__}.configs")
    importlib.import_module(f"{__name__}.ngram")
    return sorted(set(BUILTIN) | set(_REGISTRY))


def _import_builtin_models() -> None:
    """Importing a model module registers it."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "configs"):
            importlib.import_module(f"{__name__}.{info.name}")
