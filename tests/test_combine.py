"""Mixtures of finished runs: EM weights, the cache model, and a mixture scored like any run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lmbench.combine import cache_probabilities, em_weights, greedy, log_mix, with_cache

LOSSES = arrays(np.float64, st.tuples(st.integers(2, 4), st.integers(1, 60)),
                elements=st.floats(0.0, 12.0, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(losses=LOSSES)
def test_em_weights_are_a_distribution_no_worse_than_any_component_or_equal_weights(losses):
    weights = em_weights(losses)
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1)
    fitted = log_mix(losses, weights).mean()
    assert fitted <= losses.mean(axis=1).min() + 1e-12
    assert fitted <= log_mix(losses, np.full(len(losses), 1 / len(losses))).mean() + 1e-9


def test_a_mixture_with_all_weight_on_one_component_is_that_component():
    losses = np.array([[1.0, 2.0, 3.0], [0.5, 4.0, 1.0]])
    assert log_mix(losses, np.array([0.0, 1.0])) == pytest.approx(losses[1])
    assert log_mix(losses, np.array([0.5, 0.5])) == pytest.approx(
        -np.log(0.5 * np.exp(-losses[0]) + 0.5 * np.exp(-losses[1])))


def test_two_models_that_err_on_different_tokens_mix_better_than_either():
    good_first, good_second = np.array([0.1, 5.0] * 50), np.array([5.0, 0.1] * 50)
    losses = np.stack([good_first, good_second])
    weights = em_weights(losses)
    assert weights == pytest.approx([0.5, 0.5], abs=1e-3)
    assert log_mix(losses, weights).mean() < 0.8 < min(good_first.mean(), good_second.mean())
    assert [i for i, _ in greedy(losses)] in ([0, 1], [1, 0])


@settings(max_examples=100, deadline=None)
@given(ids=arrays(np.int64, st.integers(1, 80), elements=st.integers(0, 5)), size=st.integers(1, 30))
def test_the_cache_counts_only_the_tokens_scored_before_each_one(ids, size):
    expected = [0.0 if t == 0 else np.sum(ids[max(0, t - size):t] == ids[t]) / min(t, size)
                for t in range(len(ids))]
    assert cache_probabilities(ids, size) == pytest.approx(expected)
    t = len(ids) // 2  # what comes after a token never changes its probability
    assert cache_probabilities(ids[:t + 1], size) == pytest.approx(cache_probabilities(ids, size)[:t + 1])


def test_the_cache_is_a_distribution_over_the_vocabulary_at_every_position():
    history = np.array([3, 1, 3, 0, 2, 3])
    for t in range(1, len(history)):
        total = sum(cache_probabilities(np.append(history[:t], v), 4)[-1] for v in range(5))
        assert total == pytest.approx(1)


def test_a_cache_helps_a_text_that_keeps_to_a_few_words():
    ids = np.tile(np.arange(20), 10)
    model = np.full(len(ids), np.log(1000.0))  # uniform over a vocabulary of 1000
    assert with_cache(model, ids, 50, 0.5)[50:].mean() < np.log(1000.0) - 2


def test_a_mixture_of_finished_runs_is_a_run_the_report_ranks(tmp_path, capsys):
    from conftest import TINY

    from lmbench.combine import main
    from lmbench.compose import compose
    from lmbench.report import build
    from lmbench.runs.run import run
    from lmbench.runs.rundir import RunDir

    sweep = tmp_path / "sweep"
    for family in ("unigram", "ngram"):
        run(compose(f"model={family}", *TINY, f"results_dir={tmp_path}"), sweep / family)
    main([str(sweep), "--cache", "--greedy"])
    printed = capsys.readouterr().out
    assert "mixture: valid ppl" in printed and "greedy 2:" in printed
    (mix,) = [r for r in (RunDir(p.parent) for p in sweep.rglob("record.json")) if r.record["model"] == "mix"]
    parts = mix.record["mixture"]["components"]
    assert sorted(p["model"] for p in parts) == ["ngram", "unigram"]
    assert sum(p["weight"] for p in parts) == pytest.approx(1)
    best_alone = min(RunDir(sweep / f).record["metrics"]["valid"]["ppl"] for f in ("unigram", "ngram"))
    assert mix.record["metrics"]["valid"]["ppl"] <= best_alone * (1 + 1e-9)
    assert len(mix.losses("test")) == mix.record["metrics"]["test"]["tokens"]
    build(sweep)
    assert "| ngram s0 + unigram s0 + cache |" in (sweep / "report.md").read_text()


def test_runs_on_other_tokens_are_refused(tmp_path):
    from conftest import TINY

    from lmbench.combine import main
    from lmbench.compose import compose
    from lmbench.runs.run import run

    run(compose("model=unigram", *TINY, f"results_dir={tmp_path}"), tmp_path / "a")
    run(compose("model=unigram", *TINY, "corpus.seed=7", f"results_dir={tmp_path}"), tmp_path / "b")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), str(tmp_path / "b")])
