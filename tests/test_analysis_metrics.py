"""sweeps/analysis/metrics.py: overfitting classes, loss noise, power-law fits, compute accounting."""

from __future__ import annotations

import math

import pytest
from results_factory import curve, make_trial, noisy

from sweeps.command.analyze import analyze
from sweeps.results.load import load_sweep
from sweeps.results.metrics import compute_accounting, loss_noise, overfit_class


@pytest.mark.parametrize("gap,cls", [(0.0, "healthy"), (0.0999, "healthy"), (0.1, "slight"), (0.2999, "slight"),
                                     (0.3, "moderate"), (0.4999, "moderate"), (0.5, "severe"), (1.0, "severe"),
                                     (-0.05, "healthy"), (math.nan, "n/a")])
def test_overfit_class_boundaries(gap, cls):
    assert overfit_class(gap) == cls


def test_overfit_class_uses_the_gap_as_printed():
    # 1.2 - 1.1 is 0.09999999999999987 in binary floating point; the reader sees 0.1
    assert overfit_class(1.2 - 1.1) == "slight"
    assert overfit_class(1.8 - 1.5) == "moderate"


def test_loss_noise_tracks_sigma():
    lo, hi = loss_noise(noisy(1.5, 0.02)), loss_noise(noisy(1.5, 0.1, seed=1))
    assert lo == pytest.approx(0.02, rel=0.4) and hi == pytest.approx(0.1, rel=0.4)
    assert math.isnan(loss_noise([1.0, 2.0]))


def test_compute_accounting(tmp_path):
    exp = tmp_path / "exp3"
    make_trial(exp, "overfit", curve(1.6), time_s=100.0)
    make_trial(exp, "dropout", curve(1.9)[:2], max_iters=1000, time_s=100.0)  # ASHA stopped it at 250
    make_trial(exp, "both", curve(2.5)[:2], max_iters=1000, diverged_at=300)
    c = compute_accounting(load_sweep(exp).trials)
    assert c.iters_planned == 3000 and c.iters_run == 1000 + 250 + 300
    assert c.saved_by_stopping_iters == 750 and c.saved_share == pytest.approx(0.25)
    assert c.lost_to_divergence_iters == 700
    assert c.tokens_planned == 3000 * 64 and c.tokens_run == 1550 * 64
    text = analyze(exp).read_text()
    assert "saved by early stopping" in text and "25.0%" in text
