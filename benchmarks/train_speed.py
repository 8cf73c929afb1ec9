"""Training speed: tokens/s and MFU of the trainer's defaults against plain fp32 eager training.

What it measures, for two model configs:

  cpu          nanoGPT's CPU recipe: 4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0
  shakespeare  the shipped train_shakespeare_char config: 6/6/384, block 256, batch 64, dropout 0.2

and these variants of the same training step (gptcore's Trainer, data, AdamW, clipping):

  plain        dtype=float32, compile=False: plain fp32 eager training
  defaults     no dtype/compile override: whatever the trainer's defaults resolve to today
  bf16         dtype=bfloat16 (autocast), compile=False
  compile      dtype=float32, compile=True (torch.compile; its first step includes compiling)
  bf16+compile dtype=bfloat16, compile=True
  unfused      plain, but AdamW without fused=True (the trainer uses the fused kernel on cpu/cuda)

All variants of one config are built first, then stepped in rounds, alternating (the order
rotates every round), so load from other processes hits them alike; figures are medians of the
timed steps. MFU is against a matmul peak measured here and now (the best FLOP/s of a large
square matmul, per dtype and thread count), not a datasheet number.

Also measured: thread count (1 .. all cores, same process, alternating), OpenMP's wait policy
(child processes with OMP_WAIT_POLICY unset and PASSIVE, alternating: it can only be set
before torch starts), a quick bf16-vs-fp32 matmul probe (what an automatic dtype choice could
run), and a quality check: val loss after 500 steps of the cpu config in fp32 and bf16 (same
seed, same data order). The same check on the shakespeare config would take hours on a CPU
(`--big-quality-steps N` runs a shorter one when you can afford it).

On CUDA the same script measures bf16 and TF32 (the trainer turns TF32 on); `--pack` measures
four concurrent trainings of exp5's smallest model on one GPU (what `--gpus-per-trial 0.25`
does) against one alone, as aggregate tokens/s.

    python benchmarks/train_speed.py                  # everything (about 40 minutes on 2 cores)
    python benchmarks/train_speed.py --quick          # the cpu config only, few steps (a few minutes)
    python benchmarks/train_speed.py --configs cpu --variants plain,defaults,compile
    python benchmarks/train_speed.py --pack           # CUDA only

Writes benchmarks/out/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SOURCE_HELP, median, prepare_data, ratio, table, write_json

from gptcore.config import build_config, find_config, read_config_file
from gptcore.train import Trainer, resolve_device

CONFIGS = {
    # nanoGPT README's CPU command (minus device/compile, which are what we measure)
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "dropout": 0.0,
            "eval_iters": 20, "max_iters": 2000, "lr_decay_iters": 2000},
    "shakespeare": {},  # the shipped config as it is
}
VARIANTS = {
    "plain": {"dtype": "float32", "compile": False},
    "defaults": {},
    "bf16": {"dtype": "bfloat16", "compile": False},
    "compile": {"dtype": "float32", "compile": True},
    "bf16+compile": {"dtype": "bfloat16", "compile": True},
    "unfused": {"dtype": "float32", "compile": False},  # plain, with AdamW's foreach kernel instead of fused
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------
# configs


def make_config(name: str, variant: dict, data_dir: Path, out_dir: Path, **extra):
    """The shipped train_shakespeare_char config, the model config's overrides, the variant's
    dtype/compile (none for `defaults`), and benchmark settings (no evaluation, log every step)."""
    values = read_config_file(find_config("train_shakespeare_char")[0])
    values.update(CONFIGS[name])
    values.update(variant)
    values.update({"data_dir": str(data_dir), "out_dir": str(out_dir), "log_interval": 1,
                   "eval_interval": 10**9, "max_iters": 10**6, "always_save_checkpoint": False})
    values.update(extra)
    return build_config(values, where=f"benchmark config {name}")


# --------------------------------------------------------------------------------------------
# matmul peak


def matmul_flops(dtype: torch.dtype, device: str, max_n: int, reps: int = 5) -> dict:
    """Best and median FLOP/s of an n x n matmul, n doubled until one takes >= 0.2 s (or max_n)."""
    n = 256
    while True:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        times = []
        for _ in range(reps + 1):
            _sync(device)
            t = time.perf_counter()
            a @ b
            _sync(device)
            times.append(time.perf_counter() - t)
        times = times[1:]  # the first call pays for set-up
        if min(times) >= 0.2 or n >= max_n:
            break
        n *= 2
    flop = 2 * n**3
    return {"n": n, "peak_flops": flop / min(times), "median_flops": flop / median(times)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_peaks(device: str, thread_counts: list[int]) -> dict:
    """{(dtype, threads): result}; on CUDA the fp32 figure is with TF32 on, as the trainer runs."""
    peaks = {}
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        for dt in DTYPES:
            peaks[(dt, 0)] = matmul_flops(DTYPES[dt], device, max_n=16384)
        return peaks
    before = torch.get_num_threads()
    for th in thread_counts:
        torch.set_num_threads(th)
        for dt in DTYPES:
            peaks[(dt, th)] = matmul_flops(DTYPES[dt], device, max_n=4096)
    torch.set_num_threads(before)
    return peaks


def bf16_probe(n: int = 512, reps: int = 3) -> dict:
    """A quick check an automatic dtype choice could make at start-up (~0.1-1 s on a CPU):
    is a bf16 matmul faster here than an fp32 one? (On CPUs without native bf16 it is ~100x slower.)"""
    out = {}
    for name, dt in DTYPES.items():
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        a @ b
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    return {"n": n, "fp32_s": out["float32"], "bf16_s": out["bfloat16"],
            "bf16_speedup": out["float32"] / out["bfloat16"],
            "mkldnn_bf16_supported": bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported",
                                                  lambda: False)())}


# --------------------------------------------------------------------------------------------
# the interleaved step measurement


class Runner:
    """One variant: a Trainer and its run() generator, advanced one optimizer step at a time."""

    def __init__(self, label: str, cfg, threads: int):
        self.label, self.cfg, self.threads = label, cfg, threads
        torch.set_num_threads(threads)
        t = time.perf_counter()
        self.trainer = Trainer(cfg, say=lambda line: None)
        if label == "unfused":  # the same parameter groups, AdamW without fused=True
            groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
                      for g in self.trainer.optimizer.param_groups]
            self.trainer.optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                                                       fused=False)
        self.build_s = time.perf_counter() - t
        self.device, _, self.dtype = resolve_device(cfg)
        self.gen = self.trainer.run(eval_at_start=False, save_best=False)
        self.first_steps: list[float] = []  # warm-up step times (s), the first includes compiling
        self.times: list[float] = []  # timed step times (s)
        self.skipped = ""

    @property
    def compiled(self) -> bool:
        return self.trainer.train_model is not self.trainer.model  # False after a failed compile

    def step(self) -> float:
        torch.set_num_threads(self.threads)
        for m in self.gen:
            if m["event"] == "iter":
                return m["time_ms"] / 1000
            if m["event"] == "end" and m["status"] == "diverged":
                raise RuntimeError(f"{self.label} diverged at step {m['iter']}")
        raise RuntimeError(f"{self.label}: the run ended early")

    def close(self) -> None:
        self.gen.close()


def compare_variants(name: str, variants: list[str], threads: int, warmup: int, rounds: int,
                     steps_per_round: int, max_step_s: float, data_dir: Path, tmp: Path, peaks: dict,
                     device_type: str) -> dict:
    """Build every variant of one config, warm each up, then time them in alternating rounds."""
    runners: list[Runner] = []
    for v in variants:
        cfg = make_config(name, VARIANTS[v], data_dir, tmp / f"{name}-{v}")
        runners.append(Runner(v, cfg, threads))
    tokens_per_iter = runners[0].trainer.tokens_per_iter
    fpt = runners[0].trainer.model.flops_per_token()
    print(f"\n== {name}: {runners[0].trainer.model.get_num_params() / 1e6:.2f}M parameters, "
          f"{tokens_per_iter:,} tokens/step, {fpt / 1e6:.1f} MFLOP/token, {threads} thread(s)")
    too_slow_eager = set()
    for r in runners:
        dtype_key = (r.dtype, r.cfg.compile)
        if r.cfg.compile and (r.dtype, False) in too_slow_eager:
            r.skipped = f"skipped: eager {r.dtype} already took more than {max_step_s:g} s a step"
            print(f"  {r.label}: {r.skipped}")
            continue
        for i in range(warmup):
            r.first_steps.append(r.step())
            print(f"  warm-up {r.label} ({r.dtype}{', compiled' if r.compiled else ''}): step {i}: "
                  f"{r.first_steps[-1]:.2f} s", flush=True)
            if r.first_steps[-1] > max_step_s and not (i == 0 and r.cfg.compile):
                r.skipped = (f"one step took {r.first_steps[-1]:.0f} s (> --max-step-s {max_step_s:g}): "
                             "not timed further")
                too_slow_eager.add(dtype_key)
                break
    active = [r for r in runners if not r.skipped]
    for k in range(rounds):
        order = active[k % len(active):] + active[:k % len(active)] if active else []
        for r in order:
            for _ in range(steps_per_round):
                r.times.append(r.step())
        if order:
            print(f"  round {k + 1}/{rounds}: " + ", ".join(f"{r.label} {median(r.times[-steps_per_round:]):.3f} s"
                                                             for r in order), flush=True)
    for r in runners:
        r.close()

    plain = next((r for r in runners if r.label == "plain"), None)
    rows, out = [], {}
    for r in runners:
        times = r.times
        if not times:  # stopped after its warm-up: report the warm-up steps (without a compiling first one)
            times = r.first_steps[1:] if (r.cfg.compile or len(r.first_steps) > 1) else r.first_steps
        step_s = median(times)
        tps = tokens_per_iter / step_s if times else float("nan")
        compute = "bfloat16" if r.dtype == "bfloat16" else "float32"
        peak_key = (compute, 0 if device_type == "cuda" else threads)
        peak = peaks.get(peak_key, {}).get("peak_flops", float("nan"))
        mfu = 100 * tps * fpt / peak
        mfu32 = 100 * tps * fpt / peaks.get(("float32", peak_key[1]), {}).get("peak_flops", float("nan"))
        first = r.first_steps[0] if r.first_steps else float("nan")
        speedup = ratio(tps, tokens_per_iter / median(plain.times)) if plain and plain.times else float("nan")
        out[r.label] = {"dtype": r.dtype, "compile": r.cfg.compile, "compiled": r.compiled, "threads": threads,
                        "step_s_median": step_s, "tokens_per_s": tps, "mfu_pct": mfu, "mfu_vs_fp32_peak_pct": mfu32,
                        "first_step_s": first, "timed_steps": len(times), "vs_plain": speedup,
                        "note": r.skipped}
        rows.append([r.label, f"{r.dtype}{' compiled' if r.compiled else ''}", f"{step_s * 1000:,.0f}",
                     f"{tps:,.0f}", f"{mfu:.1f}", f"{mfu32:.1f}", f"{first:.1f}", len(times),
                     f"{speedup:.2f}x", r.skipped[:40]])
    print()
    print(table(rows, ["variant", "runs as", "ms/step", "tok/s", "MFU %", "MFU% fp32pk", "1st step s",
                       "steps", "vs plain", "note"]))
    return {"tokens_per_step": tokens_per_iter, "flops_per_token": fpt,
            "n_params": runners[0].trainer.model.get_num_params(), "variants": out}


def compare_threads(name: str, counts: list[int], rounds: int, steps_per_round: int, data_dir: Path,
                    tmp: Path) -> dict:
    """fp32 eager steps at each thread count, alternating, in this process."""
    runners = [Runner(f"{th} thread(s)", make_config(name, VARIANTS["plain"], data_dir, tmp / f"thr{th}"), th)
               for th in counts]
    for r in runners:
        r.step()
        r.step()
    for k in range(rounds):
        for r in runners[k % len(runners):] + runners[:k % len(runners)]:
            for _ in range(steps_per_round):
                r.times.append(r.step())
    for r in runners:
        r.close()
    tpi = runners[0].trainer.tokens_per_iter
    res = {r.threads: tpi / median(r.times) for r in runners}
    base = res[counts[0]]
    print(table([[f"{th}", f"{tps:,.0f}", f"{tps / base:.2f}x"] for th, tps in res.items()],
                ["threads", "tok/s", f"vs {counts[0]}"]))
    return {str(th): {"tokens_per_s": tps, f"vs_{counts[0]}_thread": tps / base} for th, tps in res.items()}


# --------------------------------------------------------------------------------------------
# OpenMP wait policy: only settable before torch starts, so child processes


def wait_policy_child(args) -> None:
    """Child: fp32 eager steps of one config at each thread count; prints one JSON line."""
    counts = [int(x) for x in args.threads_list.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runners = [Runner(str(th), make_config(args.child_config, VARIANTS["plain"], Path(args.data_dir),
                                               Path(tmp) / str(th)), th) for th in counts]
        for r in runners:
            r.step()
        for _ in range(args.child_steps):
            for r in runners:
                r.times.append(r.step())
        tpi = runners[0].trainer.tokens_per_iter
        print(json.dumps({r.label: tpi / median(r.times) for r in runners}))
        for r in runners:
            r.close()


def compare_wait_policy(name: str, counts: list[int], rounds: int, steps: int, data_dir: Path) -> dict:
    results: dict[str, dict[str, list[float]]] = {"default": {}, "PASSIVE": {}}
    for k in range(rounds):
        for policy in (("default", "PASSIVE") if k % 2 == 0 else ("PASSIVE", "default")):
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if policy == "PASSIVE":
                env["OMP_WAIT_POLICY"] = "PASSIVE"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--wait-policy-child", "--child-config", name,
                   "--threads-list", ",".join(map(str, counts)), "--child-steps", str(steps),
                   "--data-dir", str(data_dir)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
            if p.returncode != 0:
                print(f"  child failed ({policy}): {p.stderr.strip()[-300:]}")
                continue
            got = json.loads(p.stdout.strip().splitlines()[-1])
            for th, tps in got.items():
                results[policy].setdefault(th, []).append(tps)
            print(f"  round {k + 1}/{rounds} OMP_WAIT_POLICY={policy}: "
                  + ", ".join(f"{th} thr {tps:,.0f} tok/s" for th, tps in got.items()), flush=True)
    rows, out = [], {}
    for policy, per in results.items():
        for th, xs in per.items():
            out.setdefault(policy, {})[th] = median(xs)
    base = out.get("default", {}).get(str(counts[0]), float("nan"))
    for policy, per in out.items():
        for th, tps in per.items():
            rows.append([policy, th, f"{tps:,.0f}", f"{tps / base:.2f}x"])
    print(table(rows, ["OMP_WAIT_POLICY", "threads", "tok/s (median)", f"vs default {counts[0]} thr"]))
    return out


# --------------------------------------------------------------------------------------------
# quality: val loss after N steps, fp32 against bf16 (and the defaults when they differ)


def quality(name: str, steps: int, threads: int, data_dir: Path, tmp: Path, eval_iters: int | None) -> dict:
    runs = {"plain": VARIANTS["plain"], "bf16": VARIANTS["bf16"], "defaults": VARIANTS["defaults"]}
    seen = {}
    out = {}
    for label, variant in runs.items():
        extra = {"max_iters": steps, "eval_interval": steps, "log_interval": 10**9}
        if eval_iters:
            extra["eval_iters"] = eval_iters
        cfg = make_config(name, variant, data_dir, tmp / f"q-{name}-{label}", **extra)
        dev, _, dt = resolve_device(cfg)
        key = (dt, cfg.compile)
        if key in seen:
            out[label] = {**out[seen[key]], "same_as": seen[key]}
            print(f"  {label}: resolves to {dt}{', compile' if cfg.compile else ''}, as {seen[key]}: not rerun")
            continue
        seen[key] = label
        torch.set_num_threads(threads)
        t = time.perf_counter()
        trainer = Trainer(cfg, say=lambda line: None)
        val = train = None
        for m in trainer.run(eval_at_start=False, save_best=False):
            if m["event"] == "eval":
                val, train = m["val_loss"], m["train_loss"]
            elif m["event"] == "end" and m["status"] == "diverged":
                val = float("nan")
        wall = time.perf_counter() - t
        out[label] = {"dtype": dt, "compile": cfg.compile, "val_loss": val, "train_loss": train, "wall_s": wall}
        print(f"  {label} ({dt}{', compile' if cfg.compile else ''}): step {steps} val loss {val:.4f} "
              f"(train {train:.4f}), {wall:.0f} s", flush=True)
    ref = out["plain"]["val_loss"]
    for r in out.values():
        r["diff_vs_fp32"] = r["val_loss"] - ref
    print(table([[k, r["dtype"], f"{r['val_loss']:.4f}", f"{r['diff_vs_fp32']:+.4f}",
                  "yes" if abs(r["diff_vs_fp32"]) <= 0.02 else "NO"] for k, r in out.items()],
                ["run", "dtype", f"val loss @ {steps}", "vs fp32", "within 0.02"]))
    return {"steps": steps, "threads": threads, "runs": out}


# --------------------------------------------------------------------------------------------
# CUDA: four trainings packed on one GPU against one alone


PACK_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 128}  # exp5's smallest model, full profile


def pack_child(args) -> None:
    """Child: warm up, say ready, wait for `go`, then time steps for a fixed window; print JSON."""
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


def compare_pack(seconds: float, rounds: int, data_dir: Path) -> dict:
    alone, packed = [], []
    for k in range(rounds):
        for n in ((1, 4) if k % 2 == 0 else (4, 1)):
            r = run_pack(n, seconds, data_dir)
            (alone if n == 1 else packed).append(r["aggregate_tokens_per_s"])
            print(f"  round {k + 1}: {n} trial(s) on one GPU: {r['aggregate_tokens_per_s']:,.0f} tok/s in all "
                  f"({', '.join(f'{x:,.0f}' for x in r['per_trial_tokens_per_s'])})", flush=True)
    res = {"alone_tokens_per_s": median(alone), "packed4_aggregate_tokens_per_s": median(packed),
           "ratio": ratio(median(packed), median(alone))}
    print(f"4 packed / 1 alone, aggregate tokens/s: {res['ratio']:.2f}x")
    return res


# --------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="cpu config only, eager variants, few steps, short quality check")
    p.add_argument("--configs", default="cpu,shakespeare", help="comma list of: " + ", ".join(CONFIGS))
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads for the variant comparison (default: torch's default, %(default)s)")
    p.add_argument("--warmup", type=int, help="warm-up steps per variant (default: 3 cpu config, 1 shakespeare)")
    p.add_argument("--rounds", type=int, help="alternating rounds (default: 5 cpu config, 3 shakespeare)")
    p.add_argument("--steps-per-round", type=int, help="steps per variant per round (default: 4 cpu, 1 shakespeare)")
    p.add_argument("--max-step-s", type=float, default=120.0,
                   help="a variant whose warm-up step takes longer is not timed further (default 120 s)")
    p.add_argument("--quality-steps", type=int, default=500, help="steps of the cpu-config quality check (0: skip)")
    p.add_argument("--big-quality-steps", type=int, default=0,
                   help="steps of a quality check on the shakespeare config (default 0: skipped, hours on a CPU)")
    p.add_argument("--no-threads", action="store_true", help="skip the thread-count and wait-policy comparisons")
    p.add_argument("--warm-compile-cache", action="store_true",
                   help="use torch.compile's usual cache (default: a fresh one, so compile time is a first run's)")
    p.add_argument("--pack", action="store_true", help="CUDA: 4 packed trainings vs 1 alone")
    p.add_argument("--pack-seconds", type=float, default=30.0)
    p.add_argument("--data-source", help=SOURCE_HELP)
    # child modes (internal)
    p.add_argument("--wait-policy-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pack-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-config", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--threads-list", default="1", help=argparse.SUPPRESS)
    p.add_argument("--child-steps", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--pack-dir", help=argparse.SUPPRESS)
    p.add_argument("--pack-index", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for c in a.configs.split(","):
        if c not in CONFIGS:
            p.error(f"--configs: unknown config {c!r}")
    for v in a.variants.split(","):
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r}")
    return a


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.wait_policy_child:
        wait_policy_child(a)
        return 0
    if a.pack_child:
        pack_child(a)
        return 0
    if a.quick:
        a.configs, a.quality_steps = "cpu", min(a.quality_steps, 50)
        a.variants = ",".join(v for v in a.variants.split(",") if "compile" not in v)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmpname:
        tmp = Path(tmpname)
        if not a.warm_compile_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor-cache")
        data_dir = tmp / "data"
        prepare_data(data_dir, a.data_source)
        probe_cfg = make_config("cpu", {}, data_dir, tmp / "probe")
        device, device_type, default_dtype = resolve_device(probe_cfg)
        cores = os.cpu_count() or 1
        thread_counts = sorted({1, a.threads, cores}) if device_type == "cpu" else [a.threads]
        print(f"device {device}; the trainer's defaults resolve to dtype={default_dtype}, "
              f"compile={probe_cfg.compile}; torch {torch.__version__}, {cores} cores, "
              f"variant threads {a.threads}")
        result: dict = {"device": device, "defaults": {"dtype": default_dtype, "compile": probe_cfg.compile},
                        "threads": a.threads}

        print("\n== matmul peak (best of 5, large square matmul)")
        peaks = measure_peaks(device, thread_counts)
        print(table([[dt, th or "-", r["n"], f"{r['peak_flops'] / 1e9:,.1f}", f"{r['median_flops'] / 1e9:,.1f}"]
                     for (dt, th), r in peaks.items()],
                    ["dtype", "threads", "n", "peak GFLOP/s", "median GFLOP/s"]))
        result["matmul_peak"] = {f"{dt}@{th}": r for (dt, th), r in peaks.items()}
        if device_type == "cpu":
            probe = bf16_probe()
            print(f"bf16 probe (512x512 matmul): bf16 {probe['bf16_speedup']:.3f}x the speed of fp32; "
                  f"torch.ops.mkldnn._is_mkldnn_bf16_supported() = {probe['mkldnn_bf16_supported']}")
            result["bf16_probe"] = probe

        result["configs"] = {}
        for name in a.configs.split(","):
            big = name == "shakespeare"
            torch._dynamo.reset()  # compiled graphs of the previous config must not make this one dynamic
            result["configs"][name] = compare_variants(
                name, a.variants.split(","), a.threads,
                warmup=a.warmup or (1 if big else (2 if a.quick else 3)),
                rounds=a.rounds or (3 if big else (2 if a.quick else 5)),
                steps_per_round=a.steps_per_round or (1 if big else (3 if a.quick else 4)),
                max_step_s=a.max_step_s, data_dir=data_dir, tmp=tmp, peaks=peaks, device_type=device_type)

        if device_type == "cpu" and not a.no_threads and cores > 1:
            counts = sorted({1, cores})
            result["threads_compare"] = {}
            for name in a.configs.split(","):
                big = name == "shakespeare"
                print(f"\n== threads, {name} config, fp32 eager (alternating in one process)")
                result["threads_compare"][name] = compare_threads(
                    name, counts, rounds=2 if big or a.quick else 5, steps_per_round=1 if big else 4,
                    data_dir=data_dir, tmp=tmp)
            print("\n== OpenMP wait policy, cpu config, fp32 eager (child processes, alternating)")
            result["wait_policy"] = compare_wait_policy("cpu", counts, rounds=2 if a.quick else 4,
                                                        steps=5 if a.quick else 10, data_dir=data_dir)

        if a.quality_steps:
            print(f"\n== quality: val loss after {a.quality_steps} steps, cpu config, same seed and data order")
            result["quality_cpu"] = quality("cpu", a.quality_steps, a.threads, data_dir, tmp, None)
        if a.big_quality_steps:
            print(f"\n== quality: val loss after {a.big_quality_steps} steps, shakespeare config")
            result["quality_shakespeare"] = quality("shakespeare", a.big_quality_steps, a.threads, data_dir, tmp,
                                                    eval_iters=4)

        if a.pack:
            if device_type != "cuda":
                print("\n--pack needs a CUDA GPU: skipped")
                result["pack"] = "skipped: no CUDA GPU"
            else:
                print("\n== packing: 4 trainings of exp5's smallest model (2/2/128) on one GPU vs 1 alone")
                result["pack"] = compare_pack(a.pack_seconds, 2, data_dir)

        summary = []
        for name, r in result["configs"].items():
            v = r["variants"]
            if "plain" in v and "defaults" in v:
                summary.append(f"{name}: defaults ({v['defaults']['dtype']}"
                               f"{', compile' if v['defaults']['compile'] else ''}) run at "
                               f"{v['defaults']['vs_plain']:.2f}x the plain fp32 eager tokens/s")
        if summary:
            print("\n" + "\n".join(summary))
        write_json("train_speed", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
