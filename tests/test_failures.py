"""The failure classes a new user hits (issue 15), one section per class: each example of the issue
and siblings of it give a clear one-paragraph error or correct behaviour, never a traceback, a lost
result, a silently ignored setting or a half-written folder."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, TINY_NETWORKS, lmbench, read_records

from lmbench import sample
from lmbench.__main__ import shared_keys_as_sweeps
from lmbench.compose import compose
from lmbench.config import validate
from lmbench.corpora import load_corpus
from lmbench.diagnose.__main__ import main as diagnose
from lmbench.errors import CorpusError, UserError
from lmbench.runs.preflight import check_choices
from lmbench.runs.run import run
from lmbench.runs.rundir import RunDir, find_runs, refresh_tables

TINY_LSTM = ["model=lstm", *TINY_NETWORKS["lstm"], *TINY]


def written(tmp_path) -> list[str]:
    """Every file below the results folder."""
    return sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "results").rglob("*") if p.is_file())


def refused(done, *words: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Error:" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


# ---------------------------------------------------------------- 2. settings silently ignored
@pytest.mark.slow
@pytest.mark.parametrize("override, words", [
    ("+model.hidden_sizee=3", ["model.hidden_sizee=3 is not an option", "hidden_size", "model="]),
    ("+corpus.path=x", ["corpus.path=x is not an option", "user_file", "corpus="]),
    ("+epochs=3", ["epochs=3 is not an option", "Did you mean train.max_epochs?"]),
    ("experiment=quickstat", ["experiment=quickstat does not exist", "quickstart"]),
    ("recipe=ptb/kn55", ["recipe=ptb/kn55 does not exist"]),
    ("debug=tinyy", ["debug=tinyy does not exist", "tiny"]),
    ("corpus.level=char", ["corpus.level=char is not available for corpus=synthetic", "word-level"]),
])
def test_a_setting_nothing_would_read_is_refused_before_anything_is_written(tmp_path, override, words):
    done = lmbench(tmp_path, *TINY, override)
    refused(done, *words)
    assert not written(tmp_path)


@pytest.mark.slow
def test_a_sweep_with_a_setting_nothing_would_read_is_refused_before_any_job(tmp_path):
    done = lmbench(tmp_path, "-m", "model=unigram,ngram", "+epochs=3", *TINY)
    refused(done, "epochs=3 is not an option", "train.max_epochs")
    assert not written(tmp_path)


def composed_as_the_app_does(*overrides: str):
    """The config with its hydra section, after the app's check that every chosen option exists."""
    cfg = compose(*overrides, return_hydra_config=True)
    check_choices(cfg.hydra.runtime.choices, cfg.corpus.name)
    return cfg


@pytest.mark.parametrize("group", ["experiment", "recipe", "debug"])
def test_every_option_of_an_optional_group_passes_the_closed_schemas(group):
    folder = ROOT / "conf" / group
    options = [p.relative_to(folder).with_suffix("").as_posix() for p in sorted(folder.rglob("*.yaml"))]
    assert options
    for option in options:
        validate(composed_as_the_app_does(f"{group}={option}"))


@pytest.mark.parametrize("choice", ["../debug/tiny", "../../conf/config", "/etc/passwd"])
def test_an_option_named_by_a_path_outside_its_group_is_refused(choice):
    with pytest.raises(UserError, match=f"experiment={choice} is not an option name"):
        check_choices({"experiment": choice, "corpus": "synthetic"}, "synthetic")


@pytest.mark.parametrize("overrides, name", [
    (["corpus.name=ptb"], "ptb"),  # synthetic text named PTB
    (["corpus=ptb", "corpus.name=mine"], "mine"),  # PTB renamed
    (["corpus=file", "corpus.path=x", "corpus.name=brown"], "brown"),  # own files named as a shipped corpus
])
def test_a_corpus_named_as_another_is_refused(overrides, name):
    with pytest.raises(UserError, match=f"corpus.name={name} does not name corpus="):
        composed_as_the_app_does(*overrides)


def test_own_files_take_any_name_no_shipped_corpus_has():
    cfg = composed_as_the_app_does("corpus=file", "corpus.path=x", "corpus.name=my_notes")
    assert cfg.corpus.name == "my_notes"


