"""sweeps/analysis/report.py and plots.py: report.md, the CSV files and the figures."""

from __future__ import annotations

import pytest
from results_factory import curve, make_trial
from test_analysis_verdicts import _exp3, _exp4

from sweeps.command.analyze import analyze


@pytest.mark.parametrize("exp_name", ["exp2", "exp4"])
def test_plots_and_report_are_written(tmp_path, exp_name):
    if exp_name == "exp2":
        a = curve(1.8, iters=range(0, 501, 100))
        make_trial(tmp_path / "exp2", "large_batch", a, overrides={"batch_size": 64})
        make_trial(tmp_path / "exp2", "grad_accum", a, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
        expected = ["exp2_overlay.png", "exp2_difference.png"]
    else:
        _exp4(tmp_path, good=True)
        expected = ["exp4_lr_schedules.png", "exp4_curves.png"]
    exp = tmp_path / exp_name
    report = analyze(exp)
    assert report == exp / "report.md"
    text = report.read_text()
    for name in expected + ["val_loss_comparison.png"]:
        png = exp / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert f"](plots/{name})" in text
    for section in ("## Summary", "## Verdicts", "## Overfitting", "## Compute", "## Plots",
                    "| name | seeds | train loss | val loss | gap | training time | status |"):
        assert section in text
    assert (exp / "trials.csv").stat().st_size > 0 and (exp / "history.csv").stat().st_size > 0


def test_exp3_plots(tmp_path):
    _exp3(tmp_path, {"overfit": 0.6, "dropout": 0.2, "weight_decay": 0.4, "both": 0.08})
    exp = tmp_path / "exp3"
    text = analyze(exp).read_text()
    for name in ("exp3_train_vs_val.png", "exp3_gaps.png", "curves_overfit.png"):
        assert (exp / "plots" / name).stat().st_size > 5000 and f"plots/{name}" in text
    assert "| overfit | 5000 | 0.6000 ± 0.0100 | severe |" in text
