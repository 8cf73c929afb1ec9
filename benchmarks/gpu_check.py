"""What to measure when a GPU is lent, in one go: each part under a time limit, one table at the end.

  speed  the trainer on the tutorial's model (train_shakespeare_char: 6/6/384, block 256, batch 64):
         tokens/s and MFU, against the matmul peak measured on the spot (bf16, and TF32 as the
         trainer runs float32), of plain TF32 eager, the defaults (dtype=auto: bf16 on a GPU that has
         it), bf16, and bf16 with torch.compile (its first step, the compile, is reported apart).
         It is benchmarks/train_speed.py --configs shakespeare, writing out/gpu_speed.json.
  pack   four trainings of exp5's smallest model (2/2/128) at once on the one GPU, as
         `--gpus-per-trial 0.25` runs them, against one alone: aggregate tokens/s, after each has
         warmed up, over the same time window, twice in alternating order.
  exp1   `python sweeps/run.py exp1 --profile full --gpus-per-trial 0.25` (the chapter's settings,
         four trials at a time on the GPU) to its verdicts: wall time, trials, the median trial's
         tokens/s and each verdict. At its limit the sweep gets Ctrl-C (it stops cleanly) and the
         verdicts are what the report makes of the trials that finished.

    python benchmarks/gpu_check.py                         # all three: about 14 minutes at most
    python benchmarks/gpu_check.py --only speed,pack       # some
    python benchmarks/gpu_check.py --limit exp1=1200       # a part's time limit, in seconds
    python benchmarks/gpu_check.py --dry-run               # what it would run (no GPU needed)

Without a CUDA GPU it says so in one line and exits with status 2, before any work. Each part's
output goes to benchmarks/out/gpu_check/<part>.log; the table to benchmarks/out/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OUT_DIR, REPO, median, ratio, table, write_json

PACK_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 128}  # exp5's smallest model, full profile
LIMITS = {"speed": 240, "pack": 150, "exp1": 420}  # seconds: ~14 minutes with start-up, a lent GPU's 15
PARTS = {
    "speed": "trainer tokens/s and MFU, 6/6/384 (TF32, defaults, bf16, bf16+compile)",
    "pack": "4 trainings of 2/2/128 on one GPU vs 1 alone (what --gpus-per-trial 0.25 does)",
    "exp1": "exp1, full profile, --gpus-per-trial 0.25, to its verdicts",
}


def commands(storage: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "speed": [py, "benchmarks/train_speed.py", "--configs", "shakespeare", "--variants",
                  "plain,defaults,bf16,bf16+compile", "--no-threads", "--quality-steps", "0", "--rounds", "3",
                  "--json-name", "gpu_speed"],
        "pack": [py, "benchmarks/gpu_check.py", "--pack-run", "--pack-seconds", "20"],
        "exp1": [py, "sweeps/run.py", "exp1", "--profile", "full", "--gpus-per-trial", "0.25", "--storage",
                 str(storage)],
    }


def run_part(name: str, cmd: list[str], limit: float, log: Path) -> dict:
    """Run `cmd` in its own process group with output to `log`; Ctrl-C at `limit` s, SIGKILL 60 s later."""
    print(f"\n== {name}: {PARTS[name]} (limit {limit:.0f} s)\n   {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        timed_out = False
        try:
            p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGINT)  # the sweep stops cleanly on Ctrl-C and keeps what finished
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    wall = time.perf_counter() - t0
    tail = log.read_text(errors="replace").splitlines()[-3:]
    print(f"   {'timed out' if timed_out else f'exit {p.returncode}'} after {wall:.0f} s" +
          ("" if p.returncode == 0 else "; last lines:\n     " + "\n     ".join(tail)), flush=True)
    return {"rc": p.returncode, "wall_s": wall, "timed_out": timed_out, "log": str(log.relative_to(REPO))}


# --------------------------------------------------------------------------------------------
# reading each part's results into rows of the table: (what, figure)


def speed_rows() -> list[tuple[str, str]]:
    data = json.loads((OUT_DIR / "gpu_speed.json").read_text())
    peak = {k.split("@")[0]: v["peak_flops"] for k, v in data["matmul_peak"].items()}  # one per dtype on CUDA
    rows = [("matmul peak (measured)", f"bf16 {peak['bfloat16'] / 1e12:,.1f} TFLOP/s, "
                                       f"TF32 {peak['float32'] / 1e12:,.1f} TFLOP/s")]
    for label, v in data["configs"]["shakespeare"]["variants"].items():
        compiled = f"; first step {v['first_step_s']:.0f} s (compiling)" if v["compiled"] else ""
        rows.append((f"6/6/384 {label} ({v['dtype']})", f"{v['tokens_per_s']:,.0f} tok/s, MFU {v['mfu_pct']:.1f}%, "
                                                        f"{v['vs_plain']:.2f}x TF32{compiled}"))
    return rows


def pack_rows() -> list[tuple[str, str]]:
    r = json.loads((OUT_DIR / "gpu_pack.json").read_text())["pack"]
    return [("2/2/128 one alone", f"{r['alone_tokens_per_s']:,.0f} tok/s"),
            ("2/2/128 four packed", f"{r['packed4_aggregate_tokens_per_s']:,.0f} tok/s in all, "
                                    f"{r['ratio']:.2f}x one alone")]


def exp1_rows(storage: Path, part: dict) -> list[tuple[str, str]]:
    exp = storage / "exp1"
    if not (exp / "verdicts.json").is_file() and exp.is_dir():  # stopped at its limit: judge what finished
        subprocess.run([sys.executable, "sweeps/analyze.py", str(exp)], cwd=REPO, capture_output=True, timeout=120)
    rows = []
    csv = exp / "trials.csv"
    if csv.is_file():
        import pandas as pd

        t = pd.read_csv(csv)
        done = t[t["status"].isin(["completed", "stopped early"])]
        tps = float("nan")
        if (exp / "history.csv").is_file():  # each trial's tokens/s at its last evaluation
            h = pd.read_csv(exp / "history.csv")
            tps = median(h.groupby("trial_id")["tokens_per_s"].last().dropna().tolist())
        rows.append(("exp1 trials", f"{len(done)} of {len(t)} finished in {part['wall_s']:.0f} s"
                                    f"{' (stopped at the limit)' if part['timed_out'] else ''}; "
                                    f"median trial {tps:,.0f} tok/s, four at a time on the GPU"))
    if (exp / "verdicts.json").is_file():
        for v in json.loads((exp / "verdicts.json").read_text()):
            rows.append((f"verdict {v['check']}", f"{v['outcome']} ({v['effect']:+.4f} ± {v['stderr']:.4f} at step "
                                                  f"{v['step']:g})" if v.get("effect") is not None else v["outcome"]))
    return rows or [("exp1", "no results: see the log")]


# --------------------------------------------------------------------------------------------
# the packing measurement (run as a child of this script, so it has its own time limit)


def pack_child(args) -> None:
    """One training: warm up, say ready, wait for `go`, then time steps for a fixed window; one JSON line."""
    import torch
    from train_speed import Runner, make_config

    ready, go = Path(args.pack_dir) / f"ready-{args.pack_index}", Path(args.pack_dir) / "go"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config("shakespeare", {}, Path(args.data_dir), Path(tmp), **PACK_MODEL)
        r = Runner("pack", cfg, torch.get_num_threads())
        for _ in range(10):
            r.step()
        ready.touch()
        while not go.exists():
            time.sleep(0.01)
        end = time.perf_counter() + args.pack_seconds
        while time.perf_counter() < end:
            r.times.append(r.step())
        print(json.dumps({"tokens_per_s": r.trainer.tokens_per_iter / median(r.times), "steps": len(r.times),
                          "mem_mb": torch.cuda.max_memory_allocated() / 2**20}))
        r.close()


def run_pack(n: int, seconds: float, data_dir: Path) -> dict:
    """`n` trainings at once on the GPU: each one's tokens/s over the same window, and their sum."""
    with tempfile.TemporaryDirectory() as d:
        procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--pack-child",
                                   "--pack-dir", d, "--pack-index", str(i), "--pack-seconds", str(seconds),
                                   "--data-dir", str(data_dir)], stdout=subprocess.PIPE, text=True)
                 for i in range(n)]
        while sum(Path(d, f"ready-{i}").exists() for i in range(n)) < n:
            if any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError("a packed training failed to start")
            time.sleep(0.05)
        Path(d, "go").touch()
        res = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"n": n, "per_trial_tokens_per_s": [r["tokens_per_s"] for r in res],
            "aggregate_tokens_per_s": sum(r["tokens_per_s"] for r in res), "mem_mb": [r["mem_mb"] for r in res]}


