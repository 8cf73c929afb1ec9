"""benchmarks/calibration.py in a small version, and the family-wise figure the report quotes
(sweeps/verdicts/family.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import calibration  # noqa: E402

from sweeps.verdicts import family  # noqa: E402


def test_a_small_calibration_writes_every_rate(tmp_path, monkeypatch):
    """Two experiments through the real design (exp2: one look design without early stopping; exp3: four
    verdicts), few draws: the file has the issue's schema, the null rates are rates, the effects are found."""
    out = tmp_path / "calibration.json"
    monkeypatch.setattr(sys, "argv", ["calibration.py", "--experiments", "exp2,exp3", "--draws", "120", "--least",
                                      "120", "--power-draws", "40", "--lr-draws", "60", "--workers", "1",
                                      "--out", str(out), "--no-package"])
    calibration.main()
    data = json.loads(out.read_text())
    checks = {(c["experiment"], c["check"]): c for c in data["checks"]}
    assert set(checks) == {("exp2", "same_curve (grad_accum/large_batch)"), ("exp3", "overfits (overfit)"),
                           ("exp3", "narrower_gap (dropout/overfit)"), ("exp3", "narrower_gap (weight_decay/overfit)"),
                           ("exp3", "narrower_gap (both/overfit)")}
    for c in checks.values():
        assert {"false_decisive", "false_holds", "false_not", "mc_se", "power", "effect", "draws"} <= set(c)
        assert c["false_decisive"] == max(c["false_holds"], c["false_not"]) and c["draws"] >= 120
        # 120 draws cannot show 5% to a point; what they can show is that nothing is wildly off
        assert c["false_decisive"] <= 0.12, c
        assert c["power"] >= 0.8, c  # 1.5 paired standard deviations, up to eight seeds
    fam = {(f["experiment"], f["family"]): f for f in data["family"]}
    assert set(fam) == {("exp2", "none"), ("exp2", "holm"), ("exp3", "none"), ("exp3", "holm")}
    assert fam["exp3", "none"]["verdicts"] == 4 and fam["exp3", "none"]["seeds"] == "3..8"
    assert fam["exp3", "holm"]["any_false_decisive"] <= 0.15
    assert [x["beta"] for x in data["lr_law"]] == [0.0, 0.3, 0.5]
    assert all(x["judged"] > 0 and 0.75 <= x["coverage"] <= 1.0 for x in data["lr_law"]), data["lr_law"]


def test_the_benchmark_judges_through_the_projects_own_code():
    """Nothing restated: the sweep it simulates calls the early stopping's cut and hold, the seed searcher and
    the report's judgement, by name."""
    src = (REPO / "benchmarks" / "calibration.py").read_text()
    for used in ("survivors(", "VerdictHold(", "SeedSearcher(", "judge_looks(", "fit_lr_scaling("):
        assert used in src
    assert "t_quantile" not in src and "pocock_level" not in src and "p_value" not in src


@pytest.fixture
def calibrated(monkeypatch, tmp_path):
    data = {"settings": {"profile": "cpu"},
            "family": [{"experiment": "exp1", "family": "none", "verdicts": 5, "seeds": "3..8",
                        "any_false_decisive": 0.112, "mc_se": 0.005},
                       {"experiment": "exp1", "family": "holm", "verdicts": 5, "seeds": "3..8",
                        "any_false_decisive": 0.041, "mc_se": 0.004}]}
    path = tmp_path / "calibrated.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(family, "CALIBRATED", path)
    family._calibrated.cache_clear()
    yield
    family._calibrated.cache_clear()


def test_the_report_quotes_the_measured_family_rate_for_its_design(calibrated):
    seeds = {"min": 3, "max": 8, "step": 2}
    text = family.family_rate("exp1", "cpu", seeds, None, 5).text()
    assert "judges 5 verdict(s), each with its own 5%" in text and "11.2% ± 0.5%" in text
    assert "exp1's cpu profile, seeds 3..8" in text and "at most 25%" in text and "`--family holm`" in text
    holm = family.family_rate("exp1", "cpu", seeds, "holm", 5).text()
    assert "as one family (`--family holm`" in holm and "4.1%" in holm and "at most 5%" in holm


def test_another_design_gets_the_union_bound(calibrated):
    for args in (("exp1", "full", {"min": 3, "max": 8}), ("exp1", "cpu", {"min": 3, "max": 3}),
                 ("exp2", "cpu", {"min": 3, "max": 8}), (None, None, None)):
        fr = family.family_rate(*args, None, 4)
        assert fr.measured is None and "at most 20% (the union bound" in fr.text()
    assert family.family_rate("exp1", "cpu", None, None, 0).text() == ""


def test_the_shipped_figures_cover_every_experiment():
    """The file the report reads is the benchmark's, for every shipped experiment, both families."""
    data = json.loads(family.CALIBRATED.read_text())
    got = {(f["experiment"], f["family"]) for f in data["family"]}
    assert got == {(f"exp{i}", fam) for i in range(1, 6) for fam in ("none", "holm")}
    assert all(f["family"] == "none" or f["any_false_decisive"] <= 0.05 + 2 * f["mc_se"] for f in data["family"])
