"""sweeps/searcher.py in process: the study on disk is told what every trial really did."""

from __future__ import annotations

import pickle

import optuna
import pytest

from sweeps.experiment.files import Distribution
from sweeps.strategies.sampling import Confirm, choose_sampler
from sweeps.strategies.study import StudySearcher, open_study

SPACE = {"learning_rate": Distribution("loguniform", (1e-4, 1e-2)), "shape": Distribution("choice", ("1/2/32",
                                                                                                    "2/4/64"))}


def searcher(tmp_path, n=4, confirm=None, sampler="random") -> StudySearcher:
    return StudySearcher(SPACE, str(tmp_path / "optuna.journal"), "exp1", n, sampler=sampler, seed=0,
                         confirm=confirm)


MAX_ITERS = 30


def reports(s: StudySearcher, tid: str, iters, value=2.0):
    """A trial's report rows as the trainable sends them (gptcore.record): the last at max_iters says completed."""
    for it in iters:
        s.on_trial_result(tid, {"iter": it, "val_loss": value - it / 100, "training_iteration": it // 10 + 1,
                                "status": "completed" if it == MAX_ITERS else "running"})
    return {"iter": iters[-1], "val_loss": value - iters[-1] / 100,
            "status": "completed" if iters[-1] == MAX_ITERS else "running"}


def test_the_journal_holds_the_truth_of_every_trial(tmp_path):
    s = searcher(tmp_path)
    configs = [s.suggest(f"r{i}") for i in range(4)]
    assert [c["name"] for c in configs] == ["t000", "t001", "t002", "t003"]
    assert all(c["stage"] == "search" and 1e-4 <= c["learning_rate"] <= 1e-2 for c in configs)
    s.on_trial_complete("r0", reports(s, "r0", [0, 10, 20, 30]))  # to max_iters: COMPLETE
    s.on_trial_complete("r1", reports(s, "r1", [0, 10]))  # ended at 10 by the scheduler: PRUNED
    reports(s, "r2", [0, 10, 20])
    s.on_trial_complete("r2", {"iter": 23, "val_loss": float("nan"), "status": "diverged"})  # diverged: FAIL
    s.on_trial_complete("r3", None, error=True)  # errored: FAIL
    study = optuna.load_study(study_name="exp1", storage=open_study(tmp_path / "optuna.journal", "exp1")._storage)
    t = {tr.number: tr for tr in study.trials}
    S = optuna.trial.TrialState
    assert [t[i].state for i in range(4)] == [S.COMPLETE, S.PRUNED, S.FAIL, S.FAIL]
    # intermediate values are keyed by the optimizer step, and a completed trial's last is its max_iters
    assert sorted(t[0].intermediate_values) == [0, 10, 20, 30] and t[0].value == pytest.approx(1.7)
    assert sorted(t[1].intermediate_values) == [0, 10] and t[1].value == pytest.approx(1.9)
    assert s.suggest("r4") == "FINISHED"


def test_an_interrupted_trial_is_left_running_and_told_after_resume(tmp_path):
    s = searcher(tmp_path, n=1)
    s.suggest("r0")
    reports(s, "r0", [0, 10])  # then the sweep is interrupted: Tune calls nothing more
    state = tmp_path / "searcher.pkl"
    s.save(str(state))
    restored = pickle.loads(pickle.dumps(searcher(tmp_path, n=1)))
    restored.restore(str(state))
    assert restored.suggest("r1") == "FINISHED"  # the finished budget is not asked for again
    restored.on_trial_complete("r0", reports(restored, "r0", [20, 30]))
    (tr,) = open_study(tmp_path / "optuna.journal", "exp1").trials
    assert tr.state == optuna.trial.TrialState.COMPLETE and sorted(tr.intermediate_values) == [0, 10, 20, 30]


def test_the_confirm_stage_waits_then_reruns_the_best_and_the_reference(tmp_path):
    ref = {"name": "baseline", "learning_rate": 1e-3, "n_layer": 1}
    s = searcher(tmp_path, n=3, confirm=Confirm(k=2, seeds=(1337, 1338), reference=ref))
    for i in range(3):
        s.suggest(f"r{i}")
    s.on_trial_complete("r0", reports(s, "r0", [0, 10, 20, 30], value=2.5))
    s.on_trial_complete("r1", reports(s, "r1", [0, 10], value=1.0))  # best at 10, but stopped there
    assert s.suggest("x") is None  # r2 is still running: the confirm stage waits for every search trial
    s.on_trial_complete("r2", reports(s, "r2", [0, 10, 20, 30], value=2.2))
    got = [s.suggest(f"c{i}") for i in range(6)]
    assert s.suggest("c6") == "FINISHED"
    # trained furthest first: t002 (2.2 - 0.3) and t000; the trial stopped at 10 is not ranked by its low early loss
    assert [(c["name"], c["seed"]) for c in got] == [("confirm_t002", 1337), ("confirm_t002", 1338),
                                                    ("confirm_t000", 1337), ("confirm_t000", 1338),
                                                    ("confirm_baseline", 1337), ("confirm_baseline", 1338)]
    assert all(c["stage"] == "confirm" for c in got) and got[-1]["learning_rate"] == 1e-3
    s.on_trial_complete("c0", reports(s, "c0", [0, 30]))  # confirm trials measure; they are not told
    assert len(open_study(tmp_path / "optuna.journal", "exp1").trials) == 3


def test_the_confirm_stage_per_value_reruns_the_best_of_each(tmp_path):
    s = searcher(tmp_path, n=4, confirm=Confirm(k=2, seeds=(1337,), reference=None, per="shape"))
    configs = [s.suggest(f"r{i}") for i in range(4)]
    for i, value in enumerate([2.4, 2.1, 2.3, 2.0]):
        s.on_trial_complete(f"r{i}", reports(s, f"r{i}", [0, 30], value=value))
    got = [s.suggest(f"c{i}") for i in range(2)]
    assert s.suggest("c2") == "FINISHED"
    # one per shape, each its shape's lowest loss, the best first
    best = {}
    for i, _value in sorted(enumerate([2.4, 2.1, 2.3, 2.0]), key=lambda x: x[1]):
        best.setdefault(configs[i]["shape"], f"confirm_t{i:03d}")
    assert [c["name"] for c in got] == list(best.values())
    assert len({c["shape"] for c in got}) == len(best)


def test_the_sampler_is_chosen_and_says_why():
    assert choose_sampler("tpe", SPACE, 100) == ("tpe", "chosen on the command line")
    assert choose_sampler("auto", SPACE, 8)[0] == "random"
    assert choose_sampler("auto", SPACE, 32)[0] == "gp"  # the benchmark's case: GP won by 16 samples
    wide = {f"p{i}": Distribution("uniform", (0.0, 1.0)) for i in range(5)}
    assert choose_sampler("auto", wide, 32)[0] == "tpe"
    assert choose_sampler("auto", SPACE, 200)[0] == "tpe"
