"""sweeps/verdicts/checks.py and lr_law.py: crafted runs over seeds for which each expectation holds, fails, or
cannot be told."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from results_factory import by_expectation, curve, judge, make_run, make_trial, verdicts

from sweeps.command import pipeline
from sweeps.command.analyze import analyze
from sweeps.experiment.files import load_experiment
from sweeps.report.summary import summary_text
from sweeps.results.load import load_sweep


def outcomes(vs) -> list[tuple[str, str]]:
    return [(v.expectation, v.outcome, v.observed) for v in vs]


def _exp1(tmp_path: Path, good: bool, seeds=(1337, 1338, 1339)) -> list:
    exp = tmp_path / "exp1"
    base = curve(1.6)
    if not good:
        base = [(it, tr + (0.3 if it == 750 else 0), va + (0.3 if it == 750 else 0)) for it, tr, va in base]
    make_run(exp, "baseline", base, seeds=seeds, per_iter_sigma=0.02, per_iter_final=1.6)
    lr = curve(1.9) if good else curve(1.5)
    if good:  # oscillation: val goes back up at step 500
        lr[2] = (500, lr[1][1] + 0.2, lr[1][2] + 0.2)
    make_run(exp, "large_lr", lr, seeds=seeds, overrides={"learning_rate": 5e-3})
    make_run(exp, "small_lr", curve(2.3 if good else 1.5, k=1.0 if good else 6.0), seeds=seeds,
             overrides={"learning_rate": 1e-4})
    make_run(exp, "small_batch", curve(1.7), seeds=seeds, overrides={"batch_size": 1},
             per_iter_sigma=0.1 if good else 0.005, per_iter_final=1.7)
    make_run(exp, "large_model", curve(1.4 if good else 1.8), seeds=seeds,
             overrides={"n_layer": 8, "n_embd": 512, "n_head": 8})
    return judge("exp1", exp)


def test_exp1_verdicts_hold(tmp_path):
    vs = _exp1(tmp_path, good=True)
    assert len(vs) == 5 and all(v.outcome == "holds" for v in vs), outcomes(vs)
    lr = by_expectation(vs, "large learning rate")
    assert "+0.2000 at step 500 (beyond the tolerance and the noise)" in lr.observed
    noise = by_expectation(vs, "small batch")
    assert noise.effect > 0 and noise.n_seeds == {"small_batch": 3, "baseline": 3} and noise.step == 1000
    # every verdict is a measurement: its effect, the effect's standard error, seeds per side, the step
    for v in vs:
        assert v.effect is not None and v.stderr is not None and v.stderr > 0 and v.step is not None
        assert all(n == 3 for n in v.n_seeds.values())


def test_exp1_verdicts_fail(tmp_path):
    vs = _exp1(tmp_path, good=False)
    assert all(v.outcome == "does not hold" for v in vs), outcomes(vs)


def test_one_seed_is_never_decisive(tmp_path):
    vs = _exp1(tmp_path, good=True, seeds=(1337,))
    assert all(v.outcome == "cannot tell" for v in vs), outcomes(vs)
    assert "one seed" in by_expectation(vs, "large_model").observed


def test_a_difference_inside_the_seed_noise_is_within_noise(tmp_path):
    exp = tmp_path / "exp1"
    make_run(exp, "baseline", curve(1.60), sigma=0.03)
    # 0.01 lower on average, against seeds that scatter by 0.03: the seeds cannot tell
    make_run(exp, "large_model", curve(1.59), seeds=(1340, 1341, 1342), sigma=0.03,
             overrides={"n_layer": 8, "n_embd": 512, "n_head": 8})
    v = by_expectation(judge("exp1", exp), "large_model")
    assert v.outcome == "within noise", v.observed
    assert abs(v.effect) < 2 * v.stderr * 2.8 and v.p_value > 0.05


def test_a_within_noise_verdict_gives_the_interval_of_its_effect(tmp_path):
    exp = tmp_path / "exp1"
    make_run(exp, "baseline", curve(1.60), sigma=0.03)
    make_run(exp, "large_model", curve(1.59), seeds=(1340, 1341, 1342), sigma=0.03,
             overrides={"n_layer": 8, "n_embd": 512, "n_head": 8})
    make_run(exp, "small_lr", curve(2.3, k=1.0), overrides={"learning_rate": 1e-4})
    analyze(exp)
    vs = json.loads((exp / "verdicts.json").read_text())
    noise = next(v for v in vs if "large_model" in v["expectation"])
    lo, hi = noise["interval"]
    assert noise["outcome"] == "within noise" and lo < 0 < hi and lo < noise["effect"] < hi
    # Welch: effect ± t(0.975, Welch–Satterthwaite df) · se, wider than ± 1.96 se with three seeds a side
    assert hi - noise["effect"] == pytest.approx(noise["effect"] - lo) and hi - lo > 2 * 1.96 * noise["stderr"]
    decisive = next(v for v in vs if "small learning rate" in v["expectation"])
    assert decisive["outcome"] == "holds" and decisive["interval"][0] > 0
    text = (exp / "report.md").read_text()
    words = f"the effect lies in [{lo:+.4f}, {hi:+.4f}]".replace("-", "−")
    assert f"**within noise**: {words}" in text
    summary = summary_text(pipeline.judge(load_sweep(exp), load_experiment("exp1")))
    assert f"within noise: {words}" in summary


def test_a_run_stopped_early_is_judged_where_both_sides_reached(tmp_path):
    exp = tmp_path / "exp1"
    make_run(exp, "baseline", curve(1.6))
    make_run(exp, "small_lr", curve(2.3, k=1.0)[:2], max_iters=1000, overrides={"learning_rate": 1e-4})
    v = by_expectation(judge("exp1", exp), "small learning rate")
    assert v.step == 250 and "at step 250" in v.observed and v.outcome == "holds"


def test_without_per_iteration_losses_noise_cannot_be_told(tmp_path):
    exp = tmp_path / "exp1"
    make_run(exp, "baseline", curve(1.6))
    make_run(exp, "small_batch", curve(1.7), overrides={"batch_size": 1})
    v = by_expectation(judge("exp1", exp), "small batch")
    assert v.outcome == "cannot tell" and "lower log_interval" in v.observed


@pytest.mark.parametrize("delta,outcome", [(0.002, "holds"), (0.05, "does not hold")])
def test_exp2_equivalence(tmp_path, delta, outcome):
    exp = tmp_path / "exp2"
    a = curve(1.8, iters=range(0, 501, 100))
    b = [(it, tr + delta * (i % 2), va + delta * (i % 2)) for i, (it, tr, va) in enumerate(a)]
    # the two runs' own noise is tiny (exp2's curves agree to about 1e-6): the difference is the planted one
    make_run(exp, "large_batch", a, overrides={"batch_size": 64, "gradient_accumulation_steps": 1}, own=1e-8)
    make_run(exp, "grad_accum", b, overrides={"batch_size": 16, "gradient_accumulation_steps": 4}, own=1e-8)
    (v,) = judge("exp2", exp)
    assert v.outcome == outcome, v.observed
    assert f"max |Δ val| {delta:.6f}" in v.observed and "64×1 vs 16×4" in v.observed
    assert v.effect == pytest.approx(delta, abs=1e-6) and v.n_seeds == {"grad_accum": 3, "large_batch": 3}


def _exp3(tmp_path: Path, gaps: dict[str, float]) -> list:
    exp = tmp_path / "exp3"
    knobs = {"overfit": (0.0, 0.0), "dropout": (0.2, 0.0), "weight_decay": (0.0, 0.1), "both": (0.2, 0.1)}
    for name, gap in gaps.items():
        dropout, wd = knobs[name]
        first = 1337 + 3 * list(knobs).index(name)
        for i, seed in enumerate(range(first, first + 3)):  # each seed's gap scatters by 0.01 around the run's
            make_trial(exp, name, curve(1.6, iters=range(0, 5001, 1000), gap=gap + 0.01 * (i - 1)), seed=seed,
                       overrides={"dropout": dropout, "weight_decay": wd})
    return judge("exp3", exp)


def test_exp3_verdicts_hold(tmp_path):
    vs = _exp3(tmp_path, {"overfit": 0.6, "dropout": 0.2, "weight_decay": 0.4, "both": 0.08})
    assert len(vs) == 4 and all(v.outcome == "holds" for v in vs), outcomes(vs)
    assert "severe" in vs[0].observed and vs[0].effect == pytest.approx(0.5) and vs[3].effect == pytest.approx(-0.52)


def test_exp3_verdicts_fail(tmp_path):
    vs = _exp3(tmp_path, {"overfit": 0.05, "dropout": 0.2, "weight_decay": 0.3, "both": 0.1})
    assert all(v.outcome == "does not hold" for v in vs), outcomes(vs)


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
        make_run(exp, name, pts, overrides={"learning_rate": 1e-3, "min_lr": 1e-4, **over})
    return judge("exp4", exp)


def test_exp4_verdicts_hold(tmp_path):
    vs = _exp4(tmp_path, good=True)
    # one verdict per pair of the file (two at the start, two at the end) and the lowest of the four
    assert len(vs) == 5 and all(v.outcome == "holds" for v in vs[1:]), outcomes(vs)
    # decay_lr=False disables warmup in get_lr: that pair is reported, not judged
    assert "identical learning-rate schedules" in vs[0].observed and vs[0].outcome == "cannot tell"
    assert vs[1].step == 250 and vs[2].step == 2000


def test_exp4_verdicts_fail(tmp_path):
    vs = _exp4(tmp_path, good=False)
    assert all(v.outcome == "does not hold" for v in vs[1:]), outcomes(vs)


SIZES = {"tiny": (2, 128, 4e5), "small": (4, 256, 3.2e6), "medium": (6, 384, 1.07e7), "large": (8, 512, 2.5e7)}


@pytest.fixture
def fewer_draws(monkeypatch):
    """200 bootstrap draws instead of 1,000: the intervals these tests check are wide apart either way."""
    from sweeps.verdicts import scaling

    monkeypatch.setattr(scaling, "N_BOOT", 200)


def _exp5(tmp_path: Path, good: bool) -> tuple[Path, list]:
    exp = tmp_path / "exp5"
    for i, (name, (layers, width, n)) in enumerate(SIZES.items()):
        final = 1.0 + 2.0 * n ** -0.15  # a Chinchilla law: E = 1.0, A = 2.0, alpha = 0.15
        if not good and name == "large":
            final = 2.5
        make_run(exp, name, curve(final, iters=range(0, 3001, 500), k=12.0), sigma=0.005, own=0.001, n_params=n,
                 seeds=[1337 + k for k in range(3)],  # every size trains the same seeds, as a sweep's do
                 overrides={"n_layer": layers, "n_head": layers, "n_embd": width},
                 time_s=100.0 * 2 ** i if good else 100.0 / 2 ** i, mem_mb=500.0 * 2 ** i,
                 sample=f"ROMEO{i}:\nWhat light | through yonder window breaks? " * 5)
    return exp, judge("exp5", exp)


def test_exp5_verdicts_hold(tmp_path, fewer_draws):
    _, vs = _exp5(tmp_path, good=True)
    assert by_expectation(vs, "each larger model").outcome == "holds", outcomes(vs)
    power = by_expectation(vs, "power")
    assert power.outcome == "holds" and power.effect > 0 and "95% interval" in power.observed
    assert by_expectation(vs, "take longer").outcome == "holds"
    assert by_expectation(vs, "more memory").outcome == "holds"


def test_exp5_verdicts_fail(tmp_path, fewer_draws):
    exp, vs = _exp5(tmp_path, good=False)
    assert by_expectation(vs, "each larger model").outcome == "does not hold"
    assert by_expectation(vs, "take longer").outcome == "does not hold"
    text = analyze(exp).read_text()
    assert "## Model sizes" in text and "ROMEO0: ↵ What light \\| through" in text and "Chinchilla form" in text
    assert "400,000" in text and "500 MB" in text


def test_exp5_writes_scaling_json_with_intervals(tmp_path, fewer_draws):
    exp, _ = _exp5(tmp_path, good=True)
    analyze(exp)
    s = json.loads((exp / "scaling.json").read_text())
    assert {"a", "alpha", "alpha_ci"} <= set(s["power_law"])
    assert {"E", "A", "alpha", "alpha_ci", "E_ci"} <= set(s["chinchilla"])
    assert {"params", "predicted_loss", "interval"} <= set(s["next_size"])
    lo, hi = s["chinchilla"]["alpha_ci"]
    assert lo <= s["chinchilla"]["alpha"] <= hi and lo > 0
    assert s["next_size"]["params"] == pytest.approx(2.5e7 ** 2 / 1.07e7)
    lo, hi = s["next_size"]["interval"]
    assert lo <= s["next_size"]["predicted_loss"] <= hi < s["sizes"][-1]["mean_val_loss"]


def test_verdicts_json_is_the_reports_data(tmp_path):
    _exp1(tmp_path, good=True)
    exp = tmp_path / "exp1"
    text = analyze(exp).read_text()
    data = json.loads((exp / "verdicts.json").read_text())
    assert len(data) == 5
    for v in data:
        assert {"expectation", "outcome", "effect", "stderr", "n_seeds", "step", "observed"} <= set(v)
        assert v["outcome"] in ("holds", "does not hold", "within noise", "cannot tell")
        assert f"| {v['expectation']} | **{v['outcome']}** |" in text.replace("\\|", "|")


def test_search_without_named_runs(tmp_path):
    exp = tmp_path / "exp5"
    for i, (layers, width, n) in enumerate(SIZES.values()):
        make_trial(exp, f"t{i:03d}", curve(3.95 * n ** -0.06, iters=range(0, 1001, 250)), n_params=n, seed=1337,
                   overrides={"n_layer": layers, "n_head": layers, "n_embd": width}, trial_id=f"ab{i:03d}_{i:05d}",
                   stage="search")
    res = load_sweep(exp)
    assert res.trials["label"].is_unique
    vs = verdicts(load_experiment("exp5"), res)
    # a search is judged by the file's search verdicts, not by a line saying the grid's runs are absent
    assert not any("none of them is in this sweep" in v.observed for v in vs)
    # one trial per size: a fit, but no interval, so never decisive
    assert by_expectation(vs, "power").outcome == "cannot tell"
    text = analyze(exp).read_text()
    assert (exp / "plots" / "exp5_scaling.png").is_file() and "## Model sizes" in text


def test_a_search_fits_the_confirmed_best_of_each_size_with_intervals(tmp_path, fewer_draws):
    exp = tmp_path / "exp5"
    k = 0
    for i, (layers, width, n) in enumerate(SIZES.values()):
        over = {"n_layer": layers, "n_head": layers, "n_embd": width}
        make_trial(exp, f"t{i:03d}", curve(3.95 * n ** -0.06), n_params=n, overrides=over, stage="search",
                   trial_id=f"ab{k:03d}_{k:05d}")
        k += 1
        for seed in (1337, 1338, 1339):
            final = 3.95 * n ** -0.06 + 0.01 * (seed - 1338)
            make_trial(exp, f"confirm_t{i:03d}", curve(final), n_params=n, overrides=over, seed=seed,
                       stage="confirm", trial_id=f"ab{k:03d}_{k:05d}")
            k += 1
    for seed in (1337, 1338, 1339):  # the reference: the smallest size again, a worse learning rate
        make_trial(exp, "confirm_tiny", curve(3.0 + 0.01 * (seed - 1338)), n_params=SIZES["tiny"][2], seed=seed,
                   overrides={"n_layer": 2, "n_head": 2, "n_embd": 128}, stage="confirm", trial_id=f"ab{k:03d}_{k:05d}")
        k += 1
    vs = verdicts(load_experiment("exp5"), load_sweep(exp))
    power = by_expectation(vs, "power")
    assert power.outcome == "holds" and power.n_seeds == {"2/2/128": 3, "4/4/256": 3, "6/6/384": 3, "8/8/512": 3}
    assert power.effect == pytest.approx(0.06, abs=0.005)
    analyze(exp)
    j = json.loads((exp / "scaling.json").read_text())
    assert j["power_law"]["alpha_ci"] is not None and j["bootstrap"]["draws"] > 0
    tiny = next(z for z in j["sizes"] if z["label"] == "2/2/128")
    assert tiny["mean_val_loss"] < 3.0  # the best configuration of the size, not the reference's


def test_search_gap_trend_is_a_slope_with_its_uncertainty(tmp_path):
    exp = tmp_path / "exp3"
    for i, d in enumerate([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]):
        make_trial(exp, f"t{i:03d}", curve(1.6, gap=0.6 - d + 0.005 * (-1) ** i), trial_id=f"ab{i:03d}_{i:05d}",
                   overrides={"dropout": d, "weight_decay": 0.1}, stage="search")
    vs = judge("exp3", exp)
    v = by_expectation(vs, "more dropout")
    assert v.outcome == "holds" and v.effect == pytest.approx(-1.0, abs=0.05) and v.stderr < 0.1
    assert by_expectation(vs, "more weight decay").outcome == "cannot tell"


def _lr_search(exp: Path, beta: float, noise: float = 0.004) -> list:
    """An exp5 search whose best learning rate is 1e-3 · (N / 4e5)^(−beta): per size, seven learning rates a
    half-octave apart around the best (val loss 0.02 higher per octave²), each trial's loss off by a seed's noise
    (std `noise`), and the confirm stage's best of each size over three seeds."""
    k = 0
    rng = np.random.default_rng(5)

    def tid() -> str:
        nonlocal k
        k += 1
        return f"ab{k:03d}_{k:05d}"

    for i, (layers, width, n) in enumerate(SIZES.values()):
        over = {"n_layer": layers, "n_head": layers, "n_embd": width}
        best = 1e-3 * (n / 4e5) ** -beta
        for j, octaves in enumerate((-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)):
            final = 3.95 * n ** -0.06 + 0.02 * octaves ** 2 + rng.normal(0, noise)
            lr = {**over, "learning_rate": best * 2 ** octaves}
            make_trial(exp, f"t{i}{j}", curve(final), n_params=n, overrides=lr, stage="search", trial_id=tid())
            if octaves == 0:
                for seed in (1337, 1338, 1339):
                    make_trial(exp, f"confirm_t{i}{j}", curve(3.95 * n ** -0.06 + 0.01 * (seed - 1338)), n_params=n,
                               overrides=lr, seed=seed, stage="confirm", trial_id=tid())
    for seed in (1337, 1338, 1339):
        make_trial(exp, "confirm_tiny", curve(3.0 + 0.01 * (seed - 1338)), n_params=SIZES["tiny"][2], seed=seed,
                   overrides={"n_layer": 2, "n_head": 2, "n_embd": 128}, stage="confirm", trial_id=tid())
    return verdicts(load_experiment("exp5"), load_sweep(exp))


