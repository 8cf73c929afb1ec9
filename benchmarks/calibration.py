"""Calibration: every verdict's error rate, measured through the code that judges a real sweep.

For each shipped experiment, in the cpu profile's design (its runs and reference, its rungs where
early stopping may stop a run, its looks at 3, 5, 7 and 8 seeds), synthetic sweeps are judged by the
project's own code: the early stopping's cut (`strategies.halving.survivors`) and hold
(`strategies.seeds.VerdictHold`) at each rung, the looks that add seeds (`strategies.seeds.SeedSearcher`,
driven as Tune drives it), and the report's judgement of the finished sweep (`verdicts.sequential`).
Nothing here restates a rule: it makes the per-seed curves and counts what the verdicts say.

The curves: every run's val loss at each evaluation is its level, plus what its seed shares with every
run trained with that seed (correlation RHO: the same data order, often the same initialisation), plus
the run's own seed noise, plus each evaluation's own noise; a seed's final loss has std SIGMA. The
training loss sits a gap below, and each iteration's training loss scatters by ITER_NOISE (exp1's
`noisier` reads it). Under a check's null hypothesis every run it compares is alike (a threshold
check sits at its threshold, `same_curve` at its tolerance: the least favourable point for both of its
claims), so either decisive outcome is false: `false_holds` and `false_not` are their shares,
`false_decisive` the larger (promised at most 5%: a two-sided test splits its 5% between the two,
`same_curve`'s two one-sided tests give each claim its own 5%), `false_either` their sum, `mc_se`
the Monte-Carlo error. `power` is
the share of `holds` when the check's run differs by EFFECT standard deviations of a paired
difference in the direction the chapter expects. `family` is the chance, when nothing is true, that
at least one of a sweep's verdicts is falsely decisive (without and with `--family holm`). `lr_law`
is the coverage of the learning-rate law's interval of β (exp5's search: one model over size and
learning rate), where a law is judged.

    python benchmarks/calibration.py                 # everything, about 10 minutes on 2 cores
    python benchmarks/calibration.py --draws 300     # a quick look (the test runs a small version)

Writes benchmarks/out/calibration.json, and the family-wise figures the report quotes to
sweeps/verdicts/calibrated.json (not with --no-package: the test's small version).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweeps.experiment.files import load_experiment  # noqa: E402
from sweeps.experiment.specs import EQUIV_TOL, OVERFIT_GAP  # noqa: E402
from sweeps.results.trial import STOPPED  # noqa: E402
from sweeps.strategies.halving import survivors  # noqa: E402
from sweeps.strategies.plan import trial_config  # noqa: E402
from sweeps.strategies.seeds import SeedSearcher, VerdictHold  # noqa: E402
from sweeps.verdicts.family import CALIBRATED  # noqa: E402
from sweeps.verdicts.lr_law import MIN_SIZES, fit_lr_scaling  # noqa: E402
from sweeps.verdicts.sequential import design, design_of, judge_looks, sequential_verdicts  # noqa: E402
from sweeps.verdicts.stats import HOLDS, NOT  # noqa: E402
from sweeps.verdicts.verdict import Runs  # noqa: E402

PROFILE = "cpu"
SIGMA, RHO = 0.015, 0.5  # a seed's final val loss: its std, and its correlation with another run's same seed
EVAL_NOISE = 0.002  # one evaluation's own noise
ITER_NOISE = 0.05  # one iteration's training loss noise
LEVEL, GAP = 2.0, OVERFIT_GAP  # every run's loss at the end, and its gap (exp3's `overfits` sits at its threshold)
EFFECT = 1.5  # the power effect, in standard deviations of a paired difference of two runs' final losses
PAIRED_SD = SIGMA * math.sqrt(2 * (1 - RHO))
SEEDS = tuple(range(1337, 1345))
MC_SE = 0.0035  # the most Monte-Carlo error a false-decisive rate may carry


# ------------------------------------------------------------------------------------------------
# the world: what each run's curves are


@dataclass
class World:
    """One scenario of an experiment: each run's shift of its final loss, of its gap, of its steps' rises, and its
    per-iteration noise; `flat` curves (no fall) or the usual fall to LEVEL."""

    shift: dict[str, float] = field(default_factory=dict)
    gap: dict[str, float] = field(default_factory=dict)
    iter_noise: dict[str, float] = field(default_factory=dict)
    bump: dict[str, float] = field(default_factory=dict)  # a rise of the mean at the middle evaluation
    flat: bool = False
    same: tuple[str, str] | None = None  # exp2: the second run is the first, plus a difference at one evaluation
    same_diff: float = 0.0  # that difference's mean (the tolerance: the null; 0: equivalent)
    sizes: dict[str, float] = field(default_factory=dict)  # exp5: each size's loss shift
    cost: dict[str, float] = field(default_factory=dict)  # exp5: each size's time and memory, relative


def base_curve(steps: np.ndarray, max_iters: int, flat: bool) -> np.ndarray:
    """The common shape of every curve: a fall to LEVEL (or flat at LEVEL)."""
    if flat:
        return np.full(len(steps), LEVEL)
    return LEVEL + 2.0 * np.exp(-steps / (max_iters / 4)) - 2.0 * math.exp(-4)


@dataclass
class Draw:
    """One synthetic sweep's data: per (run, seed) its evaluation steps, val and train losses, and its
    per-iteration training losses."""

    steps: dict[str, np.ndarray]
    val: dict[tuple[str, int], np.ndarray]
    train: dict[tuple[str, int], np.ndarray]
    iters: dict[tuple[str, int], np.ndarray]
    cost: dict[tuple[str, int], float]


def make_draw(runs: list[dict], world: World, rng: np.random.Generator, with_iters: bool) -> Draw:
    shared = {s: rng.normal(0, SIGMA * math.sqrt(RHO)) for s in SEEDS}
    own_sd = SIGMA * math.sqrt(1 - RHO)
    steps, val, train, iters, cost = {}, {}, {}, {}, {}
    for r in runs:
        name, top, every = r["name"], r["max_iters"], r["eval_interval"]
        st = np.arange(0, top + 1, every, dtype=float)
        steps[name] = st
        base = base_curve(st, top, world.flat)
        if world.bump.get(name):
            base = base + world.bump[name] * (np.arange(len(st)) == len(st) // 2)
        for s in SEEDS:
            noise = shared[s] + rng.normal(0, own_sd) + rng.normal(0, EVAL_NOISE, len(st))
            if world.same is not None and name == world.same[1]:  # exp2: the other run's curve, one step apart
                v = val[world.same[0], s].copy()
                v[-1] += world.same_diff + rng.normal(0, EQUIV_TOL / 10)
            else:
                v = base + world.shift.get(name, 0.0) + world.sizes.get(name, 0.0) + noise
            val[name, s] = v
            g = world.gap.get(name, GAP) + rng.normal(0, own_sd)
            train[name, s] = v - g
            cost[name, s] = world.cost.get(name, 1.0) * (1.0 + rng.normal(0, 0.01))
            if with_iters:
                n = int(top) + 1
                iters[name, s] = base_curve(np.arange(n, dtype=float), top, world.flat) + \
                    rng.normal(0, world.iter_noise.get(name, ITER_NOISE) * (1 + rng.normal(0, 0.1)), n)
    return Draw(steps, val, train, iters, cost)


# ------------------------------------------------------------------------------------------------
# one sweep through the design, by the project's own code


def rows_of(draw: Draw, config: dict, upto: float) -> list[dict]:
    """A trial's report rows (as the trainable reports them) up to iteration `upto`."""
    name, seed = config["name"], config["seed"]
    st = draw.steps[name]
    out = []
    for i, it in enumerate(st):
        if it > upto:
            break
        out.append({"iter": float(it), "val_loss": float(draw.val[name, seed][i]),
                    "train_loss": float(draw.train[name, seed][i]),
                    "gap": float(draw.val[name, seed][i] - draw.train[name, seed][i]),
                    "max_iters": config["max_iters"], "status": "running",
                    "n_params": float(config["n_layer"] * config["n_embd"] ** 2 * 12)})
    if out and out[-1]["iter"] >= config["max_iters"]:
        out[-1]["status"] = "completed"
    return out


