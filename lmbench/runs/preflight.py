"""Checks made before Hydra creates a run folder, so that a refused command writes nothing: the
config (closed schemas, finite numbers, ranges, group options that exist) and the results folder."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from lmbench.config import validate
from lmbench.errors import UserError
from lmbench.paths import conf_dir


def check_choices(choices, corpus_name: str) -> None:
    """An optional group (``experiment``, ``recipe``) silently skips an option that does not exist;
    refuse it instead, with the options that do. lmbench's groups are folders of ``conf/`` (Hydra's
    own and the schemas are left to Hydra), so the files answer without composing anything. A shipped
    corpus's name is its identity (records, tables and published rows read it): it goes with that
    corpus only, so synthetic text is never recorded as PTB."""
    shipped = {p.stem for p in (conf_dir() / "corpus").glob("*.yaml")} - {"file"}
    chosen = choices.get("corpus")
    if (corpus_name in shipped or chosen in shipped) and corpus_name != chosen:
        raise UserError(f"corpus.name={corpus_name} does not name corpus={chosen}: a shipped corpus's name "
                        "is its identity in records, tables and published comparisons, so it cannot be "
                        "set. Choose a shipped corpus with corpus=<name>; name your own files with "
                        "corpus=file corpus.name=<a name no shipped corpus has>.")
    for group, choice in choices.items():
        if choice is None or group.startswith(("hydra/", "schema/")):
            continue
        if choice.startswith("/") or ".." in choice.split("/"):
            raise UserError(f"{group}={choice} is not an option name: options are files of conf/{group}/, "
                            f"named by their path inside it (e.g. {group}=<name>), never a path outside it.")
        folder, _, name = f"{group}/{choice}".rpartition("/")
        if not (conf_dir() / folder / f"{name}.yaml").is_file():
            found = sorted(p.relative_to(conf_dir() / group).with_suffix("").as_posix()
                           for p in (conf_dir() / group).rglob("*.yaml"))
            options = ", ".join(found) or "none"
            raise UserError(f"{group}={choice} does not exist (conf/{folder}/{name}.yaml not found); "
                            f"the {group} options are: {options}.")


def check_launcher(config) -> None:
    """A sweep's launcher whose plugin is not installed (the ``[launchers]`` extra) is refused before
    the sweep starts, naming what to install."""
    module = str(config.hydra.launcher.get("_target_", "")).rpartition(".")[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        choice = config.hydra.runtime.choices.get("hydra/launcher")
        raise UserError(f"hydra/launcher={choice} needs {exc.name}, which is not installed: "
                        "pip install 'lmbench[launchers]'.") from None


def check_writable(folder: Path, what: str) -> None:
    """``folder`` is (or can be created as) a folder this process may write into."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what}={folder} is a file, not a folder; point it at a folder.")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what}={folder} cannot be written ({existing} is read-only or not a "
                        "folder); point it at a writable folder.")


def preflight(config, sweep: bool) -> None:
    """Every check that needs no data, before Hydra makes the run's folder (or the sweep's); bad input
    is refused in one paragraph."""
    try:
        validate(config)
        check_choices(config.hydra.runtime.choices, config.corpus.name)
        check_writable(Path(config.results_dir), "results_dir")
        key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
        folder = Path(str(OmegaConf.select(config, key)))
        check_writable(folder, key)
        if sweep:
            check_launcher(config)
        elif folder.is_dir() and any(folder.iterdir()):
            # an earlier run's folder (a resume): no log file unless a line is logged
            if OmegaConf.select(config, "hydra.job_logging.handlers.file") is not None:
                with open_dict(config.hydra):
                    config.hydra.job_logging.handlers.file.delay = True
    except (UserError, OmegaConfBaseException) as error:
        refuse(error)


def refuse(error: Exception) -> None:
    """Bad input found outside a job (preflight, a launcher): one paragraph on stderr, exit 1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    if isinstance(error, OmegaConfBaseException):
        error = UserError(f"{str(error).splitlines()[0]}: a value of the command could not be resolved "
                          "(an interpolation ${...} of a key or variable that does not exist or refers to "
                          "itself, or a key removed with ~ that others use). Give a plain value.")
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(1)


class Preflight(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        preflight(config, sweep=False)

    def on_multirun_start(self, config, **kwargs) -> None:
        preflight(config, sweep=True)
