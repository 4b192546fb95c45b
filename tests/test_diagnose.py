"""Diagnostics: gradient flow through time, the long-range memory probe, interpretable cells, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, SYNTHETIC_20K

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import EOS
from lmbench.diagnose import cells, gradients, memory
from lmbench.diagnose.__main__ import main
from lmbench.runs.run import run
from lmbench.runs.rundir import RunDir

PROBED_NET = ["model.hidden_size=16", "model.emb_size=16", "model.layers=1"]  # the nets probed here


def untrained(name: str, corpus, *overrides: str):
    torch.manual_seed(0)
    return models.build(name, compose(f"model={name}", *PROBED_NET, *overrides).model, corpus)


# ---------------------------------------------------------------- gradient flow
def test_untrained_tanh_rnn_with_small_init_has_finite_vanishing_gradients(small_synthetic):
    model = untrained("rnn", small_synthetic, "model.init_range=0.05")
    result = gradients.flow(model, small_synthetic.valid, clip=0.25, distance=30, windows=2, rows=4,
                            warmup=5)
    norms = np.array(result["norm"])
    assert result["finite"] and np.all(norms > 0)
    assert np.all(np.diff(norms) < 0)  # every step back shrinks the gradient
    assert norms[-1] < 1e-12 * norms[0] and result["decay_rate"] > 1.0
    assert result["exploding_events"] == 0


def test_lstm_with_forget_bias_keeps_gradients_alive_longer_than_a_small_rnn(small_synthetic):
    rates = {name: gradients.flow(untrained(name, small_synthetic, *extra), small_synthetic.valid,
                                  clip=0.25, distance=30, windows=2, rows=4, warmup=5)["decay_rate"]
             for name, extra in (("rnn", ["model.init_range=0.05"]), ("lstm", ["model.forget_bias=1.0"]))}
    assert 0 < rates["lstm"] < rates["rnn"] / 3


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_window_norms_equal_the_gradient_with_respect_to_the_state_k_steps_back(small_synthetic, name):
    """Cut the graph at the state k steps back and differentiate the last loss by it directly."""
    net = untrained(name, small_synthetic).net.double().eval()
    tokens = torch.as_tensor(small_synthetic.valid[:4 * 20].astype(np.int64)).view(4, 20).t()
    warmup, k = 5, 6
    norms, _ = gradients.window_norms(net, tokens, warmup)
    inputs, target = tokens[:-1], tokens[-1]
    with torch.no_grad():
        _, state = net(inputs[:len(inputs) - k], None)  # the state after input T-1-k
    leaves = [s.clone().requires_grad_() for s in (state if isinstance(state, tuple) else (state,))]
    logits, _ = net(inputs[len(inputs) - k:], tuple(leaves) if len(leaves) == 2 else leaves[0])
    grads = torch.autograd.grad(F.cross_entropy(logits[-1], target, reduction="sum"), leaves)
    direct = sum((g ** 2).sum(dim=(0, 2)) for g in grads).sqrt().numpy()
    np.testing.assert_allclose(norms[k - 1], direct, rtol=1e-9)


# ---------------------------------------------------------------- long-range memory
def test_effective_memory_is_where_the_excess_loss_has_climbed_half_its_rise():
    def bins(*points):
        return [{"distance": d, "excess": e, "sem": 0.01} for d, e in points]

    assert memory.effective_memory(bins((2, 0.0), (4, 0.2), (8, 0.6), (16, 1.0), (32, 0.9))) \
        == pytest.approx(4 + (0.5 - 0.2) / 0.4 * 4)
    # what the model pays with the opener just read is the baseline, not forgetting
    assert memory.effective_memory(bins((1, 1.0), (4, 1.2), (16, 2.0))) == pytest.approx(4 + 0.3 / 0.8 * 12)
    assert memory.effective_memory(bins((1, 1.4), (4, 1.42), (16, 1.39))) is None  # no rise
    assert memory.effective_memory(bins((1, 0.5))) is None


def test_binned_excess_keeps_only_bins_with_enough_closers():
    distance = np.array([1] * 30 + [5] * 30 + [40] * 3)
    excess = np.array([0.1] * 30 + [1.0] * 30 + [5.0] * 3)
    bins = memory.binned(distance, excess)
    assert [(b["lo"], b["closers"]) for b in bins] == [(1, 30), (4, 30)]
    assert [b["excess"] for b in bins] == pytest.approx([0.1, 1.0]) and bins[0]["sem"] == pytest.approx(0)


def test_probe_sample_is_fresh_text_from_the_process_with_long_dependencies(small_synthetic):
    ids = memory.probe_ids(small_synthetic, "probe", 5000)
    assert len(ids) == 5000 and not np.array_equal(ids[:100], small_synthetic.test[:100])
    np.testing.assert_array_equal(ids, memory.probe_ids(small_synthetic, "probe", 5000))


# ---------------------------------------------------------------- interpretable cells
def test_ranking_finds_a_planted_unit_and_an_anti_correlated_one():
    rng = np.random.default_rng(0)
    feature = (rng.random(3000) < 0.4).astype(float)
    acts = rng.normal(size=(3000, 40))
    acts[:, 17] = 2 * feature + 3
    acts[:, 5] = -feature + 0.3 * rng.normal(size=3000)
    acts[:, 9] = 1.0  # a dead unit has no correlation, not a NaN
    partial = np.where(feature == 1, rng.random(3000) < 0.5, np.nan)  # defined where feature is on
    acts[:, 30] = np.where(np.isnan(partial), rng.normal(0.5, 0.5, 3000), partial)  # tracks it where defined
    labels = [f"h0.{j}" for j in range(40)]
    top = cells.rank(acts, labels, {"planted": feature, "constant": np.zeros(3000), "partial": partial})
    assert list(top) == ["planted", "partial"]  # a feature that never varies is not ranked
    assert top["partial"][0]["unit"] == "h0.30" and top["partial"][0]["corr"] == pytest.approx(1.0)
    assert top["planted"][0] == {"unit": "h0.17", "index": 17, "corr": pytest.approx(1.0)}
    assert top["planted"][1]["unit"] == "h0.5" and top["planted"][1]["corr"] < -0.7
    assert all(abs(u["corr"]) < 0.2 for u in top["planted"][2:])


def test_synthetic_features_describe_the_state_after_each_token(small_synthetic):
    word = small_synthetic.meta["synthetic"]["lexicon"][0][0]
    tokens = [word, "(", word, "[", word, "]", ")", word, EOS]
    found = cells.synthetic_features(small_synthetic, tokens)
    assert found["inside a span"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert found["depth"].tolist() == [0, 1, 1, 2, 2, 1, 0, 0, 0]
    nan = np.nan  # a span's type is defined inside spans only
    np.testing.assert_array_equal(found["type ( )"], [nan, 1, 1, 0, 0, 1, nan, nan, nan])
    np.testing.assert_array_equal(found["type [ ]"], [nan, 0, 0, 1, 1, 0, nan, nan, nan])


def test_text_features_track_quotes_parentheses_position_and_indentation():
    found = cells.text_features(list('a "b" (c\n  d)'), "char")
    assert found["inside quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert found["inside parentheses"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert found["position in line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4]
    assert found["indentation"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2]
    words = cells.text_features(["he", "said", '"', "hi", '"', EOS, "ok"], "word")
    assert "indentation" not in words
    assert words["inside quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0]


def test_activations_are_the_states_after_each_token(small_synthetic):
    model = untrained("lstm", small_synthetic)
    ids = small_synthetic.test[:50]
    acts, labels = cells.activations(model, ids)
    assert acts.shape == (50, 32) and labels[0] == "h0.0" and labels[16] == "c0.0"
    with torch.inference_mode():
        inputs = torch.as_tensor(np.concatenate([[model.start_id], ids]).astype(np.int64)).view(-1, 1)
        _, (h, c) = model.net(inputs, None)
    np.testing.assert_allclose(acts[-1], torch.cat([h[0, 0], c[0, 0]]).numpy(), atol=1e-6)


# ---------------------------------------------------------------- trained runs and the CLI
@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """Two tiny runs (rnn, lstm) on a small synthetic corpus, trained for a few seconds."""
    root = tmp_path_factory.mktemp("diagnose")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMBENCH_CACHE", str(root / "cache"))
        folders = []
        for name in ("rnn", "lstm"):
            cfg = compose(f"model={name}", *PROBED_NET, *SYNTHETIC_20K, "device=cpu",
                          "train.max_tokens=6000", "eval.bootstrap_samples=0",
                          f"results_dir={root / 'results'}")
            run(cfg, root / "runs" / name)
            folders.append(root / "runs" / name)
    return folders


@pytest.mark.slow
def test_probe_excess_loss_over_the_oracle_is_positive_on_average(trained_runs):
    trained = RunDir.open(trained_runs[1])
    found = memory.closer_excess(trained.model(), trained.corpus,
                                 memory.probe_ids(trained.corpus, "probe", 10_000))
    assert len(found["distance"]) > 100 and np.all(found["distance"] >= 1)
    assert found["mean_excess"] >= 0
    assert found["excess"].mean() > 0.5  # a model trained for seconds barely knows which closer comes


@pytest.mark.slow
def test_cli_writes_every_diagnostic_and_updates_the_records(trained_runs):
    assert main([*map(str, trained_runs), "distance=20", "windows=2", "tokens=4000", "show=120"]) == 0
    for folder in trained_runs:
        out = folder / "diagnostics"
        for name in ("gradients.json", "gradients.png", "memory.json", "memory.png", "cells.json",
                     "cells.png", "cells.html"):
            assert (out / name).stat().st_size > 0, name
        record = json.loads((folder / "record.json").read_text())
        found = record["diagnostics"]
        assert record["status"] == "ok" and "metrics" in record  # the rest of the record is kept
        assert math.isfinite(found["gradients"]["trained"]["decay_rate"])
        assert found["gradients"]["distance"] == 20
        assert found["memory"]["closers"] > 0 and found["memory"]["mean_excess_all"] >= 0
        assert set(found["cells"]["top"]) >= {"inside a span", "depth", "type ( )"}
        assert "&lt;&lt;" in (out / "cells.html").read_text()  # the << delimiter is escaped
    compared = trained_runs[0].parent / "diagnostics"
    assert len(list(compared.glob("gradients_synthetic_*.png"))) == 1
    assert len(list(compared.glob("memory_synthetic_*.png"))) == 1


@pytest.mark.slow
def test_cli_rejects_unknown_options_and_folders_without_a_record(trained_runs, tmp_path, capsys):
    done = subprocess.run([sys.executable, "-m", "lmbench.diagnose", str(trained_runs[0]), "what=gradients",
                           "tokens=5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Unknown option(s) tokens" in done.stderr
    assert main([str(tmp_path), "what=cells"]) == 1
    assert "holds no record.json" in capsys.readouterr().err
    assert main([str(trained_runs[0]), "what=memory", "tokens=many"]) == 1
    assert "tokens=many is not a valid int" in capsys.readouterr().err


@pytest.mark.slow
def test_a_char_run_on_real_text_gets_text_features_and_skips_the_memory_probe(tiny_text_dir, tmp_path):
    cfg = compose("model=lstm", *PROBED_NET, "corpus=file", f"corpus.path={tiny_text_dir}",
                  "device=cpu", "train.max_epochs=1", "train.bptt=20", "train.batch_size=4",
                  "eval.bootstrap_samples=0", f"results_dir={tmp_path / 'results'}")
    run(cfg, tmp_path / "run")
    assert main([str(tmp_path / "run"), "distance=10", "windows=1", "rows=2"]) == 0
    found = json.loads((tmp_path / "run" / "record.json").read_text())["diagnostics"]
    assert "skipped" in found["memory"] and "synthetic" in found["memory"]["skipped"]
    # the text has quotes and lines but neither parentheses nor indentation, which are not ranked
    assert set(found["cells"]["top"]) == {"inside quotes", "position in line"}
    assert found["gradients"]["trained"]["decay_rate"] > 0
    assert (tmp_path / "run" / "diagnostics" / "cells.png").is_file()


@pytest.mark.slow
def test_cli_refuses_a_split_that_does_not_exist(trained_runs):
    done = subprocess.run([sys.executable, "-m", "lmbench.diagnose", str(trained_runs[0]), "what=cells",
                           "split=tset"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "split=tset is not a split the cells diagnostic reads: use one of train, valid, test" \
        in done.stderr


def test_a_split_one_of_the_chosen_diagnostics_lacks_is_refused_before_any_runs(tmp_path, capsys):
    assert main([str(tmp_path), "split=probe"]) == 1  # memory's probe: neither gradients nor cells has it
    assert "split=probe is not a split the gradients diagnostic reads" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
