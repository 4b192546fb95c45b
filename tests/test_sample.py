"""``python -m lmbench.sample``: text from a finished run, neural (checkpoint) or count-based (refit)."""

from __future__ import annotations

import pytest
from conftest import LEARNING_NETWORKS

from lmbench import sample
from lmbench.compose import compose
from lmbench.runs.run import run

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