def runs_of(exp, draw: Draw, trials: list[tuple[str, dict, list[dict]]], stopped: dict[str, float],
            with_iters: bool) -> Runs:
    """The finished trials as the report reads them: stopped runs' trials `stopped early`, their time and memory,
    and (exp1) their per-iteration training losses."""
    entries, iters = [], {}
    for tid, cfg, rows in trials:
        cost = draw.cost[cfg["name"], cfg["seed"]]
        entries.append((tid, {**cfg, "_status": STOPPED if cfg["name"] in stopped else None, "_time_s": cost,
                              "_mem_mb": 100 * cost}, rows))
        if with_iters:
            top = int(rows[-1]["iter"]) if rows else 0
            iters[tid] = (np.arange(top + 1, dtype=float), draw.iters[cfg["name"], cfg["seed"]][: top + 1])
    return Runs.from_reports(entries, exp.run_names, iters=iters if with_iters else None)


def sweep(exp, runs: list[dict], draw: Draw, family: str | None, with_iters: bool) -> list:
    """One sweep of the grid through the whole design; its verdicts as the report gives them."""
    seeds = exp.seeds(PROFILE)
    stopping = exp.early_stopping(PROFILE)
    top = max(r["max_iters"] for r in runs)
    how = design(seeds, stopping, top)
    first = [{**r, "seed": s} for r in runs for s in SEEDS[: seeds.least]]
    stopped: dict[str, float] = {}
    if stopping is not None:  # successive halving by run at each rung, held where a verdict is open
        hold = VerdictHold(exp, how, family)
        alive = [r["name"] for r in runs]
        for rung in stopping.rungs(top):
            entries = [(f"{c['name']}-{c['seed']}", c, rows_of(draw, c, min(rung, stopped.get(c["name"], rung))))
                       for c in first]
            scores = {n: float(np.mean([draw.val[n, s][list(draw.steps[n]).index(rung)] for s in SEEDS[:seeds.least]]))
                      for n in alive}
            keep = survivors(scores, stopping.reduction_factor, {exp.reference} if exp.reference else set())
            below = set(alive) - keep
            if below:
                judged = hold(rung, entries)
                keep |= {g for g in below if judged.get(g, {}).get("open")}
            for g in set(alive) - keep:
                stopped[g] = rung
            alive = [n for n in alive if n in keep]
    searcher = SeedSearcher(first, exp, seeds, design=how, family=family)
    trials, n = [], 0
    while True:  # as Tune asks it: a trial, its reports, its end; the looks add seeds where a verdict is open
        config = searcher.suggest(f"t{n:03d}")
        if config is None or config == SeedSearcher.FINISHED:
            break
        tid = f"t{n:03d}"
        n += 1
        rows = rows_of(draw, config, stopped.get(config["name"], math.inf))
        for row in rows:
            searcher.on_trial_result(tid, row)
        searcher.on_trial_complete(tid, rows[-1] if rows else None)
        trials.append((tid, config, rows))
    runs_done = runs_of(exp, draw, trials, stopped, with_iters)
    info = {"seed_range": {"min": seeds.least, "max": seeds.most, "step": seeds.step}, "search": "grid",
            "family": family, "scheduler": {"grace_period": stopping.grace_period,
                                            "reduction_factor": stopping.reduction_factor} if stopping else None}
    judged = judge_looks(exp, runs_done, design_of(info, runs_done), family)
    sequential_verdicts(judged)  # what the report does with them (words only)
    return [[v.outcome for v in j.verdicts] for j in judged], len(trials)


