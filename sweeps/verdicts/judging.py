"""The one judging function: an experiment file's verdict specs, each checked on a set of runs by one design.

Every place that decides something from verdicts judges them here: the report (each verdict at the
look that settled it, sequential.py), the looks that add seeds while a grid runs, and the rungs
at which early stopping may stop a run (sweeps/strategies/seeds.py). The design (stats.Design) and
the phase say the level each test is judged at; with `family="holm"` the specs share the 5% of a
sweep by Holm's step-down (`holm`). A check that fails on partial data (a sweep still running) is a
`cannot tell` that names the error when `tolerant`, so a judgement made mid-sweep never ends the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sweeps.experiment.specs import FAMILIES  # noqa: F401 - the family choices, with the rule that applies them
from sweeps.verdicts.checks import CHECKS
from sweeps.verdicts.search import confirm_verdict
from sweeps.verdicts.stats import ALPHA, HOLDS, NOISE, NOT, Design, judging
from sweeps.verdicts.verdict import Runs, Verdict, cannot_tell

if TYPE_CHECKING:
    from sweeps.experiment.specs import Experiment, VerdictSpec



@dataclass
class Judgement:
    """One verdict spec, judged: its verdicts (a check may give several), and the design they were judged by."""

    spec: VerdictSpec
    verdicts: list[Verdict]
    design: Design | None = None

    @property
    def open(self) -> bool:
        """Whether more data could decide it: one of its verdicts is within noise."""
        return any(v.outcome == NOISE for v in self.verdicts)

    @property
    def decided(self) -> bool:
        return any(v.outcome in (HOLDS, NOT) for v in self.verdicts)


def judge(specs: list[VerdictSpec], runs: Runs, design: Design | None = None, phase: str = "look",
          tolerant: bool = False) -> list[Judgement]:
    """Each spec's check on `runs`, its tests at the level `design` gives them at `phase`; in the specs' order.

    `design` None: one look at 5%.
    """
    design = design or Design((0,))
    out = []
    with judging(design, phase):
        for spec in specs:
            try:
                verdicts = CHECKS[spec.check](runs, spec)
            except Exception as e:  # noqa: BLE001 - only when tolerant: a mid-sweep judgement must not end the sweep
                if not tolerant:
                    raise
                verdicts = [cannot_tell(spec.check, f"not judged here ({type(e).__name__}: {e})", spec.check)]
            for v in verdicts:
                if v.interval is not None or v.p_value is not None:
                    v.rule = f"{v.rule}; {'at a rung: ' if phase == 'rung' else ''}{design.text()}"
            out.append(Judgement(spec, verdicts, design))
    return out


def holm(specs: list[VerdictSpec], runs: Runs, design: Design, phases: list[str] | None = None,
         decided: int = 0, tolerant: bool = False) -> list[Judgement]:
    """The specs judged by Holm's step-down over the sweep's hypotheses: with m of them still undecided, each is
    judged with alpha/m of the design; those it decides leave the family, and the rest are judged again with
    the larger share, until none is newly decided. A verdict is one hypothesis, an equivalence two (`claims`:
    its two one-sided claims are both false at the tolerance, so each has its own share). `decided`: the
    hypotheses of the same family decided before (at an earlier look). `phases`: each spec's phase (default
    "look")."""
    phases = phases or ["look"] * len(specs)
    m = sum(claims(s) for s in specs) + decided
    out: list[Judgement | None] = [None] * len(specs)
    todo = list(range(len(specs)))
    while todo:
        share = replace(design, alpha=design.alpha / (m - decided))
        judged = {i: judge([specs[i]], runs, share, phases[i], tolerant)[0] for i in todo}
        new = [i for i, j in judged.items() if j.decided]
        for i, j in judged.items():
            out[i] = j
        if not new:
            break
        decided += sum(claims(specs[i]) for i in new)
        todo = [i for i in todo if i not in new]
    return [j for j in out if j is not None]


def claims(spec: VerdictSpec) -> int:
    """The hypotheses a verdict tests, for a family's share: two for an equivalence (`same_curve`), else one."""
    return 2 if spec.check == "same_curve" else 1


def spec_runs(spec: VerdictSpec, exp: Experiment) -> list[str]:
    """The runs a verdict rests on: more seeds for these can decide it."""
    if spec.check in ("lowest", "scaling"):  # judged against every other run, or across every size
        return list(exp.run_names)
    return [r for r in dict.fromkeys((spec.run, spec.against)) if r]


def file_verdicts(exp: Experiment | None, runs: Runs, family: str | None = None) -> list[Verdict]:
    """The expectations the experiment file lists for its runs (`verdicts:`), one look at 5% (shared by Holm's
    step-down with `family="holm"`); empty without an experiment. Results holding none of the file's runs get one
    verdict saying so."""
    if exp is None:
        return []
    if not runs.names & set(exp.run_names):
        found = runs.res.trials["name"].value_counts()
        listed = ", ".join(f"{n} ×{c}" for n, c in found.items())
        return [cannot_tell(f"the chapter's {exp.name} runs ({', '.join(exp.run_names)}) are compared",
                            f"none of them is in this sweep (trials: {listed})")]
    design = Design((0,), alpha=ALPHA)
    judged = holm(exp.verdicts, runs, design) if family == "holm" else judge(exp.verdicts, runs, design)
    return [v for j in judged for v in j.verdicts]


def search_verdicts(exp: Experiment | None, runs: Runs, family: str | None = None) -> list[Verdict]:
    """What a search answers: the file's search verdicts (`optuna.verdicts`) and its confirm stage's."""
    if exp is None:
        return []
    design = Design((0,), alpha=ALPHA / (len(exp.search_verdicts) + 1) if family == "holm" else ALPHA)
    with judging(design):
        confirm = confirm_verdict(runs, exp.reference)
    return [v for j in judge(exp.search_verdicts, runs, design) for v in j.verdicts] + confirm
