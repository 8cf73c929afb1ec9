"""sweeps/scheduler.py: successive halving by run, driven by a stand-in for Tune's controller.

The stand-in starts trials when the scheduler picks them, feeds each running trial's reports in
a random interleaving (as trials of different speeds would arrive) and applies PAUSE and STOP as
Tune does. Whatever the interleaving and the number of trials at once, the same runs must stop at
the same rungs, a run's seeds together, and the protected run never.
"""

from __future__ import annotations

import math
import random

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweeps.strategies.halving import SeedGroupHalving, rungs, survivors


def test_rungs_sit_below_max_t():
    assert rungs(100, 2, 600) == [100, 200, 400]
    assert rungs(10, 3, 30) == [10]
    assert rungs(50, 2, 50) == []


def test_survivors_keep_the_best_share_and_the_protected():
    scores = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
    assert survivors(scores, 2, set()) == {"a", "b", "c"}  # ceil(5 / 2)
    assert survivors(scores, 2, {"e"}) == {"a", "b", "c", "e"}
    assert survivors({"x": 1.0, "y": 1.0}, 2, set()) == {"x"}  # ties go by name
    assert survivors({"x": math.inf}, 4, set()) == {"x"}  # never below one


class Controller:
    """The little of TuneController the scheduler uses, and a loop that plays Tune's part."""

    def __init__(self, scheduler: SeedGroupHalving, trials: list[Trial]):
        self.scheduler, self.trials = scheduler, trials
        self.pauses: dict[str, int] = {}  # run name -> PAUSE decisions
        self.in_place: set[str] = set()  # trials told NOOP: running, asked for nothing until the scheduler says
        self.holds = 0
        for t in trials:
            scheduler.on_trial_add(self, t)

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial: Trial) -> None:
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == Trial.RUNNING:  # as Tune: a running trial that is stopped completes
            self.in_place.discard(trial.trial_id)
            self.scheduler.on_trial_complete(self, trial, {})
        trial.set_status(Trial.TERMINATED)

    def _schedule_trial_train(self, trial: Trial) -> None:  # Tune's, private: ask a waiting trial for more
        assert trial.trial_id in self.in_place and trial.status == Trial.RUNNING, "only a waiting trial goes on"
        self.in_place.discard(trial.trial_id)

    def run(self, curves: dict[str, list[tuple[int, float]]], slots: int, rng: random.Random) -> dict[str, int]:
        """Play the sweep to its end; the last iteration each trial reported."""
        position = {t.trial_id: 0 for t in self.trials}
        reached = {t.trial_id: 0 for t in self.trials}
        for _ in range(10_000):
            running = [t for t in self.trials if t.status == Trial.RUNNING]
            while len(running) < slots and (pick := self.scheduler.choose_trial_to_run(self)) is not None:
                pick.set_status(Trial.RUNNING)
                running.append(pick)
            reporting = [t for t in running if t.trial_id not in self.in_place]
            if not reporting:
                assert not running, "trials waiting in place with nothing else running: the sweep would hang"
                break
            t = rng.choice(reporting)  # whichever trial reports next: timing, here random
            curve = curves[t.trial_id]
            it, val = curve[position[t.trial_id]]
            position[t.trial_id] += 1
            reached[t.trial_id] = it
            decision = self.scheduler.on_trial_result(self, t, {"iter": it, "val_loss": val})
            if decision == TrialScheduler.STOP or position[t.trial_id] == len(curve):
                self.scheduler.on_trial_complete(self, t, {"iter": it})
                t.set_status(Trial.TERMINATED)
            elif decision == TrialScheduler.NOOP:
                self.in_place.add(t.trial_id)
                self.holds += 1
            elif decision == TrialScheduler.PAUSE:
                t.set_status(Trial.PAUSED)
                self.pauses[t.config["name"]] = self.pauses.get(t.config["name"], 0) + 1
        assert all(t.status == Trial.TERMINATED for t in self.trials), "the sweep did not end"
        return reached


RUNS = {"baseline": 2.0, "good": 1.5, "better": 1.2, "bad": 2.6, "worse": 3.0, "middle": 1.8}


def sweep(slots: int, order_seed: int, seeds: int = 3, pauses: dict | None = None) -> dict[str, set[int]]:
    """Each run's final iterations over its seeds, for one interleaving (and into `pauses`, each run's pauses,
    and "holds", how many times a trial waited in place)."""
    trials, curves = [], {}
    for name, level in RUNS.items():
        for s in range(seeds):
            t = Trial("__fake", config={"name": name, "seed": 1337 + s}, stub=True)
            # a falling curve per run, each seed a little apart: reports every 10 iterations to 80
            curves[t.trial_id] = [(it, level + 1.0 / (1 + it) + 0.01 * s) for it in range(0, 81, 10)]
            trials.append(t)
    rng = random.Random(order_seed)
    rng.shuffle(trials)
    scheduler = SeedGroupHalving(grace_period=10, reduction_factor=2, max_t=80, n_trials=len(trials),
                                 protected=("baseline",))
    controller = Controller(scheduler, trials)
    reached = controller.run(curves, slots, rng)
    if pauses is not None:
        pauses.update(controller.pauses, holds=controller.holds)
    out: dict[str, set[int]] = {}
    for t in trials:
        out.setdefault(t.config["name"], set()).add(reached[t.trial_id])
    return out


