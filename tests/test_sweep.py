"""Sweeps: a failing job does not stop the others, launchers isolate jobs, done jobs are skipped."""

from __future__ import annotations

from test_app import SMALL, lmbench, records


def test_a_failing_job_leaves_a_record_and_the_sweep_goes_on_with_a_failing_exit(tmp_path,
                                                                                 tiny_text_dir):
    done = lmbench(tmp_path, "-m", "model=oracle,unigram", "corpus=file",
                   f"corpus.path={tiny_text_dir}")
    assert done.returncode == 1
    assert "1 failed, 0 diverged of 2 jobs" in done.stderr
    by_model = {r["model"]: r for r in records(tmp_path)}
    assert by_model["unigram"]["status"] == "ok"
    assert by_model["oracle"]["status"] == "failed" and "synthetic" in by_model["oracle"]["error"]


def test_timing_launcher_runs_each_job_in_its_own_process(tmp_path):
    done = lmbench(tmp_path, "-m", "hydra/launcher=timing", "seed=0,1", *SMALL)
    assert done.returncode == 0, done.stderr
    found = records(tmp_path)
    assert len(found) == 2
    for record in found:
        assert record["job"]["launcher"] == "TimingLauncher"
        assert record["job"]["earlier_jobs_in_process"] == 0
    first, second = sorted(found, key=lambda r: r["started_at"])
    assert first["finished_at"] < second["started_at"]  # one at a time


def test_basic_launcher_shares_one_process_and_says_so(tmp_path):
    done = lmbench(tmp_path, "-m", "seed=0,1", *SMALL)
    assert done.returncode == 0, done.stderr
    shared = sorted(r["job"]["earlier_jobs_in_process"] for r in records(tmp_path))
    assert shared == [0, 1]


def test_a_finished_job_is_skipped_unless_forced_and_reruns_reproduce_it(tmp_path):
    assert lmbench(tmp_path, *SMALL).returncode == 0
    again = lmbench(tmp_path, *SMALL)
    assert again.returncode == 0 and "skipping: this job already finished" in again.stdout
    assert len(records(tmp_path)) == 1
    assert lmbench(tmp_path, *SMALL, "force=true").returncode == 0
    first, second = records(tmp_path)
    assert first["config_hash"] == second["config_hash"]
    assert first["metrics"]["test"] == {**second["metrics"]["test"],
                                        "eval_seconds": first["metrics"]["test"]["eval_seconds"],
                                        "eval_tokens_per_s": first["metrics"]["test"]["eval_tokens_per_s"]}


def test_compare_experiment_is_a_sweep_of_isolated_jobs(tmp_path):
    done = lmbench(tmp_path, "experiment=compare", "model=ngram,unigram", "seed=0", *SMALL)
    assert done.returncode == 0, done.stderr
    found = records(tmp_path)
    assert sorted(r["model"] for r in found) == ["ngram", "unigram"]
    assert all(r["experiment"] == "compare" and r["job"]["launcher"] == "TimingLauncher" for r in found)


def test_committed_reference_runs_are_neither_skipped_against_nor_listed_as_the_users(tmp_path):
    import pandas as pd

    reference = lmbench(tmp_path / "results", *SMALL)  # lands in results/results = a 'reference'
    assert reference.returncode == 0
    (tmp_path / "results" / "results").rename(tmp_path / "results" / "reference")
    mine = lmbench(tmp_path, *SMALL)
    assert mine.returncode == 0 and "skipping" not in mine.stdout
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert len(table[table.run != "-"]) == 1
