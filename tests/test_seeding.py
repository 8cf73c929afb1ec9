"""sweeps/strategies/seeds.py: the looks that add seeds, and the hold that keeps a run with an open verdict going."""

from __future__ import annotations

import random

from ray.tune.experiment import Trial
from ray.tune.search import Searcher
from test_scheduler import Controller

from sweeps.experiment.files import load_experiment
from sweeps.experiment.specs import EarlyStopping, SeedRange
from sweeps.strategies.halving import SeedGroupHalving
from sweeps.strategies.seeds import SeedSearcher, VerdictHold
from sweeps.verdicts.sequential import design

EXP = load_experiment("exp1")
NAMES = EXP.run_names  # baseline, large_lr, small_lr, small_batch, large_model
# the final val loss of each run: large_lr only a hair above the baseline (an open question), the others far
FINAL = {"baseline": 2.00, "large_lr": 2.01, "small_lr": 2.50, "small_batch": 2.10, "large_model": 1.80}
OFFSET = {1337: 0.00, 1338: 0.03, 1339: -0.02, 1340: 0.01, 1341: -0.01, 1342: 0.02, 1343: -0.03, 1344: 0.0}
# and each run's own noise (what pairing by seed does not take away): ±0.02, fixed
OWN = {(n, s): 0.02 * ((7 * i + 3 * s) % 5 - 2) / 2 for i, n in enumerate(NAMES) for s in OFFSET}


def rows(name: str, seed: int, final: float | None = None) -> list[dict]:
    """Evaluation rows at 0, 50, 100 of a falling curve ending at the run's final loss plus the seed's offset."""
    end = (FINAL[name] if final is None else final) + OFFSET[seed] * (1 + NAMES.index(name) / 10) + OWN[name, seed]
    out = []
    for it, val in ((0, 4.2), (50, (4.2 + end) / 2), (100, end)):
        out.append({"iter": it, "train_loss": val - 0.02, "val_loss": val, "gap": 0.02, "status": "running"})
    out[-1]["status"] = "completed"
    return out


def play(searcher: SeedSearcher, finals: dict[str, float] | None = None) -> list[dict]:
    """Tune's part: ask for trials until the searcher waits or is done, run each, tell it; the configs run."""
    ran, n = [], 0
    while True:
        config = searcher.suggest(f"t{n:03d}")
        if config is None:  # waiting for trials: none is running here, so a look must have been taken
            raise AssertionError("the searcher waits with every trial ended")
        if config == Searcher.FINISHED:
            return ran
        tid = f"t{n:03d}"
        n += 1
        for row in rows(config["name"], config["seed"], (finals or {}).get(config["name"])):
            searcher.on_trial_result(tid, row)
        searcher.on_trial_complete(tid, row)
        ran.append(config)


def first_wave(n: int = 3) -> list[dict]:
    return [{"name": name, "seed": 1337 + i, "max_iters": 100, "eval_interval": 50} for name in NAMES
            for i in range(n)]


def test_an_open_verdict_gets_seeds_a_few_at_a_time_up_to_the_most():
    searcher = SeedSearcher(first_wave(), EXP, SeedRange(3, 8))
    ran = play(searcher)
    seeds = {}
    for c in ran:
        seeds.setdefault(c["name"], []).append(c["seed"])
    # large_lr vs baseline stays within noise (0.01 apart, seeds ±0.03): both to 8 seeds; the rest keep 3
    assert seeds["large_lr"] == seeds["baseline"] == list(range(1337, 1345))
    assert all(seeds[n] == [1337, 1338, 1339] for n in ("small_lr", "small_batch", "large_model"))
    assert [(lk["look"], lk["seeds"], lk["added"]) for lk in searcher.looks] == [
        (1, 3, {"baseline": 2, "large_lr": 2}), (2, 5, {"baseline": 2, "large_lr": 2}),
        (3, 7, {"baseline": 1, "large_lr": 1})]
    assert all("oscillates_or_worse within noise" in lk["open"][0] for lk in searcher.looks)


def test_when_every_verdict_is_decided_no_seed_is_added():
    searcher = SeedSearcher(first_wave(), EXP, SeedRange(3, 8))
    ran = play(searcher, finals={"large_lr": 2.4})  # large_lr clearly worse: decided at the first look
    assert len(ran) == 15 and searcher.looks[0]["added"] == {} and searcher.looks[0]["open"] == []


def test_the_searcher_resumes_where_it_was(tmp_path):
    searcher = SeedSearcher(first_wave(), EXP, SeedRange(3, 5))
    for n in range(15):  # the first wave, then one look's worth of suggestions
        config = searcher.suggest(f"t{n:03d}")
        for row in rows(config["name"], config["seed"]):
            searcher.on_trial_result(f"t{n:03d}", row)
        searcher.on_trial_complete(f"t{n:03d}", row)
    searcher.save(str(tmp_path / "searcher.pkl"))
    again = SeedSearcher([], EXP, SeedRange(3, 5))
    again.restore(str(tmp_path / "searcher.pkl"))
    assert again.suggest("t015")["seed"] == searcher.suggest("t015")["seed"] == 1340
    assert again.looks == searcher.looks


def test_the_hold_says_which_verdicts_are_open_at_a_rung():
    hold = VerdictHold(EXP, design(SeedRange(3, 8), EarlyStopping(50, 2), 200))
    entries = [(f"{name}{i}", {"name": name, "seed": 1337 + i, "max_iters": 100, "eval_interval": 50},
                rows(name, 1337 + i)) for name in NAMES for i in range(3)]
    judged = hold(100, entries)
    assert judged["large_lr"]["open"] and "oscillates_or_worse within noise" in judged["large_lr"]["open"][0]
    assert not judged["small_lr"]["open"] and "converges_slower holds" in judged["small_lr"]["decided"][0]
    assert hold(0, entries)["small_lr"]["open"]  # at step 0 every run starts alike: nothing is decided yet


def test_successive_halving_does_not_stop_a_run_with_an_open_verdict():
    curves, trials = {}, []
    for name, level in {"baseline": 2.0, "open": 2.4, "closed": 2.5, "good": 1.5}.items():
        for s in range(2):
            t = Trial("__fake", config={"name": name, "seed": 1337 + s}, stub=True)
            curves[t.trial_id] = [(it, level + 1.0 / (1 + it) + 0.01 * s) for it in range(0, 41, 10)]
            trials.append(t)
    asked = []

    def hold(rung, entries):
        asked.append((rung, len(entries), sum(len(r) for _, _, r in entries)))
        return {"open": {"open": ["a_check within noise"], "decided": []},
                "closed": {"open": [], "decided": ["a_check holds"]}}

    scheduler = SeedGroupHalving(grace_period=10, reduction_factor=2, max_t=40, n_trials=len(trials),
                                 protected=("baseline",), hold=hold)
    reached = Controller(scheduler, trials).run(curves, 2, random.Random(0))
    ends = {t.config["name"]: reached[t.trial_id] for t in trials}
    # ranked at rung 10: good, baseline | open, closed: closed stops, open is held to the end
    assert ends == {"baseline": 40, "good": 40, "open": 40, "closed": 10}
    first = scheduler.decisions[0]
    assert first["rung"] == 10 and first["stopped"] == ["closed"] and first["held"] == ["open"]
    runs = {r["name"]: r for r in first["runs"]}
    assert runs["open"]["held"] == ["a_check within noise"] and runs["closed"]["decided"] == ["a_check holds"]
    assert asked[0][:2] == (10, 8) and asked[0][2] >= 8  # every trial's rows up to the rung
