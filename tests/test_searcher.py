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


def _drive(tmp_path, order_seed: int, concurrency: int, batch: int = 2, n: int = 14) -> list[dict]:
    """A search driven as Tune drives it at `concurrency`, trials ending in an order drawn from `order_seed`: the
    configurations it asked for. Each trial's loss is a function of its configuration (as training is)."""
    import random

    rng = random.Random(order_seed)
    s = StudySearcher(SPACE, str(tmp_path / f"j{order_seed}-{concurrency}.journal"), "exp1", n, sampler="tpe",
                      seed=7, batch=batch)
    asked, running, k = [], [], 0
    while len(asked) < n or running:
        while len(running) < concurrency and len(asked) < n:
            c = s.suggest(f"r{k}")
            if c is None:
                break
            asked.append(c)
            running.append((f"r{k}", c))
            k += 1
        tid, c = running.pop(rng.randrange(len(running)))  # whichever happens to end first
        loss = 2.0 + (c["learning_rate"] * 1e3 - 1.5) ** 2 / 10 + (0.1 if c["shape"] == "1/2/32" else 0.0)
        s.on_trial_complete(tid, {"iter": MAX_ITERS, "val_loss": loss, "status": "completed"})
    return asked


def test_the_ordered_search_asks_the_same_trials_whatever_the_timing(tmp_path):
    """With B = 2, TPE (past its 10 random start-up trials) proposes the same configurations at concurrency 1, 2
    and 3 and whatever order the trials end in; asynchronously (B = 0) it does not."""
    ref = _drive(tmp_path, 0, 1)
    for seed, conc in ((1, 2), (2, 2), (3, 3)):
        assert _drive(tmp_path, seed, conc) == ref
    assert len({c["learning_rate"] for c in ref}) == 14
    asynchronous = [_drive(tmp_path, seed, 3, batch=0) for seed in (4, 5, 6)]
    assert any(a != ref for a in asynchronous)  # the control: the timing does change an asynchronous search


def test_the_ordered_search_waits_for_the_trial_b_before(tmp_path):
    s = searcher(tmp_path, n=6)
    s.batch = 2
    assert [s.suggest(f"r{i}")["name"] for i in range(2)] == ["t000", "t001"]
    assert s.suggest("r2") is None  # trial 2 is asked knowing trial 0: it has not ended
    s.on_trial_complete("r1", reports(s, "r1", [0, 10, 20, 30]))
    assert s.suggest("r2") is None  # trial 1 ending first changes nothing
    s.on_trial_complete("r0", reports(s, "r0", [0, 10]))
    assert s.suggest("r2")["name"] == "t002"
    assert s.rung_values(10, 1) == {0: pytest.approx(1.9)}  # what trial 2 compares with at a rung: trial 0
    assert s.rung_values(10, 2) == {0: pytest.approx(1.9)}  # trial 1 is not known yet, though it ended
    s.on_trial_complete("r2", reports(s, "r2", [0, 10, 20, 30]))
    assert s.suggest("r3")["name"] == "t003"  # knowing trials 0 and 1
    assert s.rung_values(10, 2) == {0: pytest.approx(1.9), 1: pytest.approx(1.9)}
    assert s.rung_values(20, 2) == {1: pytest.approx(1.8)}  # trial 0 ended at 10


def test_ordered_asha_stops_by_the_trials_before_and_logs_why(tmp_path):
    from types import SimpleNamespace

    from sweeps.results.decisions import DecisionLog, read
    from sweeps.strategies.asha import OrderedASHA, cutoff

    s = searcher(tmp_path, n=8)
    s.batch = 2
    log = DecisionLog(tmp_path / "decisions.jsonl")
    sched = OrderedASHA(s, [10, 20], 2, log=log)
    for i in range(4):  # trials 0 .. 3 end, with val losses 2.0, 1.0, 3.0, 0.5 at step 10
        tid = f"r{i}"
        s.suggest(tid)
        value = [2.0, 1.0, 3.0, 0.5][i]
        s.on_trial_result(tid, {"iter": 10, "val_loss": value, "status": "running"})
        s.on_trial_complete(tid, {"iter": 10, "val_loss": value, "status": "running"})
    s.suggest("r4")
    s.suggest("r5")
    trial = SimpleNamespace(config={"name": "t005", "stage": "search"}, trial_id="r5")
    # t005 knows t000 .. t004; t004 has not ended, so the rung compares with t000 .. t003: median of halves 1.5
    assert cutoff([2.0, 1.0, 3.0, 0.5], 2) == pytest.approx(1.5)
    assert sched.on_trial_result(None, trial, {"iter": 10, "val_loss": 1.6}) == "STOP"
    other = SimpleNamespace(config={"name": "t005", "stage": "search"}, trial_id="r5b")
    assert sched.on_trial_result(None, other, {"iter": 10, "val_loss": 1.4}) == "CONTINUE"
    confirm = SimpleNamespace(config={"name": "confirm_t001", "stage": "confirm"}, trial_id="c0")
    assert sched.on_trial_result(None, confirm, {"iter": 10, "val_loss": 9.0}) == "CONTINUE"
    (rung,) = [r for r in read(tmp_path / "decisions.jsonl") if r["kind"] == "rung"]
    assert rung["trial"] == "t005" and rung["decision"] == "stop" and rung["among"] == ["t000", "t001", "t002", "t003"]
    assert rung["cutoff"] == pytest.approx(1.5) and rung["key"] == [0, 5, 1, 10]


def test_the_ordered_search_is_the_same_after_a_resume(tmp_path):
    """Interrupted with two trials running and one ended but not yet told, saved, restored as Tune restores it:
    the trials it asks next are those the uninterrupted search asked."""
    ref = _drive(tmp_path, 0, 1, n=12)
    s = StudySearcher(SPACE, str(tmp_path / "resumed.journal"), "exp1", 12, sampler="tpe", seed=7, batch=2)
    got = [s.suggest(f"r{i}") for i in range(2)]  # t000, t001 running

    def end(searcher, tid, c):
        loss = 2.0 + (c["learning_rate"] * 1e3 - 1.5) ** 2 / 10 + (0.1 if c["shape"] == "1/2/32" else 0.0)
        searcher.on_trial_complete(tid, {"iter": MAX_ITERS, "val_loss": loss, "status": "completed"})

    for i in range(2, 9):  # at concurrency 2: end the oldest, ask the next
        end(s, f"r{i - 2}", got[i - 2])
        got.append(s.suggest(f"r{i}"))
    end(s, "r8", got[8])  # the newest ends first; t007 still runs: trial 9 must wait for it
    assert s.suggest("r9") is None
    s.save(str(tmp_path / "state.pkl"))
    restored = pickle.loads(pickle.dumps(StudySearcher(SPACE, str(tmp_path / "resumed.journal"), "exp1", 12,
                                                       sampler="tpe", seed=7, batch=2)))
    restored.restore(str(tmp_path / "state.pkl"))
    end(restored, "r7", got[7])  # Tune restarts the running trial from its checkpoint; it ends
    for i in range(9, 12):
        got.append(restored.suggest(f"r{i}"))
        end(restored, f"r{i}", got[-1])
    assert got == ref
