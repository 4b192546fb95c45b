"""Published results beside ours: recipes carry their figure and goal, runs and reports compare them."""

from __future__ import annotations

import json

import pytest
from conftest import RECIPES, ROOT
from omegaconf import OmegaConf

from lmbench import published
from lmbench.compose import compose
from lmbench.config import validate
from lmbench.runs.jobs import config_hash
from lmbench.runs.records import settings_hash
from lmbench.runs.rundir import JOB, RunDir

TABLES = {"ptb_table": "ptb", "bengio_brown": "brown", "char_shakespeare": "shakespeare"}


def record(metrics: dict, **published_cfg) -> dict:
    return {"model": "lstm", "config": {"published": {"metric": "test_ppl", **published_cfg}},
            "metrics": metrics}


def test_tolerance_goal_is_relative_to_the_published_value():
    near = published.comparison(record({"test": {"ppl": 143.0}}, row="KN5", value=141.2, tolerance=0.02))
    far = published.comparison(record({"test": {"ppl": 146.0}}, row="KN5", value=141.2, tolerance=0.02))
    assert near["met"] is True and near["goal"] == "within 2%"
    assert near["diff_pct"] == pytest.approx(100 * (143.0 - 141.2) / 141.2)
    assert far["met"] is False


def test_upper_bound_goal_and_other_metrics():
    goal = {"metric": "valid_nll", "value": 1.88, "at_most": 1.88}
    low = published.comparison(record({"valid": {"nll": 1.85}}, **goal))
    high = published.comparison(record({"valid": {"nll": 1.95}}, **goal))
    assert (low["met"], high["met"]) == (True, False)
    assert low["metric"] == "valid nll" and low["ours"] == 1.85


def test_a_row_with_nothing_published_is_reported_without_a_verdict():
    c = published.comparison(record({"test": {"ppl": 120.0}}, row="GRU"))
    assert c["published"] is None and c["met"] is None and c["goal"] == "report"
    assert "GRU" in published.line(record({"test": {"ppl": 120.0}}, row="GRU"))


def test_runs_without_a_published_row_or_metrics_say_nothing_or_dash():
    assert published.comparison({"config": {}}) is None
    assert published.comparison(record({}, row="KN5", value=141.2, tolerance=0.005))["met"] is None
    assert "lmbench -" in published.line(record({}, row="KN5", value=141.2, tolerance=0.005))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_validates_and_names_its_row(recipe):
    cfg = compose(f"recipe={recipe}")
    validate(cfg)
    assert cfg.published.row, f"{recipe} names no published row"
    assert cfg.corpus.name in {"ptb", "brown", "tinyshakespeare"}


@pytest.mark.parametrize("experiment, folder", TABLES.items())
def test_each_table_experiment_sweeps_every_recipe_of_its_folder(experiment, folder):
    sweep = OmegaConf.load(ROOT / "conf" / "experiment" / f"{experiment}.yaml").hydra
    assert sweep.mode == "MULTIRUN"
    assert set(sweep.sweeper.params.recipe.split(",")) == {r for r in RECIPES if r.startswith(f"{folder}/")}


def test_zaremba_small_is_the_ptb_lstm_recipe_alone():
    alone, row = compose("experiment=zaremba_small"), compose("recipe=ptb/lstm")
    assert alone.experiment == "zaremba_small"
    for key in ("model", "corpus", "train", "published"):
        assert alone[key] == row[key]
    assert alone.published.value == 114.5 and alone.published.at_most == 116


def test_ptb_rows_order_matches_the_published_table():
    values = {r: compose(f"recipe={r}").published.value for r in RECIPES if r.startswith("ptb/")}
    order = ["ptb/katz3", "ptb/kn5", "ptb/fnn", "ptb/rnn", "ptb/lstm"]
    assert [values[r] for r in order] == sorted((values[r] for r in order), reverse=True)
    assert values["ptb/gru"] is None and values["ptb/gpt"] is None  # reported, nothing published


REFERENCE = ROOT / "results" / "reference"
PUBLISHED_TABLES = ("ptb_table", "char_shakespeare", "bengio_brown")


@pytest.mark.parametrize("table", [t for t in PUBLISHED_TABLES if (REFERENCE / t).is_dir()])
def test_every_committed_row_is_still_the_job_its_command_composes(table):
    """Rerunning a published table skips its finished rows only while their config hash holds: a recipe
    or schema change that alters a committed row must come with that row rerun."""
    for job_file in sorted((REFERENCE / table).glob(f"*/{JOB}")):
        record = json.loads((job_file.parent / "record.json").read_text())
        overrides = [o for o in record["job"]["command"].split()[1:] if not o.startswith("hydra.")]
        today = config_hash(compose(*overrides))
        assert RunDir(job_file.parent).is_job(today, record["corpus"]["fingerprint"]), \
            f"{job_file.parent.name} ({record['job']['command']}) is no longer the job it ran"