# ------------------------------------------------------------------------------------------------
# the scenarios of each experiment


@dataclass
class Scenario:
    """A world for one experiment, and what its verdicts mean there: `null` checks (by index in the file's
    verdicts, and the part of a multi-verdict check) whose decisive outcomes are false; `power` checks whose
    `holds` is right."""

    name: str
    world: World
    null: list[tuple[int, int]] = field(default_factory=list)
    power: list[tuple[int, int]] = field(default_factory=list)
    family: bool = False  # every decisive outcome of `null` counts toward the family's rate


def scenarios(exp) -> list[Scenario]:
    names = exp.run_names
    checks = [v.check for v in exp.verdicts]
    e = EFFECT * PAIRED_SD
    if exp.name == "exp1":
        every = [(i, 0) for i in range(len(checks))]
        power = World(shift={"large_lr": e, "small_lr": e, "large_model": -e},
                      iter_noise={"small_batch": ITER_NOISE * 1.5})
        # falls_steadily: a fall of EFFECT standard deviations of a seed's own change
        power.flat = False
        return [Scenario("null", World(flat=True), null=every, family=True), Scenario("effect", power, power=every)]
    if exp.name == "exp2":
        pair = (exp.reference, next(n for n in names if n != exp.reference))
        return [Scenario("null", World(same=pair, same_diff=EQUIV_TOL), null=[(0, 0)], family=True),
                Scenario("effect", World(same=pair, same_diff=0.0), power=[(0, 0)])]
    if exp.name == "exp3":
        every = [(i, 0) for i in range(len(checks))]
        gaps = {n: GAP - e for n in names if n != exp.reference}
        gaps[exp.reference] = GAP + e
        return [Scenario("null", World(), null=every, family=True), Scenario("effect", World(gap=gaps), power=every)]
    if exp.name == "exp4":
        every = [(i, 0) for i in range(len(checks))]
        # the effects are at the end (lower_at_end, lowest); lower_at_start reads the first evaluation
        shift = {"decay_only": -e, "full_schedule": -2 * e}
        return [Scenario("null", World(), null=every, family=True), Scenario("effect", World(shift=shift),
                                                                             power=[(2, 0), (4, 0)])]
    if exp.name == "exp5":
        # the parts of `scaling`: 0 each larger lower, 1 α > 0, 2 the drop per 10×, 3 time, 4 memory
        flat = {n: 0.0 for n in names}
        size = {r["name"]: math.log10(r["n_layer"] * r["n_embd"] ** 2 * 12) for r in grid_runs(exp)}
        decade = {n: -0.1 * (size[n] - size[names[0]]) for n in names}  # the drop per 10× at its accepted edge
        steps = {n: -e * i for i, n in enumerate(names)}
        grow = {n: 1.0 + 0.05 * i for i, n in enumerate(names)}
        return [Scenario("null", World(sizes=flat), null=[(0, 0), (0, 1), (0, 3), (0, 4)], family=True),
                Scenario("decade at 0.1", World(sizes=decade), null=[(0, 2)]),
                Scenario("effect", World(sizes=steps, cost=grow), power=[(0, 0), (0, 1), (0, 3), (0, 4)])]
    raise ValueError(exp.name)


