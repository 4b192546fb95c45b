"""``python -m lmbench.sample``: text from a finished run, neural (checkpoint) or count-based (refit)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LEARNING_NETWORKS

from lmbench import sample
from lmbench.compose import compose
from lmbench.runs.run import run
from lmbench.runs.rundir import RunDir
from lmbench.sampling import draw

pytestmark = pytest.mark.usefixtures("one_thread")


def finished_run(tmp_path, tiny_text_dir, model: str, *overrides: str):
    run_dir = tmp_path / "results" / model
    cfg = compose(f"model={model}", "corpus=file", f"corpus.path={tiny_text_dir}",
                  "corpus.level=word", "device=cpu", f"results_dir={tmp_path / 'results'}",
                  "train.max_epochs=2", "train.batch_size=4", "train.bptt=8",
                  "eval.bootstrap_samples=0",
                  *overrides)
    run(cfg, run_dir)
    return run_dir


@pytest.mark.parametrize("model, overrides", [("lstm", LEARNING_NETWORKS["lstm"]), ("unigram", [])])
def test_sample_continues_a_prompt_deterministically(model, overrides, tmp_path, tiny_text_dir, capsys):
    run_dir = finished_run(tmp_path, tiny_text_dir, model, *overrides)
    args = [str(run_dir), "--prompt", "the cat said", "--length", "12", "--top-k", "3", "--seed", "4"]
    sample.main(args)
    first = capsys.readouterr().out
    sample.main(args)
    assert capsys.readouterr().out == first
    assert first.startswith("the cat said ") and len(first.split()) >= 12


def test_sample_of_a_folder_that_is_no_run_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample.main([str(tmp_path)])
    assert exit_info.value.code == 1 and "not an lmbench run folder" in capsys.readouterr().err


def test_a_negative_seed_is_refused_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample.main([str(tmp_path), "--seed", "-1"])
    assert exit_info.value.code == 1 and "--seed=-1 is out of range" in capsys.readouterr().err


def test_a_tiny_temperature_samples_among_the_likeliest_words(tmp_path, tiny_text_dir, capsys):
    run_dir = finished_run(tmp_path, tiny_text_dir, "unigram")
    found = RunDir.open(run_dir)
    log_p = found.model().log_p
    likeliest = {found.corpus.vocab.itos[i] for i in np.flatnonzero(log_p == log_p.max())}  # tied
    for temperature in ("1e-300", "1e-310", "5e-324"):
        sample.main([str(run_dir), "--length", "30", "--temperature", temperature])
        words = capsys.readouterr().out.split()
        assert words and set(words) <= likeliest


@pytest.mark.parametrize("temperature", [1e-310, 1e-300, 1e300])
def test_draw_is_finite_at_extreme_temperatures(temperature):
    log_p = np.array([-np.inf, *np.log([0.2, 0.5, 0.3])]) - 40.0  # an impossible token; none near p=1
    picks = {draw(log_p, temperature, None, np.random.default_rng(seed)) for seed in range(200)}
    assert picks == ({2} if temperature < 1 else {1, 2, 3})
    assert {draw(log_p, temperature, 2, np.random.default_rng(s)) for s in range(200)} <= {2, 3}
