"""What the ordered search costs: wall time and the best value found, against the asynchronous search.

The ordered design (`--search-batch B`, sweeps/strategies/study.py) asks trial i only once trials
0 … i − B have ended, and tells the sampler only those: a slot can wait for a slow earlier trial,
and the sampler learns of each trial later than it could. Two parts, each side by side in one run:

- `wall`: the command users run, `python -m sweeps exp1 --profile smoke --search optuna
  --num-samples 24 --sampler tpe --confirm 0 --max-concurrent 2`, with `--search-batch 4` (the
  default) and `--search-batch 0` (asynchronous), alternately, ROUNDS each (fresh seeds per
  round): median wall time and the ratio, and each sweep's best val loss;
- `best`: the sampler's lag alone, over many sampler seeds: the project's StudySearcher driven in
  process on exp1's cpu search space, 2 trials at a time whose durations scale with their size
  and batch (a lognormal spread), on a loss surface shaped like exp1's (a bowl in log learning
  rate, better with larger batches and models, seed noise 0.01), TPE; the best value after N
  trials, ordered (B = 4) and asynchronous, paired by sampler seed, and the simulated wall time
  (the slots the ordered design leaves idle).

    python benchmarks/search_order.py                 # both parts, about 15 minutes on 2 cores
    python benchmarks/search_order.py --part best     # the in-process part only, about a minute

Writes benchmarks/out/search_order.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine, table, write_json

from sweeps.experiment.files import load_experiment
from sweeps.strategies.study import StudySearcher

# ------------------------------------------------------------------------------------------------
# best: the sampler's lag, in process


def surface(c: dict, rng: random.Random) -> float:
    """exp1's val loss, roughly: a bowl in log10 learning rate around 1.5e-3, larger batches and models lower."""
    shape = {"6/8/192": 0.0, "4/4/128": 0.02, "2/4/64": 0.06}[c["shape"]]
    return (1.45 + 0.25 * (math.log10(c["learning_rate"]) - math.log10(1.5e-3)) ** 2
            + 0.03 * math.log2(12 / c["batch_size"]) + shape + rng.gauss(0, 0.01))


def duration(c: dict, rng: random.Random) -> float:
    width = int(c["shape"].split("/")[2])
    return (width / 128) ** 2 * c["batch_size"] / 6 * math.exp(rng.gauss(0, 0.3))


def simulate(seed: int, batch: int, n: int, concurrency: int, tmp: Path) -> dict:
    """One search at `concurrency`: the best value after each trial (by trial number) and the makespan."""
    space = load_experiment("exp1").space("cpu")
    s = StudySearcher(space, str(tmp / f"{seed}-{batch}.journal"), "exp1", n, sampler="tpe", seed=seed, batch=batch)
    rng = random.Random(seed * 1000 + batch)
    noise = random.Random(seed)  # the loss of trial k: the same draw whatever the order it ends in
    values: dict[int, float] = {}
    running: list[tuple[float, str, int, dict]] = []  # (end time, Ray id, number, config)
    now, asked = 0.0, 0
    while asked < n or running:
        while len(running) < concurrency and asked < n:
            c = s.suggest(f"r{asked}")
            if c is None:
                break
            running.append((now + duration(c, rng), f"r{asked}", asked, c))
            asked += 1
        running.sort(key=lambda r: r[0])
        now, tid, number, c = running.pop(0)
        noise.seed(seed * 7919 + number)
        values[number] = surface(c, noise)
        s.on_trial_complete(tid, {"iter": 1, "val_loss": values[number], "status": "completed"})
    best, out = math.inf, []
    for k in range(n):
        best = min(best, values[k])
        out.append(best)
    return {"best": out, "wall": now}


