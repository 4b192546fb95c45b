"""lmbench's Hydra launchers: ``timing`` (every job in its own process) and ``slurm``.

Hydra imports every module under ``hydra_plugins`` at start. Without the ``[launchers]`` extra
(hydra-joblib-launcher, hydra-submitit-launcher), the configs built on those plugins get a stand-in
holding only their ``_target_``, so ``hydra/launcher=joblib_local`` or ``=slurm`` still composes and
lmbench's preflight refuses it, naming the extra, rather than Hydra failing on a missing config.
"""

import importlib.util

from hydra.core.config_store import ConfigStore


def installed(plugin: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None


if not installed("hydra_joblib_launcher"):
    ConfigStore.instance().store(group="hydra/launcher", name="joblib", provider="lmbench", node={
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"})
if installed("hydra_submitit_launcher"):  # the launcher is in _slurm.py, which Hydra's plugin scan skips
    from hydra_plugins.lmbench_launchers._slurm import SlurmLauncher  # noqa: F401
else:
    ConfigStore.instance().store(group="schema/launcher", name="slurm", provider="lmbench", node={
        "_target_": "hydra_plugins.lmbench_launchers._slurm.SlurmLauncher"})