def test_a_model_renamed_to_another_family_is_refused():
    with pytest.raises(UserError, match="model.name=gru is not this model's"):
        validate(compose("model=lstm", "model.name=gru"))


@pytest.mark.parametrize("group", ["experiment", "recipe", "debug"])
def test_an_option_of_an_optional_group_that_does_not_exist_is_refused(group):
    with pytest.raises(UserError, match=f"{group}=nosuch does not exist .* the {group} options are: [a-z]"):
        composed_as_the_app_does(f"{group}=nosuch")


# ---------------------------------------------------------------- 3. values not validated
@pytest.mark.parametrize("override, words", [  # each option's own rule: test_config_properties.py
    ("corpus.mean_distance=nan", "corpus.mean_distance=nan is not a finite number"),
    ("train.lr=inf", "train.lr=inf is not a finite number"),
    ("model.add_k=nan", "model.add_k=nan is not a finite number"),
    ("corpus.num_classes=2000", "at most corpus.num_words=1000"),
])
def test_bad_numbers_are_refused_before_any_data_is_read(override, words):
    with pytest.raises(UserError, match=words.replace("*", r"\*")):
        validate(compose(override))


def test_a_non_finite_model_option_is_refused(tmp_path):
    with pytest.raises(UserError, match="model.forget_bias=nan is not a finite number"):
        validate(compose("model=lstm", "model.forget_bias=nan"))
    with pytest.raises(UserError, match=r"corpus.fractions=\[0.5, nan, 0.25\] is out of range|not a finite"):
        validate(compose("corpus=file", "corpus.path=x", "corpus.fractions=[0.5,nan,0.25]"))


def test_a_model_too_big_for_memory_is_refused_with_its_size_before_allocation(tmp_path):
    cfg = compose(*TINY_LSTM, "model.hidden_size=10000000", f"results_dir={tmp_path}")
    with pytest.raises(UserError, match=r"4e\+14 parameters: about .* GiB to train"):
        run(cfg, tmp_path / "job")
    cfg = compose("model=transformer", "model.d_model=2000000000", *TINY, f"results_dir={tmp_path}")
    with pytest.raises(UserError, match="parameters"):
        run(cfg, tmp_path / "job")
    assert not (tmp_path / "job").exists()


@pytest.mark.slow
def test_an_exploding_run_is_diverged_and_a_single_run_exits_non_zero(tmp_path):
    done = lmbench(tmp_path, "model=rnn", "model.emb_size=32", "model.hidden_size=32", "train.optimizer=sgd",
                   "train.lr=1000", "train.clip=0", *TINY)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (path,) = (tmp_path / "results").rglob("record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "diverged" and record["diverged"], record.get("metrics")
    assert "the run diverged" in done.stderr


@pytest.mark.slow
def test_a_sweep_in_which_every_job_diverged_exits_non_zero_with_its_report(tmp_path):
    done = lmbench(tmp_path, "-m", "model=rnn", "seed=0,1", "model.emb_size=32", "model.hidden_size=32",
                   "train.optimizer=sgd", "train.lr=1000", "train.clip=0", *TINY)
    assert done.returncode == 1 and "0 failed, 2 diverged of 2 jobs" in done.stderr
    (sweep,) = (tmp_path / "results" / "sweeps").iterdir()
    assert (sweep / "report.html").exists() and "diverged: rnn seed 1" in done.stdout


def test_a_sweep_whose_report_cannot_be_built_still_fails_and_says_so(tmp_path, monkeypatch, caplog):
    from omegaconf import OmegaConf

    from lmbench import report
    from lmbench.runs.callbacks import SweepSummary

    monkeypatch.setattr(report, "build", lambda folder: 1 / 0)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "results_dir": str(tmp_path)})
    with pytest.raises(SystemExit) as exit_status:
        SweepSummary().on_multirun_end(config)
    assert exit_status.value.code == 1
    assert "could not be built (ZeroDivisionError" in caplog.text