def part_best(seeds: int, n: int, checkpoints: list[int]) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            o = simulate(seed, 4, n, 2, Path(tmp))
            a = simulate(seed, 0, n, 2, Path(tmp))
            rows.append({"seed": seed, "ordered": o, "async": a})
    out = {"seeds": seeds, "trials": n, "concurrency": 2, "batch": 4, "at": {}}
    for k in checkpoints:
        diffs = [r["ordered"]["best"][k - 1] - r["async"]["best"][k - 1] for r in rows]
        m, se = statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["at"][k] = {"ordered": statistics.mean(r["ordered"]["best"][k - 1] for r in rows),
                        "async": statistics.mean(r["async"]["best"][k - 1] for r in rows),
                        "difference": m, "se": se}
    walls = [r["ordered"]["wall"] / r["async"]["wall"] for r in rows]
    out["simulated_wall_ratio"] = {"median": statistics.median(walls), "max": max(walls)}
    return out


# ------------------------------------------------------------------------------------------------
# wall: the command users run


def one_sweep(batch: int, seed: int, tmp: Path, samples: int) -> dict:
    storage = tmp / f"b{batch}-s{seed}"
    cmd = [sys.executable, "-m", "sweeps", "exp1", "--profile", "smoke", "--search", "optuna", "--num-samples",
           str(samples), "--sampler", "tpe", "--seed", str(seed), "--confirm", "0", "--max-concurrent", "2",
           "--search-batch", str(batch), "--storage", str(storage)]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"the sweep failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    with open(storage / "exp1" / "trials.csv", newline="") as f:  # quoted fields (a sample) hold commas
        vals = [float(r["final_val_loss"] or "nan") for r in csv.DictReader(f)]
    finite = [v for v in vals if math.isfinite(v)]
    return {"batch": batch, "seed": seed, "wall_s": wall, "best_val": min(finite) if finite else math.nan}


def part_wall(rounds: int, samples: int) -> dict:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for batch in ((4, 0) if r % 2 == 0 else (0, 4)):  # alternate which goes first
                runs.append(one_sweep(batch, 100 + r, Path(tmp), samples))
                print(f"  round {r + 1}: --search-batch {batch}: {runs[-1]['wall_s']:.1f}s, best "
                      f"{runs[-1]['best_val']:.4f}", flush=True)
    ordered = [x["wall_s"] for x in runs if x["batch"] == 4]
    asynchronous = [x["wall_s"] for x in runs if x["batch"] == 0]
    return {"runs": runs, "ordered_median_s": statistics.median(ordered), "async_median_s":
            statistics.median(asynchronous), "ratio": statistics.median(ordered) / statistics.median(asynchronous)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("both", "best", "wall"), default="both")
    p.add_argument("--seeds", type=int, default=40, help="sampler seeds of the in-process part")
    p.add_argument("--trials", type=int, default=48, help="trials per in-process search")
    p.add_argument("--rounds", type=int, default=3, help="sweeps of each kind in the wall part")
    p.add_argument("--samples", type=int, default=24, help="trials per sweep in the wall part")
    a = p.parse_args()
    out: dict = {}
    if a.part in ("both", "best"):
        t0 = time.perf_counter()
        b = out["best"] = part_best(a.seeds, a.trials, [k for k in (16, 24, 32, 48) if k <= a.trials])
        print(f"best value after N trials, TPE at concurrency 2, {a.seeds} sampler seeds "
              f"({time.perf_counter() - t0:.0f}s):")
        print(table([[k, f"{v['ordered']:.4f}", f"{v['async']:.4f}", f"{v['difference']:+.4f}", f"{v['se']:.4f}"]
                     for k, v in b["at"].items()],
                    ["trials", "ordered (B=4)", "asynchronous", "ordered − async", "± se"]))
        print(f"simulated wall time, ordered / asynchronous: median {b['simulated_wall_ratio']['median']:.3f}, "
              f"worst {b['simulated_wall_ratio']['max']:.3f}")
    if a.part in ("both", "wall"):
        print(f"wall time: exp1 smoke, {a.samples} TPE trials, --max-concurrent 2, {a.rounds} round(s) each:")
        w = out["wall"] = part_wall(a.rounds, a.samples)
        print(f"ordered {w['ordered_median_s']:.1f}s, asynchronous {w['async_median_s']:.1f}s (medians): "
              f"ratio {w['ratio']:.3f}")
    write_json("search_order", out)
    print(json.dumps(machine()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