def grid_runs(exp) -> list[dict]:
    return [trial_config(r, exp) for r in exp.grid_runs(PROFILE)]


def batch(args: tuple) -> list:
    """Draws of one scenario, in a worker: per draw, each verdict's outcome (by index in the report's list), and
    the trials the design trained."""
    exp_name, scenario_name, family, seed, n = args
    exp = load_experiment(exp_name)
    runs = grid_runs(exp)
    sc = next(s for s in scenarios(exp) if s.name == scenario_name)
    rng = np.random.default_rng(seed)
    with_iters = "noisier" in [v.check for v in exp.verdicts]
    return [sweep(exp, runs, make_draw(runs, sc.world, rng, with_iters), family, with_iters) for _ in range(n)]


def outcomes_by_check(draws: list) -> dict[tuple[int, int], list[str]]:
    """Each (verdict spec, part) of the file (a check may give several verdicts): its outcome in every draw."""
    out: dict[tuple[int, int], list[str]] = {}
    for per_spec, _ in draws:
        for spec, outcomes in enumerate(per_spec):
            for part, outcome in enumerate(outcomes):
                out.setdefault((spec, part), []).append(outcome)
    return out


def rate(xs: list[bool]) -> tuple[float, float]:
    p = float(np.mean(xs)) if xs else math.nan
    return p, math.sqrt(p * (1 - p) / len(xs)) if xs else math.nan


# ------------------------------------------------------------------------------------------------
# exp5's learning-rate law


