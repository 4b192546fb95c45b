"""The one setup before Hydra composes a config, and the one way tests, benchmarks and tools compose one."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lmbench import corpora, models
from lmbench.config import SCHEMAS, Config
from lmbench.paths import conf_dir

RUN_TAG = f"{os.getpid()}-{secrets.token_hex(2)}"  # unique to this process, on any machine


def unless_saved(output_dir: str, subdir: str) -> str | None:
    """Hydra's ``output_subdir`` for a job folder: None (save nothing) when the folder already holds
    one, so a rerun into an earlier run's folder (a resume, a refusal) keeps what its command wrote."""
    return None if (Path(output_dir) / subdir).exists() else subdir


def register_all() -> None:
    """Store every schema (the models' too) and the resolvers: ``${unique:}`` makes run folder names
    unique, so two commands started in the same second never share a folder (and one record never
    replaces another); ``${digest:...}`` names a sweep job's folder by its overrides, so two sweeps
    given one ``hydra.sweep.dir`` share a job's folder only when they run the same job."""
    SCHEMAS["model"] = models.schemas()
    SCHEMAS["corpus"] = {name: loader.schema for name, loader in corpora.LOADERS.items()}
    if not OmegaConf.has_resolver("unique"):
        OmegaConf.register_new_resolver("unique", lambda: RUN_TAG, use_cache=True)
        OmegaConf.register_new_resolver("unless_saved", unless_saved)
        OmegaConf.register_new_resolver("digest", lambda text: hashlib.sha256(text.encode()).hexdigest()[:6])
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def compose(*overrides: str, return_hydra_config: bool = False):
    """The config ``python -m lmbench <overrides>`` would run, composed without running it: the one
    way tests, benchmarks and tools compose a config."""
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        return hydra_compose(config_name="config", overrides=list(overrides),
                             return_hydra_config=return_hydra_config)
