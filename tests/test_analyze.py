"""Tests of the analysis layer on synthetic results: no training, no Ray.

`make_trial` fabricates a trial folder as docs/outputs.md describes it (result.json lines,
params.json, config.json from TrainConfig, optional metrics.jsonl, sample.txt, error.txt).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gptcore.config import TrainConfig
from gptcore.errors import UserError
from sweeps.analysis.load import load_logs, load_sweep, parse_log, trial_status
from sweeps.analysis.metrics import compute_accounting, fit_power_law, loss_noise, overfit_class
from sweeps.analysis.verdicts import verdicts
from sweeps.analyze import analyze, load_results, main

REPO = Path(__file__).resolve().parent.parent

# small enough that tokens stay readable: 4 x 1 x 16 = 64 tokens per iteration
SMALL = {"batch_size": 4, "gradient_accumulation_steps": 1, "block_size": 16, "eval_interval": 250}


def curve(final: float, iters=range(0, 1001, 250), start: float = 4.2, gap: float = 0.05,
          k: float = 4.0) -> list[tuple[int, float, float]]:
    """(iter, train, val) points of a smoothly falling val loss ending near `final`, train `gap` below it."""
    its = list(iters)
    end = its[-1] or 1
    out = []
    for it in its:
        val = final + (start - final) * math.exp(-k * it / end)
        out.append((it, val - gap, val))
    return out


def make_trial(exp_dir: Path, name: str, evals: list[tuple[int, float, float]], *, max_iters: int | None = None,
               overrides: dict | None = None, trial_id: str | None = None, n_params: float = 1e6,
               mem_mb: float = 100.0, time_s: float | None = None, per_iter: list[float] | None = None,
               sample: str | None = None, error: str | None = None, diverged_at: int | None = None,
               extra_rows: list[dict] | None = None, config_json: bool = True) -> Path:
    """Write one trial folder the way a sweep leaves it (docs/outputs.md) and return it."""
    index = len([d for d in exp_dir.iterdir() if d.is_dir()]) if exp_dir.is_dir() else 0
    trial_id = trial_id or f"ab{index:03d}_{index:05d}"
    d = exp_dir / f"{name}_{trial_id}"
    d.mkdir(parents=True)
    over = {**SMALL, **(overrides or {})}
    if max_iters is None:
        max_iters = evals[-1][0] if evals else 1000
    over["max_iters"] = max_iters
    cfg = {**TrainConfig().as_dict(), **over}
    tpi = cfg["batch_size"] * cfg["gradient_accumulation_steps"] * cfg["block_size"]
    (d / "params.json").write_text(json.dumps({"name": name, **over}))
    if config_json:
        (d / "config.json").write_text(json.dumps({**cfg, "resolved_device": "cpu", "resolved_dtype": "float32"}))
    rows, best = [], math.inf
    for k, (it, tr, va) in enumerate(evals):
        best = min(best, va)
        elapsed = (time_s if time_s is not None else max_iters / 100) * it / max(max_iters, 1)
        rows.append({"iter": it, "tokens": it * tpi, "train_loss": tr, "val_loss": va, "gap": va - tr, "lr": 1e-3,
                     "tokens_per_s": 1000.0, "elapsed_s": elapsed, "best_val_loss": best, "mem_mb": mem_mb,
                     "n_params": n_params, "max_iters": max_iters, "diverged": 0, "training_iteration": k + 1,
                     "trial_id": trial_id, "time_total_s": elapsed + 1.0, "done": False})
    if diverged_at is not None:
        last = evals[-1][2] if evals else math.nan
        rows.append({"iter": diverged_at, "tokens": diverged_at * tpi, "train_loss": math.nan, "val_loss": last,
                     "gap": math.nan, "diverged": 1, "n_params": n_params, "max_iters": max_iters,
                     "trial_id": trial_id, "time_total_s": 5.0, "mem_mb": mem_mb})
    rows += extra_rows or []
    if rows:
        # json.dumps writes NaN as `NaN`, exactly as Ray does
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if per_iter is not None:
        events = [{"event": "iter", "iter": i * 10, "loss": x, "lr": 1e-3, "time_ms": 5.0, "tokens_per_s": 1.0,
                   "mfu": 1.0, "tokens": (i * 10 + 1) * tpi} for i, x in enumerate(per_iter)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if sample is not None:
        (d / "sample.txt").write_text(sample)
    if error is not None:
        (d / "error.txt").write_text(f"Failure # 1\nTraceback (most recent call last):\n  ...\n{error}\n")
    return d


def noisy(final: float, sigma: float, n: int = 100, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(final + 2.5 * np.exp(-np.arange(n) / 10) + rng.normal(0, sigma, n))


def by_expectation(vs, word: str):
    hits = [v for v in vs if word in v.expectation]
    assert hits, f"no verdict mentions {word!r}: {[v.expectation for v in vs]}"
    return hits[0]


# ----------------------------------------------------------------------------------------
# overfitting classes and small metrics


@pytest.mark.parametrize("gap,cls", [(0.0, "healthy"), (0.0999, "healthy"), (0.1, "slight"), (0.2999, "slight"),
                                     (0.3, "moderate"), (0.4999, "moderate"), (0.5, "severe"), (1.0, "severe"),
                                     (-0.05, "healthy"), (math.nan, "n/a")])
def test_overfit_class_boundaries(gap, cls):
    assert overfit_class(gap) == cls


def test_overfit_class_uses_the_gap_as_printed():
    # 1.2 - 1.1 is 0.09999999999999987 in binary floating point; the reader sees 0.1
    assert overfit_class(1.2 - 1.1) == "slight"
    assert overfit_class(1.8 - 1.5) == "moderate"


@pytest.mark.parametrize("alpha,offset", [(0.076, 0.0), (0.3, 0.0), (0.12, 0.9)])
def test_power_law_recovers_exponent(alpha, offset):
    n = np.array([5e5, 2e6, 8e6, 3e7, 1e8, 4e8])
    loss = 6.0 * n ** -alpha + offset
    law = fit_power_law(n, loss, offset=offset > 0)
    assert law is not None
    assert law.alpha == pytest.approx(alpha, abs=0.01 if offset else 1e-9)
    assert law.r2 > 0.999


def test_power_law_needs_two_sizes():
    assert fit_power_law([1e6, 1e6], [2.0, 1.9]) is None


def test_loss_noise_tracks_sigma():
    lo, hi = loss_noise(noisy(1.5, 0.02)), loss_noise(noisy(1.5, 0.1, seed=1))
    assert lo == pytest.approx(0.02, rel=0.4) and hi == pytest.approx(0.1, rel=0.4)
    assert math.isnan(loss_noise([1.0, 2.0]))


@pytest.mark.parametrize("args,status", [
    ((1000, 1000, False, False, True), "completed"),
    ((250, 1000, False, False, True), "stopped early"),
    ((250, 1000, True, False, True), "diverged"),
    ((250, 1000, False, True, True), "errored"),
    ((1000, 1000, False, True, True), "completed"),  # retried after a failure, then finished
    ((0, 1000, False, False, False), "no results"),
    ((0, 1000, False, True, False), "errored"),
])
def test_trial_status(args, status):
    assert trial_status(*args) == status


# ----------------------------------------------------------------------------------------
# loading


def test_load_results_frames_and_dedup(tmp_path):
    exp = tmp_path / "exp1"
    evals = curve(1.6)
    # a retry re-reports step 500 and 750 with new values: the later ones must win
    retry = [{"iter": 500, "train_loss": 1.9, "val_loss": 2.0, "diverged": 0},
             {"iter": 750, "train_loss": 1.7, "val_loss": 1.8, "diverged": 0}]
    make_trial(exp, "baseline", evals[:4], max_iters=1000, extra_rows=retry + [
        {"iter": 1000, "train_loss": 1.55, "val_loss": 1.6, "diverged": 0, "tokens": 64000}])
    with open(next(exp.iterdir()) / "result.json", "a") as f:
        f.write('{"iter": 12')  # a line cut short by a crash
    trials, history = load_results(exp)
    assert len(trials) == 1 and list(history["iter"]) == [0, 250, 500, 750, 1000]
    assert history.loc[history["iter"] == 500, "val_loss"].item() == 2.0
    row = trials.iloc[0]
    assert row["status"] == "completed" and row["retried_rows"] == 2
    for col in ("learning_rate", "batch_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd",
                "dropout", "weight_decay", "warmup_iters", "decay_lr", "lr_decay_iters", "max_iters", "block_size",
                "final_train_loss", "final_val_loss", "final_gap", "best_val_loss", "best_iter", "final_iter",
                "tokens", "time_s", "n_params", "mem_mb", "name", "trial_id"):
        assert col in trials.columns, col
    assert row["final_val_loss"] == 1.6 and row["final_gap"] == pytest.approx(0.05)
    assert row["tokens"] == 64000 and row["max_iters"] == 1000


def test_missing_and_empty_experiment_dirs(tmp_path):
    with pytest.raises(UserError, match="no experiment directory"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty" / "plots").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no trials") as e:
        analyze(tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_trial_without_results_and_errored_trial(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6))
    make_trial(exp, "large_lr", [])  # params.json and config.json only: never reported
    make_trial(exp, "small_lr", curve(2.0)[:2], max_iters=1000, error="RuntimeError: CUDA out of memory")
    report = analyze(exp)
    trials = load_sweep(exp).trials.set_index("name")
    assert trials.loc["large_lr", "status"] == "no results"
    assert trials.loc["small_lr", "status"] == "errored"
    text = report.read_text()
    assert "large_lr: no results" in text and "CUDA out of memory" in text
    v = by_expectation(verdicts("exp1", load_sweep(exp)), "large learning rate")
    assert v.holds is None and "no evaluations" in v.observed


def test_experiment_where_no_trial_reported(tmp_path):
    exp = tmp_path / "exp2"
    make_trial(exp, "large_batch", [])
    make_trial(exp, "grad_accum", [], error="ray.exceptions.ActorDiedError: the worker died")
    text = analyze(exp).read_text()
    assert "1 no results" in text and "1 errored" in text and "ActorDiedError" in text
    (v,) = verdicts("exp2", load_sweep(exp))
    assert v.holds is None and "no evaluations" in v.observed
    assert not (exp / "plots" / "val_loss_comparison.png").exists()


def test_diverged_trial(tmp_path):
    exp = tmp_path / "exp1"
    make_trial(exp, "baseline", curve(1.6))
    make_trial(exp, "large_lr", curve(2.5)[:2], max_iters=1000, diverged_at=300)
    res = load_sweep(exp)
    row = res.trials.set_index("name").loc["large_lr"]
    assert row["status"] == "diverged" and row["diverged_at"] == 300 and row["final_iter"] == 300
    assert math.isfinite(row["final_val_loss"])  # the last finite value, not the NaN of the divergence
    assert by_expectation(verdicts("exp1", res), "large learning rate").holds is True
    text = analyze(exp).read_text()
    assert "diverged" in text and (exp / "plots" / "curves_large_lr.png").stat().st_size > 0


def test_config_rebuilt_without_config_json(tmp_path):
    exp = tmp_path / "exp9"
    make_trial(exp, "baseline", curve(1.6), config_json=False)
    res = load_sweep(exp)
    assert res.trials.iloc[0]["max_iters"] == 1000 and res.trials.iloc[0]["status"] == "completed"
    assert any("no config.json" in n for n in res.notes)


# ----------------------------------------------------------------------------------------
# verdicts: crafted curves that must pass, and ones that must fail


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
    return verdicts("exp1", load_sweep(exp))


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
    v = by_expectation(verdicts("exp1", load_sweep(exp)), "small batch")
    assert v.holds is True and "eval-to-eval" in v.observed


@pytest.mark.parametrize("delta,holds", [(0.002, True), (0.05, False)])
def test_exp2_equivalence(tmp_path, delta, holds):
    exp = tmp_path / "exp2"
    a = curve(1.8, iters=range(0, 501, 100))
    b = [(it, tr + delta * (i % 2), va + delta * (i % 2)) for i, (it, tr, va) in enumerate(a)]
    make_trial(exp, "large_batch", a, overrides={"batch_size": 64, "gradient_accumulation_steps": 1})
    make_trial(exp, "grad_accum", b, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
    (v,) = verdicts("exp2", load_sweep(exp))
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
    return verdicts("exp3", load_sweep(exp))


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
    return verdicts("exp4", load_sweep(exp))


def test_exp4_verdicts_hold(tmp_path):
    vs = _exp4(tmp_path, good=True)
    assert len(vs) == 3 and all(v.holds is True for v in vs), [(v.expectation, v.observed) for v in vs]
    # decay_lr=False disables warmup in get_lr: that pair is reported, not judged
    assert "identical learning-rate schedules" in vs[0].observed


def test_exp4_verdicts_fail(tmp_path):
    vs = _exp4(tmp_path, good=False)
    assert all(v.holds is False for v in vs), [(v.expectation, v.observed) for v in vs]


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
    return exp, verdicts("exp5", load_sweep(exp))


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
    for i, (layers, width, n) in enumerate(SIZES.values()):
        make_trial(exp, "optuna", curve(3.95 * n ** -0.06, iters=range(0, 1001, 250)), n_params=n,
                   overrides={"n_layer": layers, "n_head": layers, "n_embd": width})
    res = load_sweep(exp)
    assert res.trials["label"].is_unique
    vs = verdicts("exp5", res)
    assert vs[0].holds is None and "none of them is in this sweep" in vs[0].observed and "optuna ×4" in vs[0].observed
    assert by_expectation(vs, "power").holds is True
    text = analyze(exp).read_text()
    assert "Best trial" in text and (exp / "plots" / "exp5_scaling.png").is_file()


def test_optuna_exp3_correlates_regularisation_with_gap(tmp_path):
    exp = tmp_path / "exp3"
    for i, d in enumerate([0.0, 0.1, 0.2, 0.3]):
        make_trial(exp, "optuna", curve(1.6, gap=0.6 - d), overrides={"dropout": d, "weight_decay": 0.1})
    vs = verdicts("exp3", load_sweep(exp))
    assert by_expectation(vs, "more dropout").holds is True
    assert by_expectation(vs, "more weight decay").holds is None


# ----------------------------------------------------------------------------------------
# compute accounting


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


# ----------------------------------------------------------------------------------------
# plots and report


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
                    "| name | train loss | val loss | gap | training time | status |"):
        assert section in text
    assert (exp / "trials.csv").stat().st_size > 0 and (exp / "history.csv").stat().st_size > 0


def test_exp3_plots(tmp_path):
    _exp3(tmp_path, {"overfit": 0.6, "dropout": 0.2, "weight_decay": 0.4, "both": 0.08})
    exp = tmp_path / "exp3"
    text = analyze(exp).read_text()
    for name in ("exp3_train_vs_val.png", "exp3_gaps.png", "curves_overfit.png"):
        assert (exp / "plots" / name).stat().st_size > 5000 and f"plots/{name}" in text
    assert "| overfit | 5000 | 0.6000 | severe |" in text


# ----------------------------------------------------------------------------------------
# hand-made logs


NANOGPT_LOG = """\
Overriding config with config/train_shakespeare_char.py:
# train a miniature character-level shakespeare model
out_dir = 'out-shakespeare-char'
eval_interval = 250 # keep frequent because we'll overfit
max_iters = 5000
Overriding: max_iters = 1000
Overriding: out_dir = experiments/exp1_baseline
tokens per iteration will be: 16,384
number of parameters: 10.65M
step 0: train loss 4.1234, val loss 4.2345
iter 0: loss 4.1975, time 12345.67ms, mfu -100.00%
iter 10: loss 3.2544, time 45.12ms, mfu 0.03%
step 250: train loss 1.9876, val loss 2.0765
iter 250: loss 2.1234, time 45.12ms, mfu 0.03%
step 500: train loss 1.5000, val loss 1.6800
step 750: train loss 1.4100, val loss 1.6000
step 1000: train loss 1.3500, val loss 1.5600
"""

GPTCORE_LOG = """\
Overriding config with config/train_shakespeare_char.py
Overriding: max_iters=1000
Overriding: learning_rate=5e-3
number of parameters: 10.65M
step 0: train loss 4.1234, val loss 4.2345
iter 10: loss 2.1234, time 45.12ms, mfu 0.03%, 17000 tok/s
step 500: train loss 1.8000, val loss 1.9500
step 1000: train loss 1.7000, val loss 1.8800
training took 123.45 seconds
"""


def test_parse_log_exact_lines():
    p = parse_log(NANOGPT_LOG)
    assert p.evals[0] == (0, 4.1234, 4.2345) and p.evals[-1] == (1000, 1.35, 1.56)
    assert p.iters[1] == (10, 3.2544, 45.12, 0.03, p.iters[1][4]) and math.isnan(p.iters[1][4])
    assert p.iters[0][3] == -100.0
    assert p.settings["max_iters"] == 1000 and p.settings["eval_interval"] == 250
    assert p.n_params_m == 10.65 and p.tokens_per_iter == 16384 and math.isnan(p.took_s)
    q = parse_log(GPTCORE_LOG)
    assert q.iters == [(10, 2.1234, 45.12, 0.03, 17000.0)]
    assert q.took_s == 123.45 and q.settings["learning_rate"] == 5e-3
    d = parse_log("step 0: train loss 4.1, val loss 4.2\ntraining diverged at step 7: loss is nan\n")
    assert d.diverged_at == 7


def test_logs_cli(tmp_path, capsys):
    logs = tmp_path / "experiments"
    logs.mkdir()
    (logs / "exp1_baseline.log").write_text(NANOGPT_LOG)
    (logs / "exp1_large_lr.log").write_text(GPTCORE_LOG)
    (logs / "exp1_small_lr.log").write_text("step 0: train loss 4.1, val loss 4.2\n"
                                            "step 250: train loss nan, val loss nan\n")
    assert main(["--logs", *map(str, sorted(logs.glob("*.log")))]) == 0
    out = capsys.readouterr().out
    report = logs / "exp1_report" / "report.md"
    assert f"report: {report}" in out
    res = load_logs(sorted(logs.glob("*.log")))
    t = res.trials.set_index("name")
    assert t.loc["baseline", "status"] == "completed" and t.loc["baseline", "max_iters"] == 1000
    assert t.loc["baseline", "n_params"] == pytest.approx(10.65e6) and t.loc["baseline", "tokens"] == 16384000
    assert t.loc["large_lr", "time_s"] == 123.45 and t.loc["large_lr", "learning_rate"] == 5e-3
    assert t.loc["small_lr", "status"] == "diverged" and t.loc["small_lr", "diverged_at"] == 250
    text = report.read_text()
    assert "# exp1: Effect of config parameters" in text and "| baseline | 1.3500 | 1.5600 | 0.2100 | N/A |" in text
    assert "123.5s" in text


# ----------------------------------------------------------------------------------------
# the command


def test_cli_errors_without_traceback(tmp_path):
    # run as the user does, from the repository root by path: exercises the sys.path setup too
    r = subprocess.run([sys.executable, "sweeps/analyze.py", "exp1", "--results", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no experiment directory") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_direct_path_and_results(tmp_path, capsys):
    exp = tmp_path / "res" / "exp2"
    a = curve(1.8, iters=range(0, 501, 100))
    make_trial(exp, "large_batch", a, overrides={"batch_size": 64})
    make_trial(exp, "grad_accum", a, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
    assert main(["exp2", "--results", str(tmp_path / "res")]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main([str(exp)]) == 0
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
