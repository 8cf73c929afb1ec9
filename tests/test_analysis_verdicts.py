"""sweeps/analysis/verdicts.py: crafted curves for which each expectation must hold, and ones for which it must fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from results_factory import by_expectation, curve, judge, make_trial, noisy

from sweeps.analysis.load import load_sweep
from sweeps.analysis.verdicts import verdicts
from sweeps.analyze import analyze
from sweeps.spaces import load_experiment


def _exp1(tmp_path: Path, good: bool) -> list:
    exp = tmp_path / "exp1"
    base = curve(1.6)
    if not good:
        base = [(it, tr + (0.3 if it == 750 else 0), va + (0.3 if it == 750 else 0)) for it, tr, va in base]
    make_trial(exp, "baseline", base, per_iter=noisy(1.6, 0.02))
    lr = curve(1.9) if good else curve(1.5)
    if good:  # oscillation: val goes back up at step 500
        lr[2] = (500, lr[1][1] + 0.2, lr[1][2] + 0.2)
    make_trial(exp, "large_lr", lr, overrides={"learning_rate": 5e-3})
    make_trial(exp, "small_lr", curve(2.3 if good else 1.5, k=1.0 if good else 6.0),
               overrides={"learning_rate": 1e-4})
    make_trial(exp, "small_batch", curve(1.7), overrides={"batch_size": 1},
               per_iter=noisy(1.7, 0.1 if good else 0.005, seed=2))
    make_trial(exp, "large_model", curve(1.4 if good else 1.8), overrides={"n_layer": 8, "n_embd": 512, "n_head": 8})
    return judge("exp1", exp)


def test_exp1_verdicts_hold(tmp_path):
    vs = _exp1(tmp_path, good=True)
    assert len(vs) == 5 and all(v.holds is True for v in vs), [(v.expectation, v.observed) for v in vs]
    assert "rises by 0.2" in by_expectation(vs, "large learning rate").observed
    assert "noise" in by_expectation(vs, "small batch").observed


def test_exp1_verdicts_fail(tmp_path):
    vs = _exp1(tmp_path, good=False)
    assert all(v.holds is False for v in vs), [(v.expectation, v.observed) for v in vs]


def test_exp1_noise_falls_back_on_evaluations(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6, iters=range(0, 1001, 100)))
    jag = [(it, tr + 0.05 * (-1) ** i, va + 0.05 * (-1) ** i)
           for i, (it, tr, va) in enumerate(curve(1.7, iters=range(0, 1001, 100)))]
    make_trial(exp, "small_batch", jag, overrides={"batch_size": 1})
    v = by_expectation(judge("exp1", exp), "small batch")
    assert v.holds is True and "eval-to-eval" in v.observed


@pytest.mark.parametrize("delta,holds", [(0.002, True), (0.05, False)])
def test_exp2_equivalence(tmp_path, delta, holds):
    exp = tmp_path / "exp2"
    a = curve(1.8, iters=range(0, 501, 100))
    b = [(it, tr + delta * (i % 2), va + delta * (i % 2)) for i, (it, tr, va) in enumerate(a)]
    make_trial(exp, "large_batch", a, overrides={"batch_size": 64, "gradient_accumulation_steps": 1})
    make_trial(exp, "grad_accum", b, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
    (v,) = judge("exp2", exp)
    assert v.holds is holds
    assert v.observed.startswith("PASS" if holds else "FAIL")
    assert f"max |Δ| {delta:.6f}" in v.observed and "64×1 vs 16×4" in v.observed


def _exp3(tmp_path: Path, gaps: dict[str, float]) -> list:
    exp = tmp_path / "exp3"
    knobs = {"overfit": (0.0, 0.0), "dropout": (0.2, 0.0), "weight_decay": (0.0, 0.1), "both": (0.2, 0.1)}
    for name, gap in gaps.items():
        dropout, wd = knobs[name]
        make_trial(exp, name, curve(1.6, iters=range(0, 5001, 1000), gap=gap),
                   overrides={"dropout": dropout, "weight_decay": wd})
    return judge("exp3", exp)


def test_exp3_verdicts_hold(tmp_path):
    vs = _exp3(tmp_path, {"overfit": 0.6, "dropout": 0.2, "weight_decay": 0.4, "both": 0.08})
    assert len(vs) == 4 and all(v.holds is True for v in vs), [(v.expectation, v.observed) for v in vs]
    assert "severe" in vs[0].observed and "healthy" in vs[3].observed


def test_exp3_verdicts_fail(tmp_path):
    vs = _exp3(tmp_path, {"overfit": 0.05, "dropout": 0.2, "weight_decay": 0.3, "both": 0.1})
    assert all(v.holds is False for v in vs), [(v.expectation, v.observed) for v in vs]


def _exp4(tmp_path: Path, good: bool) -> list:
    exp = tmp_path / "exp4"
    its = range(0, 2001, 250)
    runs = {"no_schedule": ({"warmup_iters": 0, "decay_lr": False}, 1.60, 2.60),
            "warmup_only": ({"warmup_iters": 100, "decay_lr": False}, 1.60, 2.60),
            "decay_only": ({"warmup_iters": 0, "decay_lr": True, "lr_decay_iters": 2000}, 1.50, 2.60),
            "full_schedule": ({"warmup_iters": 100, "decay_lr": True, "lr_decay_iters": 2000}, 1.45, 2.50)}
    for name, (over, final, first) in runs.items():
        if not good:
            final = 3.1 - final  # decay now ends worse, the full schedule worst
            first = 5.0 - first
        pts = curve(final, iters=its)
        pts[1] = (250, first - 0.05, first)
        make_trial(exp, name, pts, overrides={"learning_rate": 1e-3, "min_lr": 1e-4, **over})
    return judge("exp4", exp)


def test_exp4_verdicts_hold(tmp_path):
    vs = _exp4(tmp_path, good=True)
    # one verdict per pair of the file (two at the start, two at the end) and the lowest of the four
    assert len(vs) == 5 and all(v.holds is True for v in vs[1:]), [(v.expectation, v.observed) for v in vs]
    # decay_lr=False disables warmup in get_lr: that pair is reported, not judged
    assert "identical learning-rate schedules" in vs[0].observed and vs[0].holds is None


def test_exp4_verdicts_fail(tmp_path):
    vs = _exp4(tmp_path, good=False)
    assert all(v.holds is False for v in vs[1:]), [(v.expectation, v.observed) for v in vs]


SIZES = {"tiny": (2, 128, 4e5), "small": (4, 256, 3.2e6), "medium": (6, 384, 1.07e7), "large": (8, 512, 2.5e7)}


def _exp5(tmp_path: Path, good: bool) -> tuple[Path, list]:
    exp = tmp_path / "exp5"
    for i, (name, (layers, width, n)) in enumerate(SIZES.items()):
        final = 3.95 * n ** -0.06
        if not good and name == "large":
            final = 2.5
        make_trial(exp, name, curve(final, iters=range(0, 3001, 500), k=12.0), n_params=n,
                   overrides={"n_layer": layers, "n_head": layers, "n_embd": width},
                   time_s=100.0 * 2 ** i if good else 100.0 / 2 ** i, mem_mb=500.0 * 2 ** i,
                   sample=f"ROMEO{i}:\nWhat light | through yonder window breaks? " * 5)
    return exp, judge("exp5", exp)


def test_exp5_verdicts_hold(tmp_path):
    _, vs = _exp5(tmp_path, good=True)
    assert len(vs) == 5 and all(v.holds is True for v in vs), [(v.expectation, v.observed) for v in vs]
    assert "α = 0.06" in by_expectation(vs, "power").observed


def test_exp5_verdicts_fail(tmp_path):
    exp, vs = _exp5(tmp_path, good=False)
    assert by_expectation(vs, "each larger model").holds is False
    assert by_expectation(vs, "take longer").holds is False
    assert by_expectation(vs, "10×").holds is False
    text = analyze(exp).read_text()
    assert "## Model sizes" in text and "ROMEO0: ↵ What light \\| through" in text and "α =" in text
    assert "400,000" in text and "500 MB" in text


def test_optuna_sweep_without_named_runs(tmp_path):
    exp = tmp_path / "exp5"
    for layers, width, n in SIZES.values():
        make_trial(exp, "optuna", curve(3.95 * n ** -0.06, iters=range(0, 1001, 250)), n_params=n,
                   overrides={"n_layer": layers, "n_head": layers, "n_embd": width})
    res = load_sweep(exp)
    assert res.trials["label"].is_unique
    vs = verdicts(load_experiment("exp5"), res)
    assert vs[0].holds is None and "none of them is in this sweep" in vs[0].observed and "optuna ×4" in vs[0].observed
    assert by_expectation(vs, "power").holds is True
    text = analyze(exp).read_text()
    assert "Best trial" in text and (exp / "plots" / "exp5_scaling.png").is_file()


def test_optuna_exp3_correlates_regularisation_with_gap(tmp_path):
    exp = tmp_path / "exp3"
    for d in [0.0, 0.1, 0.2, 0.3]:
        make_trial(exp, "optuna", curve(1.6, gap=0.6 - d), overrides={"dropout": d, "weight_decay": 0.1})
    vs = judge("exp3", exp)
    assert by_expectation(vs, "more dropout").holds is True
    assert by_expectation(vs, "more weight decay").holds is None
