"""Model registry: models are found by their config name, never by an if-chain."""

from __future__ import annotations

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


def build(name: str, cfg, corpus):
    """Construct the registered model ``name`` from its config node and the prepared corpus."""
    _import_builtin_models()
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"Unknown model {name!r}. Registered models: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](cfg, corpus)


def names() -> list[str]:
    _import_builtin_models()
    return sorted(_REGISTRY)


def _import_builtin_models() -> None:
    """Importing a model module registers it."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
