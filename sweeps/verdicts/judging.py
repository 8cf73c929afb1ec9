"""The one judging function: an experiment file's verdict specs, each checked on a set of runs at one level.

Every place that decides something from verdicts judges them here: the report (each verdict at the
look that settled it, sequential.py), the looks that add seeds while a grid runs, and the rungs
at which early stopping may stop a run (sweeps/strategies/seeds.py). A check that fails on partial
data (a sweep still running) is a `cannot tell` that names the error when `tolerant`, so a
judgement made mid-sweep never ends the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweeps.verdicts.checks import CHECKS
from sweeps.verdicts.search import confirm_verdict
from sweeps.verdicts.stats import ALPHA, NOISE, at_level
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment, VerdictSpec


@dataclass
class Judgement:
    """One verdict spec, judged: its verdicts (a check may give several)."""

    spec: VerdictSpec
    verdicts: list[Verdict]

    @property
    def open(self) -> bool:
        """Whether more data could decide it: one of its verdicts is within noise."""
        return any(v.outcome == NOISE for v in self.verdicts)


def judge(specs: list[VerdictSpec], runs: Runs, level: float = ALPHA, tolerant: bool = False) -> list[Judgement]:
    """Each spec's check on `runs`, its tests at two-sided `level`; in the specs' order."""
    out = []
    with at_level(level):
        for spec in specs:
            try:
                verdicts = CHECKS[spec.check](runs, spec)
            except Exception as e:  # noqa: BLE001 - only when tolerant: a mid-sweep judgement must not end the sweep
                if not tolerant:
                    raise
                verdicts = [cannot_tell(spec.check, f"not judged here ({type(e).__name__}: {e})", spec.check)]
            out.append(Judgement(spec, verdicts))
    return out


def spec_runs(spec: VerdictSpec, exp: Experiment) -> list[str]:
    """The runs a verdict rests on: more seeds for these can decide it."""
    if spec.check == "lowest":  # judged against every other run
        return list(exp.run_names)
    return [r for r in dict.fromkeys((spec.run, spec.against)) if r]


def file_verdicts(exp: Experiment | None, runs: Runs) -> list[Verdict]:
    """The expectations the experiment file lists for its runs (`verdicts:`), judged at 0.05 (empty without an
    experiment). Results holding none of the file's runs get one verdict saying so."""
    if exp is None:
        return []
    if not runs.names & set(exp.run_names):
        found = runs.res.trials["name"].value_counts()
        listed = ", ".join(f"{n} ×{c}" for n, c in found.items())
        return [cannot_tell(f"the chapter's {exp.name} runs ({', '.join(exp.run_names)}) are compared",
                            f"none of them is in this sweep (trials: {listed})")]
    return [v for j in judge(exp.verdicts, runs) for v in j.verdicts]


def search_verdicts(exp: Experiment | None, runs: Runs) -> list[Verdict]:
    """What a search answers: the file's search verdicts (`optuna.verdicts`) and its confirm stage's."""
    if exp is None:
        return []
    return [v for j in judge(exp.search_verdicts, runs) for v in j.verdicts] + confirm_verdict(runs, exp.reference)
