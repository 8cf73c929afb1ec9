"""Where an exp1 sweep's wall time goes: training against everything around it.

Runs the sweep as users do (`python sweeps/run.py exp1 --profile cpu`: early stopping, seeds
3..8, the report at the end), through the sweep command's own code, with one addition: each
trial's trainable (sweeps.tune.trainable.train_gpt) is wrapped in a timer that adds up, per
session of a trial, how long its calls took (a trial paused at a rung and continued later is two
sessions). Nothing else changes. The slot-seconds (slots x wall, one slot per concurrent trial)
then split into:

  training        the trials' optimizer steps (each session's `train_time_s`, metrics.jsonl)
  evaluation      Trainer.estimate_loss: the evaluations of the train and val splits
  checkpoints     Trainer.save: writing ckpt.pt (fsynced) at every evaluation
  report to Tune  tune.report: Ray persisting the checkpoint, then waiting for the driver to ask
                  for the next result (a function trainable blocks until then)
  waiting in place  a call of tune.report over WAIT_S: the trial waits at a rung in its actor (no
                  other trial could use the slot) until the rung is decided
  trial start     from the trainable's call to a started run: the dataset, the trainer, the model,
                  a checkpoint to continue from, the dtype probe when it is not cached yet
  rest of trial   the rest of a session: copying the history into the checkpoint, log lines, the
                  sample at the end
  idle slots      the rest while Ray ran trials: no trial in a slot (halving's rungs wait for every
                  run of the race, the last trials run alone), Ray's own work between trials
  before / after  imports, planning, the dataset and Ray's start; the summary, the report and plots,
                  Ray's shutdown (both slots idle)

and prints each one's share and the share outside training (goal: at most 15%).

    python benchmarks/sweep_overhead.py              # exp1, cpu profile: 10-25 minutes on 2 cores
    python benchmarks/sweep_overhead.py --quick      # smoke profile: about a minute
    python benchmarks/sweep_overhead.py --seeds 3    # fewer trials (a shorter, less faithful sweep)
    python benchmarks/sweep_overhead.py --reuse-actors 1   # trials take over finished trials' actors

Writes benchmarks/out/sweep_overhead.json (with --quick, --reuse-actors 1: sweep_overhead_quick.json,
sweep_overhead_reuse1.json), and the sweep's own output to the .log beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import OUT_DIR, REPO, SOURCE_HELP, source_args, table, write_json
from sweep_throughput import base_env, run_logged

TIMED = ("evaluation", "checkpoints", "report to Tune", "trial start")
# tune.report returns as soon as the driver asks for the next result (milliseconds); a trial that waits at a
# rung in its actor (the scheduler's NOOP) waits inside it, for as long as the rung takes to decide
WAIT_S = 0.5
WAITING = "waiting in place"


def process_start() -> float | None:
    """When this process started (epoch seconds, from Linux's /proc), or None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def timed_train_gpt(config: dict, dataset: dict | None = None) -> None:
    """sweeps.tune.trainable.train_gpt, timing its parts into $SWEEP_TIMING_DIR (one JSON file per session)."""
    from ray import tune

    from gptcore.run import Run
    from gptcore.train import Trainer
    from sweeps.tune import trainable

    spent = dict.fromkeys((*TIMED, WAITING), 0.0)
    targets = [(Trainer, "estimate_loss", "evaluation"), (Trainer, "save", "checkpoints"),
               (tune, "report", "report to Tune"), (Run, "start", "trial start")]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]

    def timed(fn, key):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                spent[WAITING if key == "report to Tune" and dt > WAIT_S else key] += dt
        return call

    for (obj, name, key), (_, _, fn) in zip(targets, saved):
        setattr(obj, name, timed(fn, key))
    t0, spent["start"], spent["process_start"] = time.perf_counter(), time.time(), process_start()
    spent["pid"] = os.getpid()
    try:
        trainable.train_gpt(config, dataset)
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)
        spent["session"], spent["end"] = time.perf_counter() - t0, time.time()
        spent["trial"] = f"{config.get('name')}_s{config.get('seed')}"
        folder = Path(os.environ["SWEEP_TIMING_DIR"])
        (folder / f"{spent['trial']}-{os.getpid()}-{time.time_ns()}.json").write_text(json.dumps(spent))