def test_the_best_learning_rate_falls_with_size_as_planted(tmp_path, fewer_draws):
    exp = tmp_path / "exp5"
    v = by_expectation(_lr_search(exp, 0.5), "best learning rate")
    assert v.check == "lr_scaling" and v.outcome == "holds", v.observed
    assert v.interval[0] < 0.5 < v.interval[1] and v.interval[0] > 0 and v.coverage == pytest.approx(0.95)
    # one model over every searched trial: each size's seven trials locate its best
    assert v.n_seeds == {"2/2/128": 7, "4/4/256": 7, "6/6/384": 7, "8/8/512": 7}
    analyze(exp)
    j = json.loads((exp / "scaling.json").read_text())
    lr = j["learning_rate"]
    assert lr["beta_ci"][0] < 0.5 < lr["beta_ci"][1] and lr["df"] == 28 - 7 and lr["bracketed_sizes"] == 4
    nx = lr["next_size"]
    assert nx["params"] == pytest.approx(j["next_size"]["params"])  # the loss law's next size
    assert nx["interval"][0] < 1e-3 * (nx["params"] / 4e5) ** -0.5 < nx["interval"][1]  # the planted rate
    loo = lr["leave_one_out"]
    assert len(loo["sizes"]) == 4 and all(0.5 < z["ratio"] < 2 for z in loo["sizes"])
    tiny = lr["sizes"][0]
    assert tiny["best_lr"] == pytest.approx(1e-3, rel=0.3) and tiny["bracketed"] and tiny["rates"] == 7
    text = (exp / "report.md").read_text()
    assert "### The best learning rate against size" in text and "predicted best learning rate" in text
    assert (exp / "plots" / "exp5_lr_scaling.png").is_file()


