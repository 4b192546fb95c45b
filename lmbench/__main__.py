"""``python -m lmbench`` / ``lmbench``: the Hydra app that runs one job (or a sweep with ``-m``)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from hydra_plugins.lmbench_launchers.timing import SWEEP_JOB_ENV
from lmbench.compose import register_all
from lmbench.errors import UserError
from lmbench.paths import conf_dir
from lmbench.runs.run import failed_record
from lmbench.runs.rundir import FolderBusyError, RunDir

CONF_DIR = str(conf_dir())

register_all()  # every schema (the models' too), before Hydra composes a config


def _job_facts() -> dict:
    hydra_cfg = HydraConfig.get()
    timed = os.environ.get(SWEEP_JOB_ENV) == "1"  # a job the timing launcher started
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN or timed
    launcher = hydra_cfg.launcher.get("_target_", "").rsplit(".", 1)[-1] if in_sweep else None
    return {"command": " ".join(["lmbench", *hydra_cfg.overrides.task]), "sweep": in_sweep,
            "launcher": "TimingLauncher" if timed else launcher}


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
    if not (folder.finished or folder.checkpoints()):  # a killed run's record or checkpoints are kept
        _remove_unstarted(run_dir, Path(cfg.results_dir).absolute())
    sys.exit(1)


def _crashed(exc: Exception, cfg, run_dir: Path, job: dict) -> None:
    """An unexpected error: in a sweep the job's failed record says what happened and the sweep goes
    on; alone, one paragraph with the run's log, which holds the traceback (the folder is kept)."""
    if not job["sweep"]:
        _unexpected(exc, run_dir / f"{HydraConfig.get().job.name}.log")
    folder = RunDir(run_dir)
    if not folder.finished:  # it failed before the run could record it
        folder.write_record(failed_record(cfg, exc, job))
    logging.getLogger(__name__).error("job failed (%s: %s); the sweep goes on", type(exc).__name__, exc)


def _unexpected(exc: BaseException, log: Path | None = None) -> None:
    """An error nothing else caught: its traceback appended to ``log`` (or a temporary file), one
    paragraph on stderr naming it, exit 1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    if log is None or not log.parent.is_dir():
        log = Path(tempfile.gettempdir()) / f"lmbench-error-{os.getpid()}.log"
    with open(log, "a") as f:
        traceback.print_exception(exc, file=f)
    first_line = (str(exc).splitlines() or [""])[0]
    print(f"Error: unexpected {type(exc).__name__}: {first_line}. lmbench did not expect this (a bug, or "
          f"an input it does not check yet); the traceback is in {log} (HYDRA_FULL_ERROR=1 prints it "
          "here). Please report it with the command you ran.", file=sys.stderr)
    sys.exit(1)


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


SIMPLE_VALUE = re.compile(r"[\w.+\-:/@%]*")  # a value Hydra reads as one primitive, without quoting


def shared_keys_as_sweeps(args: list[str]) -> list[str]:
    """In a sweep over a group's options (``-m model=gru,lstm``) a plain ``model.hidden_size=32`` is meant
    for every job, but Hydra applies it to the sweep's base config (the default model) and refuses it;
    it becomes the one-value sweep ``model.hidden_size=choice(32)``, which each job applies after its
    model."""
    if not {"-m", "--multirun"} & set(args):
        return args
    swept = {key for key, _, value in (a.partition("=") for a in args) if "," in value and "." not in key}
    return [f"{key}=choice({value})" if key.partition(".")[0] in swept and "." in key
            and SIMPLE_VALUE.fullmatch(value) else f"{key}{eq}{value}"
            for key, eq, value in (a.partition("=") for a in args)]


def cli() -> None:
    """The ``lmbench`` command: the app behind one guard, so an error nothing else caught is one
    paragraph naming the file that holds its traceback."""
    try:
        os.getcwd()
    except FileNotFoundError:
        print("Error: the current folder no longer exists (it was deleted after this shell entered it); "
              "cd into an existing folder and run the command again.", file=sys.stderr)
        sys.exit(1)
    sys.argv[1:] = shared_keys_as_sweeps(sys.argv[1:])
    try:
        main()
    except Exception as exc:  # Hydra re-raises what it cannot format
        _unexpected(exc)


if __name__ == "__main__":
    cli()