def test_a_valid_perplexity_above_the_vocabulary_is_diverged():
    from lmbench.runs.run import diverged

    record, trained = {"metrics": {"valid": {"ppl": 1.2e8}}}, {"steps": 100}
    assert "above 2x the vocabulary size 10000" in diverged(record, trained, 10_000)
    assert diverged({"metrics": {"valid": {"ppl": float("inf")}}}, trained, 10_000)
    assert diverged({"metrics": {"valid": {"ppl": 120.0}}}, trained, 10_000) is None
    assert diverged({"metrics": {"valid": {"ppl": 10_100.0}}}, trained, 10_000) is None  # barely trained
    assert diverged(record, {}, 10_000) is None  # a count-based model is not trained: it cannot diverge
    assert "non-finite at step 7" in diverged(record, {"diverged_step": 7}, 10_000)
    worse_on_test = {"metrics": {"valid": {"ppl": 120.0}, "test": {"ppl": 3e4}}}
    assert "test perplexity 3e+04 is above 2x" in diverged(worse_on_test, trained, 10_000)


@pytest.mark.slow
# ---------------------------------------------------------------- 4. finished work thrown away
def test_a_run_whose_oracle_floor_cannot_be_computed_keeps_its_record(tmp_path):
    done = lmbench(tmp_path, "model=unigram", "corpus.train_tokens=40", "corpus.valid_tokens=40",
                   "corpus.test_tokens=40")
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "results").rglob("record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["floor"] is None
    assert "model=oracle needs every delimiter" in record["floor_missing"]
    again = lmbench(tmp_path, "model=unigram", "corpus.train_tokens=40", "corpus.valid_tokens=40",
                    "corpus.test_tokens=40")
    assert again.returncode == 0 and len(list((tmp_path / "results").rglob("record.json"))) == 1
    assert "already finished" in again.stdout + again.stderr


# ---------------------------------------------------------------- 5. refusals that damage
def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_refused_resumes_and_reruns_leave_the_run_folder_untouched(tmp_path):
    first = lmbench(tmp_path, *TINY_LSTM, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("checkpoint.pt", "job.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        (killed / name).parent.mkdir(exist_ok=True)
        (killed / name).write_bytes((tmp_path / "a" / name).read_bytes())
    before, finished = _snapshot(killed), _snapshot(tmp_path / "a")
    other = [o.replace("hidden_size=8", "hidden_size=12") for o in TINY_LSTM]
    refused(lmbench(tmp_path, *other, "train.resume=true", f"hydra.run.dir={killed}"),
            "belongs to another run")
    refused(lmbench(tmp_path, *TINY_LSTM, "force=true", f"hydra.run.dir={tmp_path / 'a'}"),
            "already holds a finished run")
    refused(lmbench(tmp_path, *TINY_LSTM, "train.resume=true", f"hydra.run.dir={tmp_path / 'empty'}"),
            "No checkpoint at")
    assert _snapshot(killed) == before and _snapshot(tmp_path / "a") == finished
    assert not (tmp_path / "empty").exists()
    resumed = lmbench(tmp_path, *TINY_LSTM, "train.resume=true", f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / ".hydra" / "config.yaml").read_bytes() == before[".hydra/config.yaml"]


@pytest.mark.slow
def test_a_second_sweep_into_a_sweep_folder_leaves_the_first_ones_runs_untouched(tmp_path):
    """Its other job gets a folder of its own (job folders are named by their overrides' digest); the
    sweep's report and tables then cover both."""
    sweep = ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    first = lmbench(tmp_path, *sweep, *TINY_LSTM)
    assert first.returncode == 0, first.stderr
    finished = _snapshot(tmp_path / "sweep")
    other = [o.replace("hidden_size=8", "hidden_size=12") for o in TINY_LSTM]
    again = lmbench(tmp_path, *sweep, *other)
    assert again.returncode == 0, again.stderr
    (run,) = [Path(k).parent for k in finished if k.endswith("record.json")]
    now = _snapshot(tmp_path / "sweep")
    assert {k: v for k, v in now.items() if Path(k).parts[0] == run.name} == \
        {k: v for k, v in finished.items() if Path(k).parts[0] == run.name}
    assert len(list((tmp_path / "sweep").glob("*/record.json"))) == 2


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_the_same_command_resumes(tmp_path):
    import signal
    import time

    # epochs of a few seconds, so the interrupt lands in training even on a loaded machine
    job = ["model=lstm", "model.emb_size=16", "model.hidden_size=16", "train.max_epochs=6",
           "train.patience=0", "corpus.train_tokens=300000", "corpus.valid_tokens=500",
           "corpus.test_tokens=500", "eval.bootstrap_samples=10", f"results_dir={tmp_path / 'results'}"]
    # as from a terminal: a shell without job control starts background commands with SIGINT ignored
    process = subprocess.Popen([sys.executable, "-m", "lmbench", *job], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not list((tmp_path / "results").rglob("checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "Interrupted. The last epoch's checkpoint is kept: run the same command again" in err
    assert not list((tmp_path / "results").rglob("record.json"))
    again = subprocess.run([sys.executable, "-m", "lmbench", *job], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    (path,) = (tmp_path / "results").rglob("record.json")
    record = json.loads(path.read_text())
    assert record["resumed_from"] and record["train"]["epochs"] == 6


@pytest.mark.slow
# ---------------------------------------------------------------- 6. unwritable or corrupt state
def test_a_results_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    refused(lmbench(tmp_path, "model=unigram", *TINY), "results_dir=", "is a file")


def test_a_cache_that_is_a_file_costs_only_the_caching(tmp_path, monkeypatch, tiny_text_dir):
    cache = tmp_path / "cache-file"
    cache.write_text("")
    monkeypatch.setenv("LMBENCH_CACHE", str(cache))
    corpus = load_corpus(compose(*TINY).corpus)  # generated, used, not cached
    assert len(corpus.train) == 3000
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tiny_text_dir / "train.txt", "train.txt")
    with pytest.raises(CorpusError, match="corpus cache .* cannot be written"):
        load_corpus(compose("corpus=file", f"corpus.path={archive}").corpus)


def test_records_that_parse_but_lack_keys_are_skipped_and_named(tmp_path):
    good = run(compose("model=unigram", *TINY, f"results_dir={tmp_path}"), tmp_path / "good")
    nulls = {**good, "id": "nulls", "metrics": None, "memory": None}  # whole, but with empty sections
    for name, content in {"list": "[1, 2]", "no_model": json.dumps({"id": "x", "status": "ok"}),
                          "bad_corpus": json.dumps({**good, "corpus": "synthetic"}), "text": "{oops",
                          "nulls": json.dumps(nulls)}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text(content)
    found, skipped = find_runs(tmp_path)
    assert sorted(r.record["id"] for r in found) == sorted([good["id"], "nulls"]) and len(skipped) == 4
    assert any("no_model" in s and "missing or malformed: model" in s for s in skipped)
    refresh_tables(tmp_path)
    assert len(pd.read_csv(tmp_path / "table.csv")) == 3  # both runs and the oracle floor


def test_a_truncated_losses_file_is_read_as_missing(tmp_path):
    record = run(compose("model=unigram", *TINY, f"results_dir={tmp_path}"), tmp_path / "job")
    folder = RunDir(tmp_path / "job")
    assert len(folder.losses()) == record["metrics"]["test"]["tokens"]
    path = tmp_path / "job" / "test_losses.npy"
    path.write_bytes(path.read_bytes()[:100])
    assert folder.losses() is None
    np.save(path, np.zeros(3, dtype=np.float16))  # whole, but not this run's test split
    assert folder.losses() is None
    path.write_bytes(b"\x93NUMPY truncated")
    from lmbench import report

    assert report.build(tmp_path)["records"] == 1  # the report stands, without paired tests


def test_sample_and_diagnose_refuse_corrupt_records_and_changed_corpora(tmp_path, tiny_text_dir, capsys):
    cfg = compose("model=lstm", *TINY_NETWORKS["lstm"], "train.max_epochs=1", "corpus=file",
                  f"corpus.path={tiny_text_dir}", "corpus.level=word", f"results_dir={tmp_path}")
    run_dir = tmp_path / "job"
    run(cfg, run_dir)
    (tiny_text_dir / "train.txt").write_text((tiny_text_dir / "train.txt").read_text() + "zebra\n")
    with pytest.raises(SystemExit):
        sample.main([str(run_dir), "--length", "3"])
    assert "has changed since it ran" in capsys.readouterr().err
    assert diagnose([str(run_dir), "what=gradients"]) == 1
    assert "has changed since it ran" in capsys.readouterr().err
    (run_dir / "record.json").write_text('{"id": "x"')
    with pytest.raises(SystemExit):
        sample.main([str(run_dir)])
    assert "is not a readable lmbench record" in capsys.readouterr().err
    assert diagnose([str(run_dir)]) == 1
    assert "is not a readable lmbench record" in capsys.readouterr().err


# ---------------------------------------------------------------- 7. text and archives
def _file_corpus(tmp_path, data: bytes, *overrides):
    path = tmp_path / "text.txt"
    path.write_bytes(data)
    return load_corpus(compose("corpus=file", f"corpus.path={path}", "corpus.level=word",
                               *overrides).corpus)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    corpus = _file_corpus(tmp_path, ("\ufeff" + "the cat sat\n" * 200).encode())
    assert "the" in corpus.vocab.stoi and "\ufeffthe" not in corpus.vocab.stoi


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_suggests_the_encoding_and_reads_with_it(tmp_path, encoding):
    data = "the cat sat\n".encode(encoding) * 200
    with pytest.raises(CorpusError, match="looks like UTF-16 text.*corpus.encoding=utf-16"):
        _file_corpus(tmp_path, data)
    if encoding == "utf-16":
        assert "cat" in _file_corpus(tmp_path, data, "corpus.encoding=utf-16").vocab.stoi


def test_a_typo_in_corpus_errors_or_encoding_names_that_key():
    with pytest.raises(UserError, match="corpus.errors=replase is not an error handler"):
        validate(compose("corpus=file", "corpus.path=x", "corpus.errors=replase"))
    with pytest.raises(UserError, match="corpus.encoding=utf-9 is not a text encoding"):
        validate(compose("corpus=file", "corpus.path=x", "corpus.encoding=utf-9"))


def test_a_damaged_zip_is_a_clear_error_naming_the_users_file_and_leaves_nothing(tmp_path, isolated_cache):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.txt", "the cat sat on the mat\n" * 2000)
    data = bytearray(archive.read_bytes())
    data[60:90] = bytes(30)  # inside the deflate stream
    archive.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=f"{archive} is not a readable archive"):
        load_corpus(compose("corpus=file", f"corpus.path={archive}").corpus)
    assert not list((isolated_cache / "unpacked").iterdir())


def test_an_archive_lacking_a_split_names_the_archive_and_is_not_kept_unpacked(tmp_path, isolated_cache,
                                                                               tiny_text_dir):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "valid"):
            zf.write(tiny_text_dir / f"{split}.txt", f"mine/{split}.txt")
    with pytest.raises(CorpusError, match=f"mine in {archive} is a folder but lacks test.txt"):
        load_corpus(compose("corpus=file", f"corpus.path={archive}").corpus)
    assert not list((isolated_cache / "unpacked").iterdir())


# ---------------------------------------------------------------- 8. tools around runs
def test_sample_top_k_above_the_vocabulary_keeps_every_token_and_bad_numbers_are_refused(tmp_path, capsys):
    run_dir = tmp_path / "job"
    run(compose("model=unigram", *TINY, f"results_dir={tmp_path}"), run_dir)
    sample.main([str(run_dir), "--top-k", "1000000", "--length", "5"])
    assert len(capsys.readouterr().out.split()) >= 4
    for bad in (["--temperature", "nan"], ["--temperature", "inf"], ["--top-k", "0"], ["--length", "-1"]):
        with pytest.raises(SystemExit):
            sample.main([str(run_dir), *bad])
        assert "must be finite numbers >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["distance=0", "tokens=0", "windows=-1", "rows=0", "show=0"])
def test_diagnose_refuses_counts_below_one(tmp_path, option, capsys):
    run_dir = tmp_path / "job"
    run(compose("model=unigram", *TINY, f"results_dir={tmp_path}"), run_dir)
    assert diagnose([str(run_dir), option]) == 1
    assert "is out of range: it must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_report_out_naming_a_file_is_a_one_line_error(tmp_path):
    results = tmp_path / "results"
    run(compose("model=unigram", *TINY, f"results_dir={results}"), results / "job")
    (tmp_path / "out.html").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "lmbench.report", str(tmp_path / "results"), "--out",
                           str(tmp_path / "out.html")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is a file; give a folder" in done.stderr and (tmp_path / "out.html").read_text() == "mine"


# ---------------------------------------------------------------- 6. no traceback left
@pytest.mark.slow
@pytest.mark.parametrize("override", ["seed=${oc.env:LMBENCH_NO_SUCH_VARIABLE}", "train.lr=${train.lr}",
                                      "seed=${no_such_key}", "~seed"])
def test_an_interpolation_that_cannot_resolve_is_refused_in_one_paragraph(tmp_path, override):
    refused(lmbench(tmp_path, override, *TINY), "could not be resolved", "Give a plain value")
    assert not written(tmp_path)


CRASHING_RUN = """
import sys
from lmbench.models.unigram import Unigram
def fit(self, corpus, settings):
    raise RuntimeError("simulated bug in fit")
Unigram.fit = fit
from lmbench.__main__ import cli
cli()
"""


@pytest.mark.slow
def test_an_unexpected_error_is_one_paragraph_naming_the_log_that_holds_its_traceback(tmp_path):
    folder = tmp_path / "results" / "crashed"
    command = [sys.executable, "-c", CRASHING_RUN, "model=unigram", *TINY, f"hydra.run.dir={folder}",
               f"results_dir={tmp_path / 'results'}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    refused(done, "unexpected RuntimeError: simulated bug in fit", "the traceback is in")
    log = Path(done.stderr.split("the traceback is in ")[1].split(" (HYDRA_FULL_ERROR")[0])
    assert log.parent == folder and "Traceback" in log.read_text()
    assert json.loads((folder / "record.json").read_text())["status"] == "failed"


def test_a_plain_key_of_a_swept_group_is_applied_to_every_job():
    swept = shared_keys_as_sweeps(["-m", "model=gru,lstm", "model.hidden_size=32", "seed=0,1",
                                   "train.lr=0.1", "model.dropout=0.1,0.2", "corpus.path=/a b"])
    assert swept == ["-m", "model=gru,lstm", "model.hidden_size=choice(32)", "seed=0,1", "train.lr=0.1",
                     "model.dropout=0.1,0.2", "corpus.path=/a b"]
    single_run = ["model=gru", "model.hidden_size=32"]
    assert shared_keys_as_sweeps(single_run) == single_run


@pytest.mark.slow
def test_two_recurrent_families_sweep_at_one_shared_size(tmp_path):
    done = lmbench(tmp_path, "-m", "model=gru,lstm", "model.hidden_size=12", *TINY)
    assert done.returncode == 0, done.stderr
    found = {r["model"]: r["config"]["model"]["hidden_size"] for r in read_records(tmp_path)}
    assert found == {"gru": 12, "lstm": 12}


@pytest.mark.slow
def test_a_deleted_working_folder_is_named_not_a_traceback(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    done = subprocess.run(["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && "{sys.executable}" -m lmbench'],
                          capture_output=True, text=True)
    refused(done, "the current folder no longer exists")


@pytest.mark.slow
def test_a_runs_folder_that_is_a_file_is_refused_and_unwritable_tables_only_warn(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs").write_text("not a folder")
    refused(lmbench(tmp_path, "model=unigram", *TINY), "hydra.run.dir=", "cannot be written")
    (tmp_path / "results" / "runs").unlink()
    (tmp_path / "results" / "table.md").mkdir()  # where the table file goes: it cannot be written
    done = lmbench(tmp_path, "model=unigram", *TINY)
    assert done.returncode == 0 and "could not be refreshed" in done.stdout + done.stderr
    assert [r["status"] for r in read_records(tmp_path)] == ["ok"]
