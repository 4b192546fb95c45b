"""Hydra launcher ``slurm``: submitit's SLURM launcher with lmbench's cluster conventions.

Each job asks for ``train.threads`` CPUs and its family's memory estimate. A job warned of its time
limit is requeued by submitit's checkpointing hook and resumes from its last epoch checkpoint. A job
that ends without writing its record (cancelled, killed at its limit, out of memory) gets a
``failed`` record naming how SLURM ended it, with ``job.log``: its log, relative to the sweep folder.
Job states come from ``squeue``, which needs no accounting database: submitit asks ``sacct``, which
on clusters without one warns on every poll and never sees a cancelled job end.
"""

import functools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

from hydra_plugins.lmbench_launchers.timing import job_config, job_return
from lmbench.errors import UserError
from lmbench.hardware import cpus_to_request
from lmbench.runs.preflight import refuse
from lmbench.runs.rundir import RunDir

log = logging.getLogger(__name__)
RESUME = "train.resume=true"
DEFAULT_MEM_GB = 4  # a family missing from mem_gb_per_family


@dataclass
class SlurmLauncherConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.lmbench_launchers._slurm.SlurmLauncher"  # the name Hydra registers it by
    # null: the job's train.threads (train.threads=auto or 0 asks for 1)
    cpus_per_task: int | None = None
    # null: the job's model family in mem_gb_per_family
    mem_gb: int | None = None
    mem_gb_per_family: dict[str, int] = field(default_factory=dict)


ConfigStore.instance().store(group="schema/launcher", name="slurm", node=SlurmLauncherConf,
                             provider="lmbench")

# submitit's generic names -> sbatch's, as submitit's AutoExecutor renames them
_SBATCH_NAMES = {"timeout_min": "time", "name": "job_name", "tasks_per_node": "ntasks_per_node"}
_NOT_SBATCH = {"_target_", "submitit_folder", "max_num_timeout", "mem_gb_per_family", "cpus_per_task",
               "mem_gb"}


@functools.cache
def _squeue_job():
    """submitit's SlurmJob polling ``squeue`` (imported late: plugin discovery stays fast)."""
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    class SqueueWatcher(SlurmInfoWatcher):
        """Keeps its own jobs' ids and which of them ended (by submitit's ``is_done`` of their states)."""

        def __init__(self, delay_s: int) -> None:
            super().__init__(delay_s)
            self.jobs: set[str] = set()
            self.ended: set[str] = set()

        def register_job(self, job_id: str) -> None:
            super().register_job(job_id)
            self.jobs.add(job_id)

        def update(self) -> None:
            super().update()
            self.ended |= {job_id for job_id in self.jobs if self.is_done(job_id, mode="cache")}

        def _make_command(self) -> list[str] | None:
            if not self.jobs - self.ended:
                return None
            return ["squeue", "--me", "--array", "--states=all", "--noheader", "--format=%i|%T|%N"]

        def read_info(self, string: bytes) -> dict:  # squeue's output, as submitit's update passes it
            info = super().read_info(b"JobID|State|NodeList\n" + string)
            for job_id in self.jobs - self.ended - info.keys():
                info[job_id] = {"JobID": job_id, "State": "ENDED"}  # gone from squeue (MinJobAge)
            return info

    class SqueueJob(SlurmJob):
        watcher = SqueueWatcher(delay_s=30)

    return SqueueJob


def _submitted(executor, launcher, args: list) -> list:
    """Submit one array of jobs; a refusal by ``sbatch`` (an unknown partition, a limit) or a missing
    ``sbatch`` is one paragraph and exit status 1, not a traceback."""
    from submitit.core.utils import FailedJobError

    try:
        return executor.map_array(launcher, *zip(*args))
    except (FailedJobError, OSError) as exc:
        words = " ".join(str(exc).split()) or type(exc).__name__
        refuse(UserError(f"sbatch refused the sweep's jobs: {words}. Check the hydra.launcher settings "
                         "(partition, time, memory) against the cluster's limits (sinfo); nothing was run."))