def lr_world(beta: float, rng: np.random.Generator, exp) -> pd.DataFrame:
    """One search of exp5's cpu profile: NUM trials, each a size drawn from its choices and a learning rate drawn
    log-uniformly from its range, its val loss on a bowl in log learning rate whose bottom falls as N^(−beta)."""
    space = exp.space(PROFILE)
    shapes = [tuple(int(x) for x in s.split("/")) for s in space["shape"].args]
    lo, hi = space["learning_rate"].args
    params = {f"{a}/{b}/{c}": 12.0 * a * c ** 2 for a, b, c in shapes}
    n0 = float(np.exp(np.mean(np.log(list(params.values())))))
    rows = []
    for _ in range(exp.optuna_samples):
        label = list(params)[rng.integers(len(params))]
        n = params[label]
        x = rng.uniform(math.log10(lo), math.log10(hi))
        best = math.log10(math.sqrt(lo * hi)) - beta * math.log10(n / n0)
        loss = 2.0 - 0.2 * math.log10(n / n0) + 0.3 * (x - best) ** 2 + rng.normal(0, SIGMA)
        rows.append({"label": label, "params": n, "lr": 10 ** x, "loss": loss})
    return pd.DataFrame(rows)


def lr_batch(args: tuple) -> list:
    beta, seed, n = args
    exp = load_experiment("exp5")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        data = lr_world(beta, rng, exp)
        fit = fit_lr_scaling(data, 800.0)
        if fit is None or fit.bracketed < MIN_SIZES:
            out.append(None)
            continue
        ci = fit.interval()
        out.append(None if ci is None else (ci[0] <= beta <= ci[1], ci[0] > 0 or ci[1] < 0))
    return out


# ------------------------------------------------------------------------------------------------


def run_parallel(fn, jobs: list, workers: int) -> list:
    if workers <= 1:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs))


