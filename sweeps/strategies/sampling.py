"""What a search's plan decides before Ray or Optuna start: its sampler and its confirm stage.

`plan.py` (the dry run included) needs only these, so they import neither Ray nor Optuna;
`searcher.py` runs the search they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweeps.experiment.specs import Distribution

SAMPLERS = ("auto", "tpe", "gp", "random")


def choose_sampler(requested: str, space: dict[str, Distribution], num_samples: int) -> tuple[str, str]:
    """(sampler, why) for `--sampler`; `auto` picks by the space and the budget.

    The rule follows benchmarks/samplers.py (see benchmarks/README.md): with no more samples than
    the model-based samplers' 10 random start-up trials nothing is learnt, so random; on exp1's
    space (a learning rate and two choices) a Gaussian process found the best configuration by
    16 samples for every sampler seed, TPE was still 0.02-0.07 behind at 32, so GP for small spaces
    within 64 samples; beyond that TPE, whose cost per suggestion does not grow with the trials.
    """
    if requested != "auto":
        return requested, "chosen on the command line"
    categorical = sum(d.kind == "choice" for d in space.values())
    if num_samples <= 10:
        return "random", f"{num_samples} samples: no more than the 10 random start-up trials of TPE or GP"
    if num_samples <= 64 and len(space) <= 4:
        return "gp", f"{len(space)} parameters ({categorical} categorical), {num_samples} samples"
    return "tpe", f"{len(space)} parameters ({categorical} categorical), {num_samples} samples"


@dataclass
class Confirm:
    """The confirm stage: the best `k` search configurations and the reference, each over `seeds`.

    With `per` (a searched choice), the best configuration of each of its `k` values instead.
    """

    k: int
    seeds: tuple[int, ...]
    reference: dict[str, Any] | None  # the reference run's config (name, TrainConfig values), or None
    per: str = ""

    @property
    def n_trials(self) -> int:
        return (self.k + (self.reference is not None)) * len(self.seeds)
