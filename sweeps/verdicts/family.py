"""A sweep's verdicts as a family: how many it judges, and the chance that at least one is falsely decisive.

Each verdict keeps its own false-decisive rate within 5%; a sweep judges several, so with no true
effect anywhere the chance that *some* verdict comes out decisive is larger. The report says it,
with the figure benchmarks/calibration.py measured through the judging code for the shipped
experiments' cpu-profile designs (`calibrated.json` beside this file, written by the benchmark),
and the union bound (m × 5%) for any other design. `--family holm` judges the verdicts as one
family (Holm's step-down, sweeps/verdicts/judging.py), which holds that chance at 5%.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from sweeps.verdicts.stats import ALPHA
from sweeps.verdicts.verdict import percent

CALIBRATED = Path(__file__).with_name("calibrated.json")


@dataclass(frozen=True)
class FamilyRate:
    """The family-wise figure of one sweep."""

    verdicts: int  # verdicts the sweep judges
    family: str  # "none" (each at 5%) or "holm" (the family at 5%)
    measured: float | None  # the benchmark's rate for this experiment's design, where it measured one
    mc_se: float | None
    design: str | None  # what the measured figure is for ("exp1, cpu profile, seeds 3..8")

    @property
    def bound(self) -> float:
        """The most the chance can be, whatever the verdicts' dependence: m × 5% (5% for a Holm family)."""
        return ALPHA if self.family == "holm" else min(1.0, self.verdicts * ALPHA)

    def text(self) -> str:
        """The report's sentence."""
        m = self.verdicts
        if m == 0:
            return ""
        head = (f"This sweep judges {m} verdict(s) as one family (`--family holm`, Holm's step-down): "
                if self.family == "holm" else f"This sweep judges {m} verdict(s), each with its own 5%: ")
        if self.measured is not None:
            fig = (f"with no true effect anywhere, the chance that at least one comes out decisive is "
                   f"{percent(self.measured)} ± {percent(self.mc_se or 0.0)} (measured by benchmarks/calibration.py "
                   f"for {self.design}; at most {percent(self.bound)} whatever the design)")
        else:
            fig = (f"with no true effect anywhere, the chance that at least one comes out decisive is at most "
                   f"{percent(self.bound)} (the union bound; benchmarks/calibration.py measures it for the shipped "
                   "experiments' cpu profiles)")
        tail = "" if self.family == "holm" else "; `--family holm` holds it at 5%"
        return head + fig + tail + "."


@functools.lru_cache(maxsize=1)
def _calibrated() -> dict:
    try:
        return json.loads(CALIBRATED.read_text())
    except (OSError, ValueError):
        return {}


def family_rate(exp: str | None, profile: str | None, seeds: dict | None, family: str | None,
                verdicts: int) -> FamilyRate:
    """The figure for a sweep of experiment `exp` in `profile` with `seeds` ({min, max}) judging `verdicts`
    verdicts; the measured one only where the benchmark measured this very design."""
    fam = family or "none"
    data = _calibrated()
    row = None
    if exp and profile == data.get("settings", {}).get("profile"):
        row = next((f for f in data.get("family", []) if f.get("experiment") == exp and f.get("family") == fam
                    and f.get("seeds") == _seeds_key(seeds)), None)
    if row is None:
        return FamilyRate(verdicts, fam, None, None, None)
    return FamilyRate(verdicts, fam, float(row["any_false_decisive"]), float(row["mc_se"]),
                      f"{exp}'s {profile} profile, seeds {row['seeds']}")


def _seeds_key(seeds: dict | None) -> str | None:
    if not seeds:
        return None
    lo, hi = seeds.get("min"), seeds.get("max")
    return f"{lo}" if lo == hi else f"{lo}..{hi}"