def draws_of(name: str, sc: Scenario, fam: str | None, least: int, most: int, workers: int, chunk: int = 50) -> list:
    """Sweeps of one scenario, in rounds, until each null check's false-decisive rate has a Monte-Carlo error of at
    most MC_SE (at least `least` sweeps, at most `most`)."""
    draws: list = []
    k = 0
    while len(draws) < most:
        n = max(least - len(draws), 500) if draws else least
        n = min(n, most - len(draws))
        base = zlib.crc32(f"{name}/{sc.name}/{fam}".encode())  # the same draws in every process
        jobs = [(name, sc.name, fam, (base + 7919 * (k + i)) % 2**31, min(chunk, n - i)) for i in range(0, n, chunk)]
        k += len(jobs)
        draws += [d for part in run_parallel(batch, jobs, workers) for d in part]
        by = outcomes_by_check(draws)
        if all(rate([o in (HOLDS, NOT) for o in by.get(key, [])])[1] <= MC_SE for key in sc.null):
            break
    return draws


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=4000, help="the most null sweeps per scenario (fewer where the rates "
                                                          "reach their Monte-Carlo error sooner)")
    p.add_argument("--least", type=int, default=1500, help="the fewest null sweeps per scenario")
    p.add_argument("--power-draws", type=int, default=600, help="sweeps of each scenario with effects")
    p.add_argument("--lr-draws", type=int, default=1500, help="searches per β for the learning-rate law")
    p.add_argument("--experiments", default="exp1,exp2,exp3,exp4,exp5")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "calibration.json"))
    p.add_argument("--no-package", dest="package", action="store_false",
                   help=f"do not write the family-wise figures the report quotes ({CALIBRATED.relative_to(REPO)})")
    a = p.parse_args()
    t0 = time.time()
    checks, family, lr = [], [], []
    least = min(a.least, a.draws)
    for name in a.experiments.split(","):
        exp = load_experiment(name)
        for sc in scenarios(exp):
            for fam in ([None, "holm"] if sc.family else [None]):
                if sc.null:
                    draws = draws_of(name, sc, fam, least if fam is None else least // 2,
                                     a.draws if fam is None else least // 2, a.workers)
                else:
                    draws = draws_of(name, sc, fam, a.power_draws, a.power_draws, a.workers)
                by = outcomes_by_check(draws)
                trained = float(np.mean([d[1] for d in draws]))
                if fam is None:
                    for key in sc.null:
                        got = by.get(key, [])
                        (fh, fh_se), (fn, fn_se) = rate([o == HOLDS for o in got]), rate([o == NOT for o in got])
                        checks.append({"experiment": name, "check": _label(exp, key), "scenario": sc.name,
                                       "false_holds": fh, "false_not": fn, "mc_se": max(fh_se, fn_se),
                                       "false_decisive": max(fh, fn), "false_either": fh + fn,
                                       "draws": len(got), "trials": trained})
                    for key in sc.power:
                        p_, se = rate([o == HOLDS for o in by.get(key, [])])
                        row = next((c for c in checks if c["experiment"] == name and c["check"] == _label(exp, key)),
                                   None)
                        if row is not None:
                            row.update(power=p_, power_se=se, effect=f"{EFFECT} sd of a paired difference")
                if sc.family:
                    any_false = [any(o in (HOLDS, NOT) for key in sc.null for o in [by[key][i]])
                                 for i in range(len(draws))]
                    p_, se = rate(any_false)
                    seeds = exp.seeds(PROFILE)
                    family.append({"experiment": name, "family": fam or "none", "verdicts": len(sc.null),
                                   "seeds": f"{seeds.least}" if seeds.fixed else f"{seeds.least}..{seeds.most}",
                                   "any_false_decisive": p_, "mc_se": se, "draws": len(draws)})
                print(f"[{time.time() - t0:5.0f}s] {name} {sc.name}{' holm' if fam else ''}: {len(draws)} sweeps, "
                      f"{trained:.1f} trials each", flush=True)
    chunk = 50
    for beta in (0.0, 0.3, 0.5):
        jobs = [(beta, 1000 + int(beta * 100) + k, min(chunk, a.lr_draws - k)) for k in range(0, a.lr_draws, chunk)]
        got = [g for part in run_parallel(lr_batch, jobs, a.workers) for g in part]
        judged = [g for g in got if g is not None]
        cov, se = rate([g[0] for g in judged])
        lr.append({"beta": beta, "coverage": cov, "mc_se": se, "judged": len(judged), "searches": len(got),
                   "decisive": float(np.mean([g[1] for g in judged])) if judged else math.nan})
        print(f"[{time.time() - t0:5.0f}s] lr law at β = {beta}: {len(got)} searches", flush=True)
    out = {"checks": checks, "family": family, "lr_law": lr,
           "settings": {"profile": PROFILE, "sigma": SIGMA, "rho": RHO, "eval_noise": EVAL_NOISE,
                        "effect": EFFECT, "draws": a.draws, "lr_draws": a.lr_draws, "seconds": time.time() - t0}}
    _print(out)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    if a.package:  # the family-wise figures the report quotes (sweeps/verdicts/family.py)
        CALIBRATED.write_text(json.dumps({"family": family, "settings": out["settings"]}, indent=2) + "\n")
    bad = [c for c in checks if not c["false_decisive"] <= 0.05 + 2 * c["mc_se"]]
    bad += [f for f in family if f["family"] == "holm" and not f["any_false_decisive"] <= 0.05 + 2 * f["mc_se"]]
    bad += [x for x in lr if not x["coverage"] >= 0.90]
    print(f"wrote {a.out} ({time.time() - t0:.0f}s); " + ("every rate within its promise" if not bad else
                                                          f"{len(bad)} outside their promise"))
    return 0 if not bad else 1


def _label(exp, key: tuple[int, int]) -> str:
    spec = exp.verdicts[key[0]]
    runs = "/".join(filter(None, (spec.run, spec.against)))
    part = f"#{key[1]}" if spec.check == "scaling" else ""
    return f"{spec.check}{part}" + (f" ({runs})" if runs else "")


def _print(out: dict) -> None:
    from sweeps.report.tables import text_table

    print(text_table(["experiment", "check", "false holds", "false not", "± mc", "power", "trials"],
                     [[c["experiment"], c["check"], f"{c['false_holds']:.4f}", f"{c['false_not']:.4f}",
                       f"{c['mc_se']:.4f}",
                       f"{c['power']:.3f}" if "power" in c else "–", f"{c['trials']:.1f}"] for c in out["checks"]]))
    print(text_table(["experiment", "family", "verdicts", "any false decisive", "± mc"],
                     [[f["experiment"], f["family"], f["verdicts"], f"{f['any_false_decisive']:.4f}",
                       f"{f['mc_se']:.4f}"] for f in out["family"]]))
    print(text_table(["β", "coverage", "± mc", "judged of searches", "decisive"],
                     [[x["beta"], f"{x['coverage']:.3f}", f"{x['mc_se']:.3f}", f"{x['judged']}/{x['searches']}",
                       f"{x['decisive']:.3f}"] for x in out["lr_law"]]))


if __name__ == "__main__":
    sys.exit(main())
