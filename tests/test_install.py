"""lmbench installs like a package: a wheel built from this checkout, installed (not editable) into a
fresh venv, runs ``lmbench experiment=quickstart`` from another folder, with the configs the wheel
ships, its results in that folder and its corpus cache in the user's cache folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT

SMALL = ["corpus.train_tokens=20000", "corpus.valid_tokens=3000", "corpus.test_tokens=3000"]
# quickstart's sweep cut to one count-based and one neural family on a small corpus (about a minute)
QUICK = ["model=ngram,lstm", *SMALL, "train.max_minutes=0.05", "train.max_epochs=1"]


def _run(*command, **kwargs):
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"
    return done


def _not_source(folder, names):
    """What a build from a fresh clone would not see: hidden files, caches and (at the top) outputs."""
    outputs = {"build", "dist", "results", "corpora", "outputs", "multirun"} if folder == str(ROOT) else set()
    return {n for n in names if n.startswith(".") or n.endswith(".egg-info") or n == "__pycache__"
            or n in outputs}


def _fresh_venv_with_the_wheel(tmp_path, venv):
    """Build the wheel from a copy of the checkout, install it into a new venv, and return that venv's
    python. The venv's dependencies are this environment's installed ones (a .pth line), so the
    install needs no network; this checkout's editable lmbench is not visible there."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)
    # built with this environment's setuptools (torch requires one recent enough): no network needed
    _run(sys.executable, "-m", "pip", "wheel", "--no-index", "--no-deps", "--no-build-isolation",
         "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("lmbench-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", wheel)
    return python


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_runs_quickstart_from_another_folder(tmp_path):
    project = tmp_path / "project"  # the user's own folder (a git repository, as many are)
    project.mkdir()
    _run("git", "init", "-q", cwd=project)
    _run("git", "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "--allow-empty", "-m", "x",
         cwd=project)
    python = _fresh_venv_with_the_wheel(tmp_path, project / ".venv")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LMBENCH_CACHE", "LMBENCH_MIRROR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")

    where = _run(python, "-c", "import lmbench, lmbench.paths as p, "
                 "hydra_plugins.lmbench_launchers.timing as t; "
                 "print(lmbench.__version__, p.checkout_root(), p.conf_dir(), t.__file__)",
                 cwd=project, env=env).stdout.split()
    installed = str(project / ".venv" / "lib")
    assert where[0] != "0+unknown" and where[1] == "None"
    assert where[2].startswith(installed) and where[3].startswith(installed)

    done = _run(project / ".venv" / "bin" / "lmbench", "experiment=quickstart", *QUICK, cwd=project,
                env=env, timeout=300)
    found = [json.loads(p.read_text()) for p in (project / "results").rglob("record.json")]
    assert sorted((r["model"], r["status"]) for r in found) == [("lstm", "ok"), ("ngram", "ok")]
    assert all(r["experiment"] == "quickstart" and r["git_commit"] is None for r in found)
    assert "ngram" in (project / "results" / "table.csv").read_text()
    (sweep,) = (project / "results" / "sweeps").iterdir()
    assert f"report: {sweep.relative_to(project) / 'report.html'}" in done.stdout
    assert list((tmp_path / "user-cache" / "lmbench" / "prepared").glob("synthetic-*.npz"))
    assert not (project / "corpora").exists()


WITHOUT_EXTRAS = ("nltk", "hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher")


def _lmbench_without_extras(tmp_path, *overrides):
    """``lmbench`` as installed without ``[brown]`` or ``[launchers]``: their modules cannot be imported."""
    script = ("import runpy, sys\n"
              f"sys.modules.update(dict.fromkeys({WITHOUT_EXTRAS!r}))\n"
              "sys.argv[0] = 'lmbench'\n"
              "runpy.run_module('lmbench', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", script, *overrides, f"results_dir={tmp_path / 'results'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_without_the_extras_lmbench_runs_cleanly(tmp_path):
    done = _lmbench_without_extras(tmp_path, "model=unigram", *SMALL)
    assert done.returncode == 0, done.stderr
    assert "Error importing" not in done.stderr and "Traceback" not in done.stderr
    assert len(list((tmp_path / "results").rglob("record.json"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("overrides, extra", [
    (["-m", "hydra/launcher=joblib_local", "model=unigram", *SMALL], "launchers"),
    (["-m", "hydra/launcher=slurm", "model=unigram", *SMALL], "launchers"),
    (["corpus=brown", "model=unigram"], "brown"),
])
def test_without_the_extras_their_features_are_refused_naming_the_extra(tmp_path, overrides, extra):
    done = _lmbench_without_extras(tmp_path, *overrides)
    assert done.returncode == 1
    assert f"pip install 'lmbench[{extra}]'" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "results").rglob("record.json"))