def test_an_option_added_later_at_its_neutral_default_leaves_the_hash_as_it_was():
    cfg = OmegaConf.to_container(compose("model=fnn"), resolve=True, enum_to_str=True)
    before = {**cfg, "model": {k: v for k, v in cfg["model"].items() if k != "tie_weights"}}
    assert settings_hash(cfg) == settings_hash(before)
    tied = {**cfg, "model": {**cfg["model"], "tie_weights": True}}
    assert settings_hash(tied) != settings_hash(cfg)
    assert settings_hash(cfg) == settings_hash({**cfg, "published": {
        k: v for k, v in cfg["published"].items() if not k.startswith("beats_")}})
    rnn = OmegaConf.to_container(compose("model=rnn"), resolve=True, enum_to_str=True)
    assert settings_hash(rnn) != settings_hash({**rnn, "model": {
        k: v for k, v in rnn["model"].items() if k != "tie_weights"}})  # only the fnn gained it later


def test_a_goal_relative_to_other_rows_is_judged_against_the_best_of_them():
    goal = {"beats_rows": ["KN3", "KN5"], "beats_by": 0.10}
    mlp = published.comparison(record({"test": {"ppl": 175.0}}, row="MLP1", value=268, **goal))
    assert mlp["met"] is None and mlp["goal"] == "≥ 10% below the best of KN3, KN5"
    rows = [{**c, "corpus": corpus} for c, corpus in [
        (mlp, "brown"),
        (published.comparison(record({"test": {"ppl": 201.3}}, row="KN3")), "brown"),
        (published.comparison(record({"test": {"ppl": 199.8}}, row="KN5", value=321)), "brown"),
        (published.comparison(record({"test": {"ppl": 150.0}}, row="KN5")), "ptb")]]
    judged = published.judge_relative(rows)[0]
    assert judged["met"] is True and judged["goal"] == "≥ 10% below KN5 (199.8): 12.4%"
    close = {**mlp, "corpus": "brown", "ours": 185.0}
    assert published.judge_relative([close, *rows[1:]])[0]["met"] is False


@pytest.mark.parametrize("experiment", sorted(published.orderings()))
def test_every_row_of_a_published_ordering_is_a_row_of_its_table(experiment):
    rows = {compose(f"recipe={r}").published.row for r in RECIPES
            if r.startswith(TABLES[experiment] + "/")}
    for spec in published.orderings()[experiment]:
        ordered = [row for group in spec["order"] for row in group]
        assert set(ordered) <= rows and len(ordered) == len(set(ordered)) and spec["rows"] and spec["source"]


def test_a_published_ordering_needs_each_adjacent_pair_in_order_and_significantly_apart():
    order = [["LSTM", "GRU"], ["RNN"], ["KN5"]]
    tests = {("LSTM", "RNN"): 0.001, ("GRU", "RNN"): 0.01, ("RNN", "KN5"): 0.0, ("LSTM", "GRU"): 0.5}

    def pair(a, b):
        p = tests.get((a, b), tests.get((b, a)))
        return None if p is None else {"p_value": p, "significant": p < 0.05}

    kept = published.check_order(order, {"LSTM": 113.0, "GRU": 118.0, "RNN": 125.0, "KN5": 141.0}, pair)
    assert kept["holds"] and not kept["missing"] and len(kept["pairs"]) == 3  # LSTM vs GRU: same group
    swapped = published.check_order(order, {"LSTM": 113.0, "GRU": 128.0, "RNN": 125.0, "KN5": 141.0}, pair)
    assert not swapped["holds"] and [p["better"] for p in swapped["pairs"] if not p["in_order"]] == ["GRU"]
    tests[("LSTM", "RNN")] = 0.2
    unclear = published.check_order(order, {"LSTM": 113.0, "GRU": 118.0, "RNN": 125.0, "KN5": 141.0}, pair)
    assert not unclear["holds"] and all(p["in_order"] for p in unclear["pairs"])
    partial = published.check_order(order, {"LSTM": 113.0, "KN5": 141.0}, pair)
    assert partial["missing"] == ["GRU", "RNN"] and [(p["better"], p["worse"]) for p in partial["pairs"]] \
        == [("LSTM", "KN5")]  # the next group that has rows