def test_a_flat_best_learning_rate_is_within_noise(tmp_path, fewer_draws):
    exp = tmp_path / "exp5"
    v = by_expectation(_lr_search(exp, 0.0), "best learning rate")
    assert v.outcome == "within noise", v.observed
    assert v.interval[0] <= 0 <= v.interval[1]
    assert "leave one size out" in v.observed


def test_a_best_rate_at_the_edge_of_the_searched_range_is_not_bracketed(tmp_path, fewer_draws):
    exp = tmp_path / "exp5"
    for i, (layers, width, n) in enumerate(SIZES.values()):
        for j, octaves in enumerate((0.0, 0.5, 1.0, 1.5)):  # every rate above the best: the bottom is not inside
            make_trial(exp, f"t{i}{j}", curve(2.0 + 0.02 * octaves ** 2 + 0.001 * ((i + j) % 3)), n_params=n,
                       stage="search", trial_id=f"ab{i}{j}_0000{i}{j}",
                       overrides={"n_layer": layers, "n_head": layers, "n_embd": width,
                                  "learning_rate": 1e-3 * 2 ** octaves})
    v = by_expectation(verdicts(load_experiment("exp5"), load_sweep(exp)), "best learning rate")
    assert v.outcome == "cannot tell" and "bracketed" in v.observed, v.observed