def _last_words(log_path: Path) -> str | None:
    """How the job ended, from its log: SLURM's own line (``*** JOB 12 ON node CANCELLED AT ...
    ***``), else the last line of a Python traceback."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    slurm = [m.group(0) for line in lines if (m := re.search(r"\*\*\* (JOB|STEP) .* \*\*\*", line))]
    errors = [line for line in lines if re.match(r"\w+(\.\w+)*(Error|Exception)\b", line)]
    return (slurm or errors or [None])[-1]


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        """Run one job on its node, then add SLURM's facts (job id, requeues, log) to its record."""
        import submitit

        result = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        for handler in logging.root.handlers[:]:  # a skipped job's folder is gone, and its log file
            if isinstance(handler, logging.FileHandler) and not Path(handler.baseFilename).parent.exists():
                logging.root.removeHandler(handler)
        run = RunDir(str(result.hydra_cfg.hydra.runtime.output_dir))
        if run.finished:
            env = submitit.JobEnvironment()
            run.update_record(job={"slurm_job_id": env.job_id,
                                   "requeues": int(os.environ.get("SLURM_RESTART_COUNT", 0)),
                                   "log": os.path.relpath(env.paths.stdout, run.path.parent)})
        return result

    def checkpoint(self, sweep_overrides, *args):
        """submitit's hook on the time-limit signal: requeue the job, resuming its last epoch
        checkpoint when it has one (a job warned before its first epoch ended starts afresh)."""
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        overrides = [o for o in sweep_overrides if not o.startswith("train.resume=")]
        if RunDir(run_dir).resumable:
            overrides.append(RESUME)
        log.warning("time limit near: requeuing %s%s", run_dir,
                    " to resume from its checkpoint" if RESUME in overrides else "")
        return super().checkpoint(overrides, *args)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        sbatch = {_SBATCH_NAMES.get(k, k): v for k, v in self.params.items()
                  if k not in _NOT_SBATCH and v is not None}
        log.info("SLURM sweep: %d jobs, records and logs in %s", len(job_overrides), sweep_dir)
        jobs, by_resources = [], {}
        for offset, overrides in enumerate(job_overrides):
            number = initial_job_idx + offset
            job_cfg, run_dir = job_config(self, overrides, number)
            jobs.append({"overrides": list(overrides), "cfg": job_cfg, "run_dir": run_dir})
            cpus = self.params["cpus_per_task"] or cpus_to_request(job_cfg.train.threads)
            mem_gb = self.params["mem_gb"] or self.params["mem_gb_per_family"].get(
                str(job_cfg.model.name), DEFAULT_MEM_GB)
            by_resources.setdefault((cpus, mem_gb), []).append((offset, number))
        for (cpus, mem_gb), members in by_resources.items():
            executor = submitit.SlurmExecutor(folder=self.params["submitit_folder"],
                                              max_num_timeout=self.params["max_num_timeout"])
            executor.update_parameters(**sbatch, cpus_per_task=cpus, mem=f"{mem_gb}GB")
            args = [(jobs[i]["overrides"], "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
                    for i, n in members]
            for (i, n), submitted in zip(members, _submitted(executor, self, args)):
                slurm_job = jobs[i]["slurm"] = _squeue_job()(executor.folder, submitted.job_id)
                log.info("\t#%d : %s (SLURM job %s, %d CPU, %d GB)", n,
                         " ".join(filter_overrides(jobs[i]["overrides"])), slurm_job.job_id, cpus, mem_gb)
        try:
            return [self._result(job, sweep_dir) for job in jobs]
        except KeyboardInterrupt:
            for job in jobs:
                job["slurm"].cancel(check=False)
            raise

    def _result(self, job: dict, sweep_dir: Path) -> JobReturn:
        """The job's return, or for a job that ended without writing its record a failed one saying how."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        slurm_job, run_dir = job["slurm"], job["run_dir"]
        try:
            return slurm_job.results()[0]
        except (FailedJobError, UncompletedJobError):
            pass
        log_path = Path(slurm_job.paths.stdout)
        state = slurm_job.watcher.get_state(slurm_job.job_id, mode="force")
        how = _last_words(log_path)
        return job_return(self, job["cfg"], run_dir, job["overrides"],
                          f"SLURM job {slurm_job.job_id} ended as {state} before the run wrote its "
                          f"record{f' ({how})' if how else ''}; its log: {log_path}",
                          slurm_job_id=slurm_job.job_id, log=os.path.relpath(log_path, sweep_dir))
