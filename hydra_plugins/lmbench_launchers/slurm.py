"""Hydra launcher ``slurm`` (``_slurm.py``, which Hydra's plugin scan skips): imported only when
hydra-submitit-launcher is installed, so that lmbench starts without it."""

from hydra_plugins.lmbench_launchers import installed

if installed("hydra_submitit_launcher"):
    from hydra_plugins.lmbench_launchers._slurm import SlurmLauncher, SlurmLauncherConf  # noqa: F401