def test_the_best_learning_rate_needs_three_sizes(tmp_path, fewer_draws):
    exp = tmp_path / "exp5"
    for i, (layers, width, n) in enumerate(list(SIZES.values())[:2]):
        for j, lr in enumerate((1e-3, 2e-3, 4e-3)):
            make_trial(exp, f"t{i}{j}", curve(2.0 + 0.01 * j), n_params=n, stage="search",
                       trial_id=f"ab{i}{j}_0000{i}{j}",
                       overrides={"n_layer": layers, "n_head": layers, "n_embd": width, "learning_rate": lr})
    v = by_expectation(verdicts(load_experiment("exp5"), load_sweep(exp)), "best learning rate")
    assert v.outcome == "cannot tell" and "2 size(s)" in v.observed


def test_the_law_refuses_a_bottom_far_outside_the_searched_rates():
    """A fit whose bowl bottoms out decades away from every searched rate is no finding (and no overflow)."""
    from sweeps.verdicts.lr_law import fit_law

    rng = np.random.default_rng(3)
    params = np.repeat([1e5, 4e5, 1.6e6], 5)
    lr = np.tile([1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3], 3)
    loss = 2.0 - 0.1 * np.log10(lr) + rng.normal(0, 1e-4, len(lr))  # falling straight on: no bottom inside
    assert fit_law(params, lr, loss) is None


def test_the_profile_interval_of_beta_matches_the_t_interval_where_the_model_is_nearly_linear():
    from sweeps.verdicts.lr_law import fit_law
    from sweeps.verdicts.stats import t_quantile

    rng = np.random.default_rng(4)
    sizes = np.array([1e5, 4e5, 1.6e6, 6.4e6])
    rows = []
    for n in sizes:
        best = -3 - 0.3 * np.log10(n / 8e5)
        for x in best + np.linspace(-0.6, 0.6, 9):
            rows.append((n, 10 ** x, 2.0 + 0.5 * (x - best) ** 2 + rng.normal(0, 0.002)))
    p, lr, loss = map(np.array, zip(*rows))
    law = fit_law(p, lr, loss)
    lo, hi = law.beta_interval(0.05)
    half = t_quantile(0.975, law.df) * math.sqrt(law.cov[1, 1])
    assert lo < 0.3 < hi
    assert lo == pytest.approx(law.beta - half, abs=0.15 * half)
    assert hi == pytest.approx(law.beta + half, abs=0.15 * half)
    assert law.beta_p() < 1e-6
