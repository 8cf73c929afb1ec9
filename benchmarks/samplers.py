"""Optuna's samplers on experiment 1's search: best val loss after 16 and 32 samples, over several sampler seeds.

Each pass is the command users run, `python -m sweeps exp1 --search optuna --sampler S --seed K
--num-samples 32 --scheduler none --confirm 0`, so every trial trains to the full budget and the
best-so-far curve is about the sampler alone (no early stopping in between); trials run 2 at
a time. The study each pass leaves (`optuna.journal`) gives each trial's value by its number:
"best after 16" is the lowest val loss among trials 0-15. `--sampler auto`'s rule
(`sweeps.sampling.choose_sampler`) was set from these figures (benchmarks/README.md).

    python benchmarks/samplers.py                   # smoke profile: 3 samplers x 3 seeds, ~12 minutes on 2 cores
    python benchmarks/samplers.py --seeds 5 --profile cpu

Writes benchmarks/out/samplers.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from common import REPO, SOURCE_HELP, source_args, table, write_json

from sweeps.strategies.study import open_study


def one_pass(exp: str, sampler: str, seed: int, samples: int, profile: str, tmp: Path, source: str | None) -> dict:
    storage = tmp / f"{sampler}-{seed}"
    cmd = [sys.executable, "-m", "sweeps", exp, "--search", "optuna", "--sampler", sampler, "--seed", str(seed),
           "--num-samples", str(samples), "--profile", profile, "--scheduler", "none", "--confirm", "0",
           "--max-concurrent", "2", "--no-analyze", "--storage", str(storage), *source_args(source)]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       env={**_env(tmp), "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    study = open_study(storage / exp / "optuna.journal", exp)
    values = {t.number: t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}

    def best(n: int) -> float:
        got = [v for k, v in values.items() if k < n]
        return min(got) if got else float("nan")

    return {"sampler": sampler, "seed": seed, "wall_s": wall, "best_16": best(16), "best_32": best(32),
            "completed": len(values), "values": values}


def _env(tmp: Path) -> dict:
    import os

    env = dict(os.environ)
    env.update(GPTCORE_CACHE=str(tmp / "cache"), RAY_AUTH_MODE="disabled", RAY_TMPDIR=str(tmp / "ray"))
    env.pop("RAY_ADDRESS", None)
    return env


def summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):.4f} ({min(xs):.4f}-{max(xs):.4f})" if xs else "-"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--experiment", default="exp1")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--samplers", default="tpe,gp,random")
    p.add_argument("--seeds", type=int, default=3, help="sampler seeds per sampler (default 3)")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--data-source", help=SOURCE_HELP)
    a = p.parse_args(argv)
    source = a.data_source
    runs = []
    with tempfile.TemporaryDirectory(prefix="bsamp-") as name:
        tmp = Path(name)
        (tmp / "ray").mkdir()
        # alternate the samplers, seed by seed, so a change in the machine's load hits all alike
        for seed in range(a.seeds):
            for sampler in a.samplers.split(","):
                r = one_pass(a.experiment, sampler, seed, a.samples, a.profile, tmp, source)
                print(f"  {sampler} seed {seed}: best after 16 {r['best_16']:.4f}, after {a.samples} "
                      f"{r['best_32']:.4f} ({r['completed']} completed, {r['wall_s']:.0f} s)", flush=True)
                runs.append(r)
    rows = []
    for sampler in a.samplers.split(","):
        mine = [r for r in runs if r["sampler"] == sampler]
        rows.append([sampler, summary([r["best_16"] for r in mine]), summary([r["best_32"] for r in mine]),
                     f"{statistics.median(r['wall_s'] for r in mine):.0f} s"])
    print()
    print(table(rows, ["sampler", "best val after 16: median (range)", f"after {a.samples}", "wall per pass"]))
    write_json("samplers", {"experiment": a.experiment, "profile": a.profile, "samples": a.samples,
                            "seeds": a.seeds, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
