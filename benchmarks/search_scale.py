"""A 200-trial Optuna search on 2 CPUs: per-trial overhead, analysis time, report images, bytes on disk.

    python benchmarks/search_scale.py                  # exp1 smoke, 200 trials + confirm, ASHA, 2 at a time
    python benchmarks/search_scale.py --samples 40     # a quick look

It runs the command users run (`python -m sweeps exp1 --search optuna --num-samples N --profile
smoke`, ASHA on, the confirm stage on) and measures, from the trials' own records:

- idle slot-seconds per trial: (slots x the time Ray ran trials - the seconds trials spent in
  their trainable) / trials: what starting, ending and scheduling a trial costs (goal <= 1 s);
- the analysis time: `gptsweep analyze` of the finished sweep, timed on its own (goal <= 30 s);
- the report's images (goal <= 12) and the bytes on disk per trial, checkpoints included.

Writes benchmarks/out/search_scale.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SOURCE_HELP, source_args, table, write_json

from sweeps.results.load import load_sweep, result_rows, trial_dirs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--experiment", default="exp1")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--data-source", help=SOURCE_HELP)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bscale-") as name:
        tmp = Path(name)
        env = dict(os.environ, GPTCORE_CACHE=str(tmp / "cache"), RAY_AUTH_MODE="disabled",
                   RAY_TMPDIR=str(tmp / "ray"), PYTHONUNBUFFERED="1")
        env.pop("RAY_ADDRESS", None)
        (tmp / "ray").mkdir()
        cmd = [sys.executable, "-m", "sweeps", a.experiment, "--search", "optuna", "--num-samples", str(a.samples),
               "--profile", a.profile, "--scheduler", "asha", "--max-concurrent", str(a.slots), "--num-cpus",
               str(a.slots), "--no-analyze", "--storage", str(tmp / "results"), *source_args(a.data_source)]
        t0 = time.perf_counter()
        lines = []
        with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            for line in proc.stdout:
                lines.append((time.perf_counter() - t0, line.rstrip()))
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError("\n".join(line for _, line in lines[-30:]))
        t_ray = next((t for t, line in lines if line.startswith("Ray dashboard:")), 0.0)
        t_end = next((t for t, line in lines if line.startswith("results:")), wall)
        exp_dir = tmp / "results" / a.experiment
        busy = 0.0
        for d in trial_dirs(exp_dir):
            rows = result_rows(d)
            if rows:
                busy += max(r.get("time_total_s", 0.0) for r in rows)
        res = load_sweep(exp_dir)
        n = len(res.trials)
        running = t_end - t_ray
        idle = (a.slots * running - busy) / n
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "sweeps", "analyze", str(exp_dir)], cwd=REPO, env=env,
                           capture_output=True, text=True)
        analysis = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        images = len(list((exp_dir / "plots").glob("*.png")))
        size = sum(f.stat().st_size for f in exp_dir.rglob("*") if f.is_file())
        ckpt = sum(f.stat().st_size for f in exp_dir.rglob("checkpoint_*/*") if f.is_file())
        out = {"samples": a.samples, "trials": n, "stages": res.trials["stage"].value_counts().to_dict(),
               "statuses": res.trials["status"].value_counts().to_dict(), "wall_s": wall,
               "ray_running_s": running, "trainable_busy_s": busy, "idle_slot_s_per_trial": idle,
               "analysis_s": analysis, "report_images": images, "bytes": size, "bytes_per_trial": size / n,
               "checkpoint_bytes": ckpt, "slots": a.slots}
    print(table([["trials", n], ["wall", f"{wall:.0f} s"], ["idle slot-seconds per trial", f"{idle:.2f} s"],
                 ["analysis (gptsweep analyze)", f"{analysis:.1f} s"], ["report images", images],
                 ["bytes on disk per trial", f"{size / n / 1e3:.0f} kB (checkpoints {ckpt / n / 1e3:.0f} kB)"]],
                ["what", "figure"]))
    write_json("search_scale", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
