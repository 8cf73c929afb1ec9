"""Compute that follows the question: a grid's runs judged while the sweep runs.

Two things decide where a grid's compute goes, both by judging the experiment's verdicts
(sweeps/verdicts/judging.py) on what the trials have reported to Tune (`results.frames.from_reports`:
the evaluations; a check that needs the per-iteration losses, such as `noisier`, cannot tell here
and is judged in the report):

- `VerdictHold`, for the early stopping (halving.py): at a rung, a run whose verdicts are not all
  decided (one is within noise there) is not stopped;
- `SeedSearcher`, with a range of seeds (`--seeds 3..8`): the grid's trials with the least seeds
  first; when every trial has ended, a look (sweeps/verdicts/sequential.py) finds the verdicts still
  within noise, and `step` more seeds of the runs they rest on are trained; then another look, up
  to the most. The looks wait for every trial, so the same command adds the same seeds whatever
  the timing; `looks` lists them, for the live view.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

from ray.tune.search import Searcher

from sweeps.experiment.specs import METRIC, MODE, Experiment, SeedRange
from sweeps.results.decisions import DecisionLog
from sweeps.results.trial import ending
from sweeps.strategies.base import Slots, TrialRows
from sweeps.verdicts.judging import claims, judge, spec_runs
from sweeps.verdicts.sequential import judge_looks
from sweeps.verdicts.stats import NOISE, Design
from sweeps.verdicts.verdict import Runs, verdict_text

Entry = tuple[str, dict, list[dict]]  # (trial id, its config, its report rows)


class VerdictHold:
    """The scheduler's `hold` for an experiment: per run, its verdicts at the rung, open (within noise) or decided.

    Judged at the rung's level of the sweep's design (`stats.Design`: a share of each verdict's 5%, split
    between the rungs), as the report judges a stopped run's verdicts; with `family="holm"` each verdict has
    1/m of the design's budget (the step-down's first step, the strictest; m counts hypotheses: `claims`).
    A class, not a closure: Tune pickles the scheduler with the experiment.
    """

    def __init__(self, exp: Experiment, design: Design, family: str | None = None):
        self.exp, self.design, self.family = exp, design, family
        if family == "holm" and exp.verdicts:
            self.design = replace(design, alpha=design.alpha / sum(claims(s) for s in exp.verdicts))

    def __setstate__(self, state: dict) -> None:  # pickled by an earlier version: a level, no design
        if "design" not in state:
            state = {"exp": state["exp"], "design": Design((3,)), "family": None}
        self.__dict__.update(state)

    def __call__(self, rung: int, entries: list[Entry]) -> dict[str, dict[str, list[str]]]:
        exp = self.exp
        if not entries or not exp.verdicts:
            return {}
        runs = Runs.from_reports(entries, exp.run_names, upto=rung)
        out: dict[str, dict[str, list[str]]] = {}
        for j in judge(exp.verdicts, runs, self.design, "rung", tolerant=True):
            for run in spec_runs(j.spec, exp):
                for v in j.verdicts:
                    out.setdefault(run, {"open": [], "decided": []})["open" if v.outcome == NOISE else "decided"] \
                        .append(verdict_text(v))
        return out


class SeedSearcher(Searcher):
    """A grid with a range of seeds, as a Tune Searcher (module docstring).

    Args:
        trials: the grid's first trials (every run with the least seeds), in start order.
        exp: the experiment, whose verdicts the looks judge.
        seeds: the range (a fixed number: the grid's trials, no look).
        slots: shared with the scheduler when trials wait at rungs (scheduler.Slots).
    """

    def __init__(self, trials: list[dict[str, Any]], exp: Experiment, seeds: SeedRange,
                 metric: str = METRIC, mode: str = MODE, slots: Slots | None = None, design: Design | None = None,
                 family: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self._exp, self._seeds = exp, seeds
        self._design, self._family = design or Design(tuple(seeds.looks)), family
        self._slots = slots  # --max-concurrent with early stopping (scheduler.Slots); None: Tune's own limit
        self._queue = [dict(t) for t in trials]
        self._base = {}  # run -> its first trial's config (the template of an added seed)
        for t in sorted(trials, key=lambda t: t["seed"]):
            self._base.setdefault(t["name"], dict(t))
        self._configs: dict[str, dict] = {}  # Tune trial id -> config
        self._rows = TrialRows()
        self._ended: set[str] = set()
        self._look = 0  # looks taken
        self._done = False
        self.looks: list[dict] = []  # each: {"look", "seeds", "open": [texts], "added": {run: n}}; only appended
        self.log = DecisionLog(None)  # the sweep's decision log (sweeps/results/decisions.py), set by the grid

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return metric in (None, self.metric) and mode in (None, self.mode)

    def suggest(self, trial_id: str) -> dict | str | None:
        if not self._queue and not self._done and len(self._ended) == len(self._configs):
            self._take_look()
        if self._queue:
            if self._slots is not None and not self._slots.take():
                return None
            config = self._queue.pop(0)
            self._configs[trial_id] = config
            return dict(config)
        return Searcher.FINISHED if self._done else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._configs:
            self._rows.add(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._configs:
            return
        if result:
            self._rows.add(trial_id, result)
        self._ended.add(trial_id)
        config, rows = self._configs[trial_id], self._rows.of(trial_id)
        order = self._exp.run_names.index(config["name"]) if config["name"] in self._exp.run_names else -1
        last = rows[-1] if rows else {}
        self.log.record("end", [3, order, config.get("seed", 0)], trial=f"{config['name']} seed {config.get('seed')}",
                        status=ending(result, over=True, errored=error), iter=last.get("iter"),
                        val_loss=last.get("val_loss"))

    # -- the looks -----------------------------------------------------------------------

    def _take_look(self) -> None:
        """Judge what the trials reported; queue `step` more seeds for the runs of every open verdict."""
        self._look += 1
        looks = self._seeds.looks
        entries = [(tid, self._configs[tid], self._rows.of(tid)) for tid in self._configs]
        if self._look >= len(looks) or not entries:
            self._done = True
            return
        runs = Runs.from_reports(entries, self._exp.run_names)
        have = {n: runs.n(n) for n in runs.names}
        want: dict[str, int] = {}
        open_: list[str] = []
        try:
            judged = judge_looks(self._exp, runs, self._design, self._family)
        except Exception as e:  # noqa: BLE001 - a look that cannot judge adds no seed; the sweep ends as it is
            self.looks.append({"look": self._look, "seeds": looks[self._look - 1], "added": {},
                               "open": [f"not judged ({type(e).__name__}: {e}): no seed added"]})
            self._done = True
            return
        for j in judged:
            if j.open and j.look == self._look:
                open_ += [verdict_text(v) for v in j.verdicts if v.outcome == NOISE]
                for run in spec_runs(j.spec, self._exp):
                    want[run] = max(want.get(run, 0), looks[self._look])
        added = {}
        for run in self._exp.run_names:
            base = self._base.get(run)
            n = int(have.get(run, 0))
            if base is None or want.get(run, 0) <= n:
                continue
            added[run] = want[run] - n
            self._queue += [{**base, "seed": base["seed"] + i} for i in range(n, want[run])]
        self.looks.append({"look": self._look, "seeds": looks[self._look - 1], "open": open_, "added": added})
        self.log.record("look", [2, self._look], **self.looks[-1])
        if not added:
            self._done = True

    # -- Tune saves the searcher with the experiment and restores it on --resume ------------

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({k: v for k, v in self.__dict__.items() if k != "_slots"}, f)

    def restore(self, checkpoint_path: str) -> None:
        # the slots stay those shared with this session's scheduler
        with open(checkpoint_path, "rb") as f:
            self.__setstate__({**{k: v for k, v in pickle.load(f).items() if k != "_slots"}, "_slots": self._slots})

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_design", Design(tuple(state["_seeds"].looks)) if "_seeds" in state else Design((3,)))
        state.setdefault("_family", None)
        state.setdefault("log", DecisionLog(None))
        rows = state.get("_rows")
        if isinstance(rows, dict):  # saved by an earlier version: trial id -> rows
            state["_rows"] = TrialRows()
            state["_rows"].rows = {k: list(v) for k, v in rows.items()}
        self.__dict__.update(state)

