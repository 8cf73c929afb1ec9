"""The data model of an experiment file (`search_spaces/expN.yaml`): what `spaces.load_experiment` builds.

Frozen dataclasses, validated by the loader; nothing here reads a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptcore.errors import UserError

SHAPE = re.compile(r"^(\d+)/(\d+)/(\d+)$")
# what every sweep ranks its trials by, and its clock: the val loss, lower is better, at optimizer
# iterations (gptcore's `iter`); the schedulers, the searchers and Tune's own config take these
METRIC, MODE, TIME_ATTR = "val_loss", "min", "iter"
# the TrainConfig fields experiments vary: the columns of the dry run, trials.csv and the report
KNOBS = ("seed", "learning_rate", "batch_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
         "dropout", "weight_decay", "warmup_iters", "decay_lr", "lr_decay_iters", "min_lr", "max_iters", "block_size",
         "eval_interval")

# the chapter's expectations a file can ask for (`verdicts:`), and the runs each needs named: "run" (the run
# judged), "against" (the run it is compared with), "param" (a searched parameter). What each check
# measures is sweeps/verdicts/checks.py (CHECKS); docs/verdicts.md has their rules.
CHECK_NEEDS: dict[str, tuple[str, ...]] = {
    "falls_steadily": ("run",),
    "oscillates_or_worse": ("run", "against"),
    "converges_slower": ("run", "against"),
    "noisier": ("run", "against"),
    "lower_loss": ("run", "against"),
    "same_curve": ("run", "against"),
    "overfits": ("run",),
    "narrower_gap": ("run", "against"),
    "trend": ("param",),
    "best_range": ("param",),
    "lower_at_start": ("run", "against"),
    "lower_at_end": ("run", "against"),
    "lowest": ("run",),
    "scaling": (),
    "lr_scaling": (),
}
# how a sweep's verdicts share their error budget (`--family`): each its own 5% (none), or one 5% for all of them
# by Holm's step-down (holm; sweeps/verdicts/judging.py)
FAMILIES = ("none", "holm")
# the chapter's numbers that its expectations are judged against
RISE_TOL = 0.01  # a val-loss rise between two evaluations larger than this counts as oscillation
EQUIV_TOL = 0.01  # the bound on the difference of experiment 2's two curves
OVERFIT_GAP = 0.1  # the line between healthy and slight overfitting


def expand_shape(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Replace `shape: "L/H/E"` by n_layer, n_head and n_embd."""
    if "shape" not in values:
        return values
    out = dict(values)
    shape = str(out.pop("shape"))
    m = SHAPE.match(shape)
    if not m:
        raise UserError(f"{where}: shape={shape!r} must look like n_layer/n_head/n_embd, e.g. \"4/4/256\"")
    out["n_layer"], out["n_head"], out["n_embd"] = (int(g) for g in m.groups())
    return out


def shape_of(values: Any) -> str:
    """The `"L/H/E"` name of a size from n_layer, n_head and n_embd (a config dict or a trials row)."""
    return "/".join(f"{float(values[k]):.0f}" for k in ("n_layer", "n_head", "n_embd"))


@dataclass(frozen=True)
class Distribution:
    """One searched parameter: `kind` is one of DISTRIBUTIONS, `args` its bounds or choices."""

    kind: str
    args: tuple

    def values_to_check(self) -> list:
        """Representative values to validate before a search starts: every choice, the ends of a range."""
        return list(self.args) if self.kind == "choice" else [self.args[0], self.args[1]]


@dataclass(frozen=True)
class SeedRange:
    """How many training seeds each grid run trains with: `least` at first, up to `most` where a verdict is
    still within noise, `step` more at a time (sweeps/verdicts/sequential.py). least == most: a fixed number."""

    least: int
    most: int
    step: int = 2

    @property
    def looks(self) -> tuple[int, ...]:
        """The seeds a side at each look: least, least + step, ..., most."""
        return tuple(range(self.least, self.most, self.step)) + (self.most,)

    @property
    def fixed(self) -> bool:
        return self.least == self.most

    def text(self) -> str:
        return str(self.least) if self.fixed else f"{self.least}..{self.most}"


@dataclass(frozen=True)
class EarlyStopping:
    """Successive halving on optimizer iterations: rungs at grace_period * reduction_factor**k."""

    grace_period: int
    reduction_factor: int

    def rungs(self, max_t: int) -> list[int]:
        """The milestones below max_t: grace_period * reduction_factor**k."""
        out, r = [], self.grace_period
        while r < max_t:
            out.append(r)
            r *= self.reduction_factor
        return out


@dataclass(frozen=True)
class VerdictSpec:
    """One expectation to judge: a check of `CHECK_NEEDS` and the runs it needs."""

    check: str
    run: str | None = None
    against: str | None = None
    param: str | None = None  # a search's parameter (a TrainConfig field, or `params`: the model's size)
    metric: str | None = None  # what a search trend is about: val_loss (default) or gap
    expect: str | None = None  # the direction the chapter expects: lower (default) or higher


@dataclass
class Profile:
    """An experiment at one scale: what its trials share and what each run changes."""

    name: str
    note: str
    seeds: SeedRange  # how many training seeds each grid run trains with, by default
    config: dict[str, Any]  # the scale's config, then the profile's
    runs: dict[str, dict[str, Any]]
    space: dict[str, Distribution]
    early_stopping: EarlyStopping | None


@dataclass
class Experiment:
    """One experiment file, validated."""

    name: str
    path: Path
    description: str
    question: str
    base_values: dict[str, Any]
    grid: list[dict[str, Any]]
    reference: str | None
    verdicts: list[VerdictSpec]
    search_verdicts: list[VerdictSpec]
    optuna_samples: int
    no_early_stopping_reason: str  # why early stopping is off ("" where it is on)
    no_search_reason: str = ""  # why the experiment has no search ("" where it has one)
    # a search's confirm stage re-runs the best configuration of each value of this searched choice
    # (exp5: the best learning rate of each size) rather than the best K overall ("" for the best K)
    confirm_per: str = ""
    profiles: dict[str, Profile] = field(default_factory=dict)

    @property
    def run_names(self) -> list[str]:
        return [r["name"] for r in self.grid]

    @property
    def title(self) -> str:
        return f"{self.name}: {self.description}"

    def asks(self, *checks: str) -> bool:
        """Whether the file asks for any of these checks (the report's sections and plots follow them)."""
        return any(v.check in checks for v in self.verdicts + self.search_verdicts)

    def profile_base(self, profile: str) -> dict[str, Any]:
        """What every trial of a profile shares: the base config file, then the profile's config."""
        return {**self.base_values, **self.profiles[profile].config}

    def grid_runs(self, profile: str) -> list[dict[str, Any]]:
        """The grid's runs for a profile, in the file's order, each TrainConfig values plus `name`."""
        base = self.profile_base(profile)
        per_run = self.profiles[profile].runs
        return [{**base, **run, **per_run.get(run["name"], {})} for run in self.grid]

    def space(self, profile: str) -> dict[str, Distribution]:
        return self.profiles[profile].space

    def early_stopping(self, profile: str) -> EarlyStopping | None:
        return self.profiles[profile].early_stopping

    def note(self, profile: str) -> str:
        return self.profiles[profile].note

    def seeds(self, profile: str) -> SeedRange:
        return self.profiles[profile].seeds
