"""sweeps/analysis/scaling.py: both laws recover known exponents, and the bootstrap's intervals cover the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweeps.verdicts.scaling import fit_chinchilla, fit_power, fit_scaling

N = np.array([5e5, 2e6, 8e6, 3e7, 1e8, 4e8])


@pytest.mark.parametrize("alpha", [0.076, 0.3])
def test_the_power_law_recovers_its_exponent(alpha):
    a, got = fit_power(N, 6.0 * N ** -alpha)
    assert got == pytest.approx(alpha, abs=1e-9) and a == pytest.approx(6.0)


@pytest.mark.parametrize("e, big_a, alpha", [(0.9, 6.0, 0.12), (1.5, 30.0, 0.3), (0.0, 4.0, 0.05)])
def test_the_chinchilla_form_recovers_e_and_alpha(e, big_a, alpha):
    got_e, got_a, got_alpha = fit_chinchilla(N, e + big_a * N ** -alpha)
    assert got_alpha == pytest.approx(alpha, abs=0.01) and got_e == pytest.approx(e, abs=0.02)


def test_one_bad_seed_does_not_pull_the_fit():
    y = 0.9 + 6.0 * N ** -0.12
    noisy = y.copy()
    noisy[2] += 0.3  # a seed that went wrong
    _, _, alpha = fit_chinchilla(np.concatenate([N, N, N]), np.concatenate([y, y, noisy]))
    assert alpha == pytest.approx(0.12, abs=0.02)


def points(seeds: int, sigma: float = 0.01, e: float = 1.0, big_a: float = 2.0, alpha: float = 0.15) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    sizes = [4e5, 3.2e6, 1.07e7, 2.5e7]
    rows = [{"label": f"s{i}", "params": n, "loss": e + big_a * n ** -alpha + rng.normal(0, sigma)}
            for i, n in enumerate(sizes) for _ in range(seeds)]
    return pd.DataFrame(rows)


def test_bootstrap_intervals_cover_the_truth_and_the_next_size():
    fit = fit_scaling(points(seeds=4), step=3000)
    j = fit.to_json()
    lo, hi = j["chinchilla"]["alpha_ci"]
    assert lo < 0.15 < hi and lo > 0
    lo, hi = j["chinchilla"]["E_ci"]
    assert lo < 1.0 < hi
    truth = 1.0 + 2.0 * j["next_size"]["params"] ** -0.15
    lo, hi = j["next_size"]["interval"]
    assert lo - 0.02 < truth < hi + 0.02  # the interval (plus the seed noise) covers the law's value
    assert j["step"] == 3000 and [s["n_seeds"] for s in j["sizes"]] == [4] * 4


def test_one_seed_per_size_has_a_fit_and_no_interval():
    fit = fit_scaling(points(seeds=1), step=800)
    j = fit.to_json()
    assert j["power_law"]["alpha_ci"] is None and j["chinchilla"]["E_ci"] is None
    assert j["next_size"]["interval"] is None and j["power_law"]["alpha"] > 0


def test_fewer_than_two_sizes_is_no_fit():
    assert fit_scaling(pd.DataFrame({"label": ["a"], "params": [1e6], "loss": [2.0]}), step=10) is None


def test_the_same_points_give_the_same_intervals():
    a = fit_scaling(points(seeds=3), step=100, n_boot=200).to_json()
    b = fit_scaling(points(seeds=3).sample(frac=1, random_state=3).sort_values("params"), step=100,
                    n_boot=200).to_json()
    assert a["chinchilla"]["alpha_ci"] == pytest.approx(b["chinchilla"]["alpha_ci"], abs=0.02)
