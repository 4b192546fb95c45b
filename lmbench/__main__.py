"""``python -m lmbench`` / ``lmbench``: the Hydra app that runs one job (or a sweep with ``-m``)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lmbench.compose import register_all
from lmbench.errors import UserError
from lmbench.paths import conf_dir
from lmbench.runs.run import failed_record
from lmbench.runs.rundir import FolderBusyError, RunDir

CONF_DIR = str(conf_dir())
SWEEP_JOB_ENV = "LMBENCH_SWEEP_JOB"  # set by the timing launcher for the jobs it starts

register_all()  # every schema (the models' too), before Hydra composes a config


def _job_facts() -> dict:
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN or os.environ.get(SWEEP_JOB_ENV) == "1"
    launcher = hydra_cfg.launcher.get("_target_", "").rsplit(".", 1)[-1] if in_sweep else None
    if os.environ.get(SWEEP_JOB_ENV) == "1":
        launcher = "TimingLauncher"
    return {"command": " ".join(["lmbench", *hydra_cfg.overrides.task]), "sweep": in_sweep,
            "launcher": launcher}


def _remove_unstarted(run_dir: Path, results_dir: Path) -> None:
    """Remove the folder of a run that never started, and the folders it leaves empty below the
    results folder."""
    logging.shutdown()
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in run_dir.parents:
        if folder == results_dir or any(folder.iterdir()):
            break
        folder.rmdir()


def _interrupted(run_dir: Path, results_dir: Path) -> None:
    """Ctrl-C: say what was kept, drop the folder of a run that never checkpointed, exit 130."""
    resumable = bool(RunDir(run_dir).checkpoints())
    print("\nInterrupted. " + ("The last epoch's checkpoint is kept: run the same command again to "
                               f"resume it ({run_dir})." if resumable else
                               "Nothing was finished or checkpointed; run the command again to start "
                               "over."), file=sys.stderr)
    if not resumable:
        _remove_unstarted(run_dir, results_dir)
    sys.exit(130)


def _refused(exc: UserError, cfg, run_dir: Path, job: dict) -> None:
    """Bad input: one paragraph on stderr. In a sweep the job leaves a failed record and the sweep
    goes on; alone, a run that never started leaves nothing, and the app exits 1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    print(f"Error: {exc}", file=sys.stderr)
    if isinstance(exc, FolderBusyError):
        sys.exit(1)  # the folder is another process's: nothing is written or removed there
    folder = RunDir(run_dir)
    if job["sweep"]:  # the sweep counts the failure; a record already there is never replaced
        if not folder.finished:
            folder.write_record(failed_record(cfg, exc, job))
        return
    if not folder.started:  # nothing of a run that never started is kept (a killed run's files are)
        _remove_unstarted(run_dir, Path(cfg.results_dir).absolute())
    sys.exit(1)


def _crashed(exc: Exception, cfg, run_dir: Path, job: dict) -> None:
    """An unexpected error: alone it propagates (with its traceback); in a sweep the job's failed
    record says what happened and the sweep goes on."""
    if not job["sweep"]:
        raise exc
    folder = RunDir(run_dir)
    if not folder.finished:  # it failed before the run could record it
        folder.write_record(failed_record(cfg, exc, job))
    logging.getLogger(__name__).error("job failed (%s: %s); the sweep goes on", type(exc).__name__, exc)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg) -> float | None:
    """Run one job; returns the test perplexity (for sweepers that optimise it). In a sweep a
    failing job leaves its record and returns, so the other jobs still run."""
    from lmbench.config import validate
    from lmbench.runs.preflight import check_choices
    from lmbench.runs.run import run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    job = _job_facts()
    try:
        if job["sweep"]:  # a single run's config was checked before its folder was made (preflight)
            validate(cfg)
            check_choices(HydraConfig.get().runtime.choices, cfg.corpus.name)
        record = run(cfg, run_dir, job)
    except KeyboardInterrupt:
        _interrupted(run_dir, Path(cfg.results_dir).absolute())
    except UserError as exc:
        return _refused(exc, cfg, run_dir, job)
    except Exception as exc:
        return _crashed(exc, cfg, run_dir, job)
    finished_elsewhere = record.get("skipped") and Path(record["skipped"]).resolve() != run_dir.resolve()
    if finished_elsewhere:  # the finished job's folder holds everything; a sweep keeps a pointer to it
        logging.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)
        if job["sweep"]:
            RunDir(run_dir).mark_skipped(record["skipped"])
    if record["status"] != "ok" and not job["sweep"]:  # a sweep says so at its end, for every job
        print(f"Error: the run {record['status']}: {record.get('error') or record.get('diverged')}; its "
              f"record is {RunDir(run_dir).record_path}.", file=sys.stderr)
        sys.exit(1)
    return record.get("metrics", {}).get("test", {}).get("ppl")


if __name__ == "__main__":
    main()