def test_the_same_runs_stop_at_the_same_rungs_whatever_the_timing():
    first = sweep(slots=2, order_seed=0)
    assert all(len(v) == 1 for v in first.values()), f"a run's seeds ended apart: {first}"
    # rungs 10, 20, 40: 6 runs -> the best 3 (+ the protected baseline) -> of those 4, the best 2 (+ baseline)
    # -> of those 3, the best 2, which with the baseline is all three
    assert first == {"worse": {10}, "bad": {10}, "middle": {20}, "good": {80}, "better": {80}, "baseline": {80}}
    for slots in (1, 2, 3, 7):
        for order_seed in range(5):
            assert sweep(slots, order_seed) == first, (slots, order_seed)


def test_the_protected_run_passes_the_rungs_without_waiting():
    # it is never stopped, so a pause would only cost it a fresh actor: its values at the rungs still count
    for slots, order_seed in ((1, 0), (2, 3), (3, 1)):
        pauses: dict[str, int] = {}
        assert sweep(slots, order_seed, pauses=pauses)["baseline"] == {80}
        assert "baseline" not in pauses and len(pauses) > 1, pauses


def test_a_trial_waits_in_place_when_no_other_could_use_its_slot():
    # a trial that reaches an undecided rung with nothing pending or let go on would free a slot no trial
    # can use: it holds its actor (Tune's NOOP) until the decision asks it for more or stops it
    first = sweep(slots=2, order_seed=0)
    for slots, order_seed in ((2, 0), (2, 3), (3, 4), (7, 1)):
        counts: dict[str, int] = {}
        assert sweep(slots, order_seed, pauses=counts) == first, (slots, order_seed)
        assert counts["holds"] >= 1, (slots, counts)
    counts = {}
    sweep(1, 2, pauses=counts)  # one slot: the trial that would hold is the last there, and decides at once
    assert counts["holds"] == 0


def test_after_a_resume_the_reference_run_past_an_undecided_rung_still_counts_there(tmp_path):
    # the reference run went on past rung 10 before the sweep was cut; its value there comes back from its
    # result.json, and its being past the rung does not make the rung look decided
    import json
    from types import SimpleNamespace

    folder = tmp_path / "baseline"
    folder.mkdir()
    folder.joinpath("result.json").write_text("".join(json.dumps({"iter": i, "val_loss": v}) + "\n"
                                                      for i, v in ((0, 4.0), (10, 2.0), (20, 1.8), (30, 1.7))))
    restored = [SimpleNamespace(trial_id="t_base", config={"name": "baseline", "seed": 0}, local_path=str(folder),
                                last_result={"iter": 30, "val_loss": 1.7}, status=Trial.PAUSED),
                SimpleNamespace(trial_id="t_a", config={"name": "a", "seed": 0}, local_path=str(tmp_path / "none"),
                                last_result={"iter": 10, "val_loss": 2.5}, status=Trial.PAUSED),
                SimpleNamespace(trial_id="t_b", config={"name": "b", "seed": 0}, local_path=str(tmp_path / "none"),
                                last_result={}, status=Trial.PENDING)]
    scheduler = SeedGroupHalving(grace_period=10, reduction_factor=2, max_t=40, n_trials=3, protected=("baseline",))
    tc = Controller.__new__(Controller)
    tc.scheduler, tc.trials, tc.in_place = scheduler, restored, set()
    for t in restored:
        scheduler.on_trial_add(tc, t)
    b = restored[2]
    b.status = Trial.RUNNING
    assert scheduler.on_trial_result(tc, b, {"iter": 10, "val_loss": 3.0}) == TrialScheduler.STOP
    [rung] = scheduler.decisions
    assert not rung["inferred"] and rung["stopped"] == ["b"]
    assert [(r["name"], r["mean"]) for r in rung["runs"]] == [("baseline", 2.0), ("a", 2.5), ("b", 3.0)]


def test_without_seeds_to_wait_for_it_still_decides_per_run():
    assert sweep(slots=2, order_seed=1, seeds=1) == sweep(slots=1, order_seed=4, seeds=1)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="reduction_factor"):
        SeedGroupHalving(grace_period=10, reduction_factor=1, max_t=80, n_trials=2)