def compare_pack(seconds: float, rounds: int) -> dict:
    from common import prepare_data

    alone, packed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        prepare_data(data_dir, None)
        for k in range(rounds):
            for n in ((1, 4) if k % 2 == 0 else (4, 1)):
                r = run_pack(n, seconds, data_dir)
                (alone if n == 1 else packed).append(r["aggregate_tokens_per_s"])
                print(f"  round {k + 1}: {n} training(s) on one GPU: {r['aggregate_tokens_per_s']:,.0f} tok/s in all "
                      f"({', '.join(f'{x:,.0f}' for x in r['per_trial_tokens_per_s'])})", flush=True)
    res = {"alone_tokens_per_s": median(alone), "packed4_aggregate_tokens_per_s": median(packed),
           "ratio": ratio(median(packed), median(alone))}
    print(f"4 packed / 1 alone, aggregate tokens/s: {res['ratio']:.2f}x")
    return res


# --------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--only", default=",".join(PARTS), help="comma list of parts: " + ", ".join(PARTS))
    p.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS",
                   help="a part's time limit (defaults: " + ", ".join(f"{k}={v}" for k, v in LIMITS.items()) + ")")
    p.add_argument("--dry-run", action="store_true", help="print the parts and their commands; run nothing")
    # internal: the pack part and its trainings
    p.add_argument("--pack-run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pack-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pack-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    p.add_argument("--pack-dir", help=argparse.SUPPRESS)
    p.add_argument("--pack-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.parts = [x for x in a.only.split(",") if x]
    for x in a.parts:
        if x not in PARTS:
            p.error(f"--only: {x!r} is not one of {', '.join(PARTS)}")
    a.limits = dict(LIMITS)
    for item in a.limit:
        part, _, secs = item.partition("=")
        if part not in PARTS or not secs.replace(".", "", 1).isdigit():
            p.error(f"--limit {item!r}: give PART=SECONDS, e.g. --limit exp1=900")
        a.limits[part] = float(secs)
    return a


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.pack_child:
        pack_child(a)
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        storage = Path(tmp) / "results"
        cmds = commands(storage)
        if a.dry_run:
            for part in a.parts:
                print(f"{part} (limit {a.limits[part]:.0f} s): {PARTS[part]}\n    {shlex.join(cmds[part])}")
            return 0
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False), nothing measured: run it "
                  "where a GPU is lent (--dry-run lists what it measures)", file=sys.stderr)
            return 2
        if a.pack_run:
            write_json("gpu_pack", {"pack": compare_pack(a.pack_seconds, rounds=2)})
            return 0
        print(f"GPU: {torch.cuda.get_device_name(0)}; parts: {', '.join(a.parts)}", flush=True)
        logs = OUT_DIR / "gpu_check"
        logs.mkdir(parents=True, exist_ok=True)
        readers = {"speed": speed_rows, "pack": pack_rows}
        rows, parts = [], {}
        for part in a.parts:
            parts[part] = run_part(part, cmds[part], a.limits[part], logs / f"{part}.log")
            try:
                got = exp1_rows(storage, parts[part]) if part == "exp1" else readers[part]()
            except (OSError, ValueError, KeyError) as e:  # the part failed or stopped before writing its figures
                got = [(part, f"no figures ({e.__class__.__name__}: {e}); see {parts[part]['log']}")]
            status = "timed out" if parts[part]["timed_out"] else ("ok" if parts[part]["rc"] == 0 else "failed")
            rows += [[part, what, figure, f"{status}, {parts[part]['wall_s']:.0f} s"] for what, figure in got]
    print()
    print(table(rows, ["part", "what", "figure", "status"], align="llll"))
    write_json("gpu_check", {"gpu": torch.cuda.get_device_name(0), "parts": parts,
                             "table": [dict(zip(("part", "what", "figure", "status"), r)) for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