def sweep_child(args: list[str]) -> int:
    """The sweep command, with the timed trainable in place of the plain one."""
    import sweeps.tune.trainable as trainable
    from sweeps.command.sweep import cli

    trainable.train_gpt = timed_train_gpt  # build_tuner imports it from there when it builds the Tuner
    return cli(args)


def train_times(metrics: Path) -> float:
    """The seconds of optimizer steps in a trial's metrics.jsonl, over its sessions (each one's clock
    restarts when it continues from a checkpoint)."""
    total, last, current = 0.0, None, 0.0
    for line in metrics.read_text().splitlines():
        m = json.loads(line)
        if "elapsed_s" not in m:
            continue
        if last is not None and m["elapsed_s"] < last:
            total += current
        last, current = m["elapsed_s"], m["train_time_s"]
    return total + current


SHORT_GAP = 6.0


def slot_gaps(sessions: list[dict], slots: int, t0: float, t1: float) -> list[float]:
    """The idle stretches of each slot between t0 and t1 (epoch seconds), with the sessions given
    to slots in the order they started, each to the slot free first."""
    free = [t0] * slots
    gaps = []
    for s in sorted(sessions, key=lambda s: s["start"]):
        i = min(range(slots), key=lambda k: free[k])
        gaps.append(max(0.0, s["start"] - free[i]))
        free[i] = max(free[i], s["end"])
    gaps += [max(0.0, t1 - f) for f in free]
    return [g for g in gaps if g > 0]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--sweep-child"]:
        return sweep_child(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="the smoke profile")
    p.add_argument("--exp", default="exp1")
    p.add_argument("--seeds", help="the sweep's --seeds (default: the profile's, 3..8 for cpu)")
    p.add_argument("--extra", default="", help="more arguments for the sweep command, in one string")
    p.add_argument("--data-source", help=SOURCE_HELP)
    p.add_argument("--reuse-actors", choices=("0", "1"),
                   help="GPTSWEEP_REUSE_ACTORS for the sweep (default: the sweep's own choice)")
    a = p.parse_args(argv)
    name = "sweep_overhead" + ("_quick" if a.quick else "") + (f"_reuse{a.reuse_actors}" if a.reuse_actors else "")
    profile = "smoke" if a.quick else "cpu"
    with tempfile.TemporaryDirectory(prefix="bover-") as tmpname:
        tmp = Path(tmpname)
        env = base_env(tmp)
        if a.reuse_actors:
            env["GPTSWEEP_REUSE_ACTORS"] = a.reuse_actors
        timing = tmp / "timing"
        timing.mkdir()
        # the trials import the timed trainable from this file
        env.update(SWEEP_TIMING_DIR=str(timing),
                   PYTHONPATH=os.pathsep.join([str(REPO / "benchmarks"), str(REPO), env.get("PYTHONPATH", "")]))
        storage = tmp / "results"
        args = ([a.exp, "--profile", profile, "--storage", str(storage)] + (["--seeds", a.seeds] if a.seeds else [])
                + source_args(a.data_source) + a.extra.split())
        print("== sweeps/run.py " + " ".join(args) + "  (trainable timed)", flush=True)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--sweep-child", *args]
        t_start = time.time()
        wall, rc, lines = run_logged(cmd, env, OUT_DIR / f"{name}.log")  # kept: the sweep's own output
        if rc != 0:
            print("\n".join(line for _, line in lines[-20:]))
            print(f"the sweep failed ({rc})")
            return 1
        t_ray = next((t for t, line in lines if line.startswith("Ray dashboard:")), 0.0)
        # the summary table's header is the first line after the trials
        t_fit = next((t for t, line in lines if line.lstrip().startswith("name ") and "seeds" in line), wall)
        exp_dir = storage / Path(a.exp).stem
        sweep = json.loads((exp_dir / "sweep.json").read_text())
        cores = os.cpu_count() or 1
        slots = max(1, min(cores, int(cores / (sweep.get("cpus_per_trial") or 1))))
        sessions = [json.loads(f.read_text()) for f in sorted(timing.glob("*.json"))]
        train = sum(train_times(m) for m in exp_dir.glob("*/metrics.jsonl"))
        dtypes: dict[str, int] = {}
        for c in exp_dir.glob("*/config.json"):
            conf = json.loads(c.read_text())
            why = f"{conf['resolved_dtype']}: {conf.get('dtype_why')}"
            dtypes[why] = dtypes.get(why, 0) + 1
        n_trials = len(list(exp_dir.glob("*/metrics.jsonl")))
    total = slots * wall
    in_trials = sum(s["session"] for s in sessions)
    parts = {"training": train}
    parts.update({k: sum(s[k] for s in sessions) for k in TIMED})
    waiting = sum(s.get(WAITING, 0.0) for s in sessions)
    parts["rest of trial"] = in_trials - sum(parts.values()) - waiting
    parts["a trial waiting at a rung in its actor"] = waiting
    parts["idle slots while Ray ran trials"] = slots * (t_fit - t_ray) - in_trials
    parts["before the trials (imports, plan, data, Ray's start)"] = slots * t_ray
    parts["after the trials (summary, report, shutdown)"] = slots * (wall - t_fit)
    print()
    print(table([[k, f"{v:,.1f}", f"{100 * v / total:.1f}%"] for k, v in parts.items()],
                ["slot-seconds", "s", "share"]))
    gaps = slot_gaps(sessions, slots, t_start + t_ray, t_start + t_fit)
    short = sum(g for g in gaps if g < SHORT_GAP)
    print(f"  idle slots as gaps between sessions: {len(gaps)} gaps; {sum(g < SHORT_GAP for g in gaps)} under "
          f"{SHORT_GAP:.0f} s (Ray ending one trial's actor and starting the next) {short:,.1f} s, the others "
          f"(waiting for a rung's last trial, the tail) {sum(gaps) - short:,.1f} s")
    # a fresh actor's process: from its start to the trial's code (Ray's worker, the imports of torch and
    # Ray Tune, Tune's set-up); the rest of a short gap is Ray ending the last actor and starting this one
    firsts = {}  # pid -> seconds from its start to its first session's
    for s in sorted(sessions, key=lambda s: s["start"]):
        if s.get("process_start") and s["process_start"] > t_start + t_ray:
            firsts.setdefault(s["pid"], s["start"] - s["process_start"])
    if firsts:
        into = sorted(firsts.values())
        print(f"  {len(into)} fresh actor processes: from a process's start to its trial's code {sum(into):,.1f} s "
              f"(median {into[len(into) // 2]:.2f} s: Ray's worker, importing torch and Ray Tune, Tune's set-up)")
    outside = 1 - train / total
    print(f"\nwall {wall:.1f} s x {slots} slots = {total:,.1f} slot-seconds; {n_trials} trials, {len(sessions)} "
          f"sessions; outside training {100 * outside:.1f}% (goal <= 15%)")
    for why, n in sorted(dtypes.items()):
        print(f"  {n} trials in {why}")
    write_json(name, {"exp": a.exp, "profile": profile, "command": ["sweeps/run.py", *args],
                      "wall_s": wall, "slots": slots, "slot_seconds": parts,
                      "outside_training_share": outside, "trials": n_trials, "sessions": sessions,
                      "dtypes": dtypes, "gaps": gaps, "reuse_actors": a.reuse_actors})
    return 0


if __name__ == "__main__":
    sys.exit(main())
