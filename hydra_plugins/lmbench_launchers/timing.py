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


def record_failure(job_cfg, run_dir: Path, overrides, launcher: str, message: str, **facts) -> None:
    """A failed record for a job that ended without writing one, so the sweep counts it."""
    from omegaconf import OmegaConf

    from lmbench.runs.run import failed_record
    from lmbench.runs.rundir import RunDir

    cfg = OmegaConf.masked_copy(job_cfg, [k for k in job_cfg if k != "hydra"])
    job = {"command": " ".join(["lmbench", *overrides]), "sweep": True, "launcher": launcher, **facts}
    RunDir(run_dir).write_record(failed_record(cfg, RuntimeError(message), job))


def test_perplexity(run) -> float | None:
    """The job's metric, as ``python -m lmbench`` returns it: test perplexity, None for a failed job."""
    return ((run.record.get("metrics") or {}).get("test") or {}).get("ppl")


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
        from lmbench.runs.rundir import RunDir

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for offset, overrides in enumerate(job_overrides):
            number = initial_job_idx + offset
            job_cfg, run_dir = job_config(self, overrides, number)
            log.info("#%d : %s", number, " ".join(filter_overrides(overrides)))
            done = subprocess.run([sys.executable, "-m", "lmbench", *overrides, "hydra.mode=RUN",
                                   f"hydra.run.dir={run_dir}"],
                                  env={**os.environ, SWEEP_JOB_ENV: "1"})
            result = JobReturn(overrides=list(overrides), cfg=job_cfg, hydra_cfg=self.config,
                               working_dir=str(run_dir), task_name=str(job_cfg.hydra.job.name))
            if not RunDir(run_dir).finished:  # the job died before it could say so itself
                record_failure(job_cfg, run_dir, overrides, "TimingLauncher",
                               f"the job's process exited with code {done.returncode} before writing "
                               f"its record; see {run_dir}")
            result.status = JobStatus.COMPLETED  # a failed job has its record; the sweep goes on
            result.return_value = test_perplexity(RunDir(run_dir))
            results.append(result)
        return results
