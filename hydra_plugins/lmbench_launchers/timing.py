"""Hydra launcher ``timing``: every job in a fresh ``python -m lmbench`` process, one at a time.

Peak RSS is a per-process high-water mark and concurrent jobs share cores, so speed and memory
tables are only clean when each job has a process, and the machine, to itself.
"""

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import open_dict

log = logging.getLogger(__name__)
SWEEP_JOB_ENV = "LMBENCH_SWEEP_JOB"


@dataclass
class TimingLauncherConf:
    _target_: str = "hydra_plugins.lmbench_launchers.timing.TimingLauncher"


ConfigStore.instance().store(group="schema/launcher", name="timing", node=TimingLauncherConf,
                             provider="lmbench")


def job_return(launcher: Launcher, job_cfg, run_dir: Path, overrides, failure: str, **facts) -> JobReturn:
    """The job's return to Hydra: its test perplexity, None for a failed job. A job that ended without
    writing its record first gets a failed one saying ``failure``, so the sweep counts it and goes on."""
    from omegaconf import OmegaConf

    from lmbench.runs.run import failed_record
    from lmbench.runs.rundir import RunDir

    run = RunDir(run_dir)
    if not run.finished:
        cfg = OmegaConf.masked_copy(job_cfg, [k for k in job_cfg if k != "hydra"])
        job = {"command": " ".join(["lmbench", *overrides]), "sweep": True,
               "launcher": type(launcher).__name__, **facts}
        run.write_record(failed_record(cfg, RuntimeError(failure), job))
    result = JobReturn(overrides=list(overrides), cfg=job_cfg, hydra_cfg=launcher.config,
                       working_dir=str(run_dir), task_name=str(job_cfg.hydra.job.name))
    result.status = JobStatus.COMPLETED  # a failed job has its record; the sweep goes on
    result.return_value = ((run.record.get("metrics") or {}).get("test") or {}).get("ppl")
    return result


def job_config(launcher: Launcher, overrides, number: int):
    """Sweep job ``number``'s composed config and its run folder inside the sweep folder."""
    job_cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(job_cfg):
        job_cfg.hydra.job.num = number
    return job_cfg, Path(str(launcher.config.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)


class TimingLauncher(Launcher):
    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context = config, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:  # noqa: E501
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        results = []
        for offset, overrides in enumerate(job_overrides):
            number = initial_job_idx + offset
            job_cfg, run_dir = job_config(self, overrides, number)
            log.info("#%d : %s", number, " ".join(filter_overrides(overrides)))
            done = subprocess.run([sys.executable, "-m", "lmbench", *overrides, "hydra.mode=RUN",
                                   f"hydra.run.dir={run_dir}"],
                                  env={**os.environ, SWEEP_JOB_ENV: "1"})
            results.append(job_return(self, job_cfg, run_dir, overrides,
                                      f"the job's process exited with code {done.returncode} before "
                                      f"writing its record; see {run_dir}"))
        return results
