"""Training speed: tokens/s and MFU of the trainer's defaults against plain fp32 eager training.

What it measures, for two model configs:

  cpu          nanoGPT's CPU recipe: 4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0
  shakespeare  the shipped train_shakespeare_char config: 6/6/384, block 256, batch 64, dropout 0.2

and these variants of the same training step (gptcore's Trainer, data, AdamW, clipping):

  plain        dtype=float32, compile=False: plain fp32 eager training
  defaults     no dtype/compile override: what the trainer's defaults resolve to here (dtype=auto:
               on a CPU with native bfloat16, a probe of this model at these threads decides,
               gptcore/dtype.py; it runs afresh, in a cache of this run's own)
  bf16         dtype=bfloat16 (autocast), compile=False
  compile      dtype=float32, compile=True (torch.compile; its first step includes compiling)
  bf16+compile dtype=bfloat16, compile=True
  unfused      plain, but AdamW without fused=True (the trainer uses the fused kernel on cpu/cuda)
  plain-torchattn, bf16-torchattn
               plain and bf16 with torch's attention and dropout as they come, as the trainer had
               them before its CPU paths (scaled_dot_product_attention in the autocast dtype, with
               dropout_p; nn.Dropout): the before of gptcore.model's causal_attention (bf16 in
               float32) and causal_attention_with_dropout (the shakespeare config's dropout 0.2)

All variants of one config are built first, then stepped in rounds, alternating (the order
rotates every round), so load from other processes hits them alike; figures are medians of the
timed steps. MFU is against a matmul peak measured here and now (the best FLOP/s of a large
square matmul, per dtype and thread count), not a datasheet number.

Also measured: thread count (1 .. all cores, same process, alternating), OpenMP's wait policy
(child processes with OMP_WAIT_POLICY unset and PASSIVE, alternating: it can only be set
before torch starts), and a quality check: val loss after 500 steps of the cpu config in fp32
and bf16 (same seed, same data order). The same check on the shakespeare config takes about an
hour on 2 cores (`--big-quality-steps N`, with 4 evaluation batches). `--profile` adds where one
step of each variant spends its time (torch.profiler, the operators by their own time).

On CUDA the same script measures bf16 and TF32 (the trainer turns TF32 on);
benchmarks/gpu_check.py runs it there with packing and a full-profile sweep.

    python benchmarks/train_speed.py                  # everything (about 40 minutes on 2 cores)
    python benchmarks/train_speed.py --quick          # the cpu config only, few steps (a few minutes)
    python benchmarks/train_speed.py --configs cpu --variants plain,defaults,compile
    python benchmarks/train_speed.py --configs shakespeare --variants bf16 --profile --rounds 1

Writes benchmarks/out/train_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SOURCE_HELP, machine, measure_peaks, median, prepare_data, ratio, table, write_json

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
    # before gptcore's own CPU attention and dropout mask: torch's SDPA (its math path, with dropout) and nn.Dropout
    "plain-torchattn": {"dtype": "float32", "compile": False},
    "bf16-torchattn": {"dtype": "bfloat16", "compile": False},
}
TORCH_ATTENTION = ("plain-torchattn", "bf16-torchattn")
VARIANTS_LIKE_DEFAULTS = ("plain", "bf16", "compile", "bf16+compile")  # the trainer as it is, dtype and compile set


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
        self.build_s = time.perf_counter() - t  # with the dtype probe, when dtype=auto makes one
        self.device, self.dtype, self.why = self.trainer.device, self.trainer.dtype, self.trainer.dtype_why
        self.gen = self.trainer.run(eval_at_start=False, save_best=False)
        self.first_steps: list[float] = []  # warm-up step times (s), the first includes compiling
        self.times: list[float] = []  # timed step times (s)
        self.skipped = ""
        self.same_as: Runner | None = None  # a variant that resolved to the same training as another one

    @property
    def compiled(self) -> bool:
        return self.trainer.train_model is not self.trainer.model  # False after a failed compile

    def step(self) -> float:
        torch.set_num_threads(self.threads)
        with torch_attention(self.label in TORCH_ATTENTION):
            return self._step()

    def _step(self) -> float:
        for m in self.gen:
            if m["event"] == "iter":
                return m["time_ms"] / 1000
            if m["event"] == "end" and m["status"] == "diverged":
                raise RuntimeError(f"{self.label} diverged at step {m['iter']}")
        raise RuntimeError(f"{self.label}: the run ended early")

    def close(self) -> None:
        self.gen.close()


@contextlib.contextmanager
def torch_attention(on: bool):
    """With `on`, the model's CPU training path uses torch's SDPA and nn.Dropout's mask (the trainer before)."""
    if not on:
        yield
        return
    import gptcore.model as model_mod

    def sdpa(q, k, v, p):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)

    saved = model_mod.causal_attention_with_dropout, model_mod.causal_attention, model_mod.Dropout.forward
    model_mod.causal_attention_with_dropout = model_mod.causal_attention = sdpa
    model_mod.Dropout.forward = torch.nn.Dropout.forward
    try:
        yield
    finally:
        model_mod.causal_attention_with_dropout, model_mod.causal_attention, model_mod.Dropout.forward = saved


def compare_variants(name: str, variants: list[str], threads: int, warmup: int, rounds: int,
                     steps_per_round: int, max_step_s: float, data_dir: Path, tmp: Path, peaks: dict,
                     device_type: str, profile: bool = False) -> dict:
    """Build every variant of one config, warm each up, then time them in alternating rounds
    (and with `profile`, one more step of each under torch.profiler)."""
    runners: list[Runner] = []
    for v in variants:
        cfg = make_config(name, VARIANTS[v], data_dir, tmp / f"{name}-{v}")
        runners.append(Runner(v, cfg, threads))
    tokens_per_iter = runners[0].trainer.tokens_per_iter
    fpt = runners[0].trainer.model.flops_per_token()
    print(f"\n== {name}: {runners[0].trainer.model.get_num_params() / 1e6:.2f}M parameters, "
          f"{tokens_per_iter:,} tokens/step, {fpt / 1e6:.1f} MFLOP/token, {threads} thread(s)")
    for r in runners:
        # the defaults resolve to one of the explicit variants: the same training, timed once (a second
        # timing of it would only measure the noise between two identical runs)
        r.same_as = next((q for q in runners if r.label == "defaults" and q.label in VARIANTS_LIKE_DEFAULTS
                          and (q.dtype, q.cfg.compile) == (r.dtype, r.cfg.compile)), None)
        if r.same_as is not None:
            print(f"  {r.label}: resolves to {r.dtype}{', compile' if r.cfg.compile else ''}, as "
                  f"{r.same_as.label}: its timings stand for both")
    too_slow_eager = set()
    for r in runners:
        if r.same_as is not None:
            continue
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
    active = [r for r in runners if not r.skipped and r.same_as is None]
    for k in range(rounds):
        order = active[k % len(active):] + active[:k % len(active)] if active else []
        for r in order:
            for _ in range(steps_per_round):
                r.times.append(r.step())
        if order:
            print(f"  round {k + 1}/{rounds}: " + ", ".join(f"{r.label} {median(r.times[-steps_per_round:]):.3f} s"
                                                             for r in order), flush=True)
    profiles = {r.label: profile_step(r) for r in active} if profile else {}
    for r in runners:
        r.close()

    plain = next((r for r in runners if r.label == "plain"), None)
    rows, out = [], {}
    for r in runners:
        src = r.same_as or r
        times = src.times
        if not times:  # stopped after its warm-up: report the warm-up steps (without a compiling first one)
            times = src.first_steps[1:] if (r.cfg.compile or len(src.first_steps) > 1) else src.first_steps
        step_s = median(times)
        tps = tokens_per_iter / step_s if times else float("nan")
        compute = "bfloat16" if r.dtype == "bfloat16" else "float32"
        peak_key = (compute, 0 if device_type == "cuda" else threads)
        peak = peaks.get(peak_key, {}).get("peak_flops", float("nan"))
        mfu = 100 * tps * fpt / peak
        mfu32 = 100 * tps * fpt / peaks.get(("float32", peak_key[1]), {}).get("peak_flops", float("nan"))
        first = src.first_steps[0] if src.first_steps else float("nan")
        speedup = ratio(tps, tokens_per_iter / median(plain.times)) if plain and plain.times else float("nan")
        out[r.label] = {"dtype": r.dtype, "dtype_why": r.why, "build_s": r.build_s, "compile": r.cfg.compile,
                        "compiled": r.compiled, "threads": threads,
                        "step_s_median": step_s, "tokens_per_s": tps, "mfu_pct": mfu, "mfu_vs_fp32_peak_pct": mfu32,
                        "first_step_s": first, "timed_steps": len(times), "vs_plain": speedup,
                        "note": r.skipped or (f"same training as {r.same_as.label}" if r.same_as else ""),
                        "same_as": r.same_as.label if r.same_as else None}
        rows.append([r.label, f"{r.dtype}{' compiled' if r.compiled else ''}", f"{step_s * 1000:,.0f}",
                     f"{tps:,.0f}", f"{mfu:.1f}", f"{mfu32:.1f}", f"{first:.1f}", len(times),
                     f"{speedup:.2f}x", out[r.label]["note"][:40]])
    print()
    print(table(rows, ["variant", "runs as", "ms/step", "tok/s", "MFU %", "MFU% fp32pk", "1st step s",
                       "steps", "vs plain", "note"]))
    for r in runners:
        if r.label == "defaults":
            print(f"defaults: dtype {r.dtype} ({r.why}); trainer built in {r.build_s:.1f} s")
    return {"tokens_per_step": tokens_per_iter, "flops_per_token": fpt,
            "n_params": runners[0].trainer.model.get_num_params(), "variants": out, "profiles": profiles}


def profile_step(r: Runner, rows: int = 14) -> list[dict]:
    """Where one step of `r` spends its time: torch.profiler's operators (by input shape) by their own time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if r.device.startswith("cuda") else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step_s = r.step()
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [{"op": e.key, "shapes": str(e.input_shapes)[:60], "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total} for e in events[:rows]]
    print(f"\n  profile of one {r.label} step ({step_s:.2f} s under the profiler), operators by own CPU time:")
    print(table([[t["op"], t["shapes"], t["calls"], f"{t['self_ms']:,.1f}", f"{100 * t['share']:.1f}"] for t in top],
                ["operator", "input shapes", "calls", "ms", "%"]))
    return top


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


def quality(name: str, steps: int, threads: int, data_dir: Path, tmp: Path, eval_iters: int | None,
            **overrides) -> dict:
    """Val loss after `steps` steps in fp32, bf16 and the defaults (when they differ), same seed and data."""
    runs = {"plain": VARIANTS["plain"], "bf16": VARIANTS["bf16"], "defaults": VARIANTS["defaults"]}
    seen = {}
    out = {}
    for label, variant in runs.items():
        extra = {"max_iters": steps, "eval_interval": steps, "log_interval": 10**9, **overrides}
        if eval_iters:
            extra["eval_iters"] = eval_iters
        cfg = make_config(name, variant, data_dir, tmp / f"q-{name}-{label}-{len(overrides)}", **extra)
        torch.set_num_threads(threads)
        t = time.perf_counter()
        trainer = Trainer(cfg, say=lambda line: None)  # dtype=auto: the probe decides (cached from the timing)
        dt = trainer.dtype
        key = (dt, cfg.compile)
        if key in seen:
            out[label] = {**out[seen[key]], "same_as": seen[key]}
            print(f"  {label}: resolves to {dt}{', compile' if cfg.compile else ''}, as {seen[key]}: not rerun")
            continue
        seen[key] = label
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
    return {"steps": steps, "threads": threads, "overrides": overrides, "runs": out}


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
    p.add_argument("--profile", action="store_true",
                   help="after the timing, profile one step of each variant: where its time goes")
    p.add_argument("--json-name", default="train_speed", help="benchmarks/out/NAME.json (default %(default)s)")
    p.add_argument("--data-source", help=SOURCE_HELP)
    # child modes (internal)
    p.add_argument("--wait-policy-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-config", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--threads-list", default="1", help=argparse.SUPPRESS)
    p.add_argument("--child-steps", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
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
    if a.quick:
        a.configs, a.quality_steps = "cpu", min(a.quality_steps, 50)
        a.variants = ",".join(v for v in a.variants.split(",") if "compile" not in v)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmpname:
        tmp = Path(tmpname)
        if not a.warm_compile_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor-cache")
        data_dir = tmp / "data"
        prepare_data(data_dir, a.data_source)
        # the defaults' dtype probe runs afresh here, and its cost shows in the trainer's build time
        os.environ["GPTCORE_CACHE"] = str(tmp / "cache")
        probe_cfg = make_config("cpu", {}, data_dir, tmp / "probe")
        device, device_type, _ = resolve_device(probe_cfg)
        cores = os.cpu_count() or 1
        thread_counts = sorted({1, a.threads, cores}) if device_type == "cpu" else [a.threads]
        print(f"device {device} ({machine()['cpu']}); the trainer's defaults: dtype={probe_cfg.dtype}, "
              f"compile={probe_cfg.compile}; torch {torch.__version__}, {cores} cores, variant threads {a.threads}")
        result: dict = {"device": device, "defaults": {"dtype": probe_cfg.dtype, "compile": probe_cfg.compile},
                        "threads": a.threads}

        print("\n== matmul peak (best of 5, large square matmul)")
        peaks = measure_peaks(device, thread_counts)
        print(table([[dt, th or "-", r["n"], f"{r['peak_flops'] / 1e9:,.1f}", f"{r['median_flops'] / 1e9:,.1f}"]
                     for (dt, th), r in peaks.items()],
                    ["dtype", "threads", "n", "peak GFLOP/s", "median GFLOP/s"]))
        result["matmul_peak"] = {f"{dt}@{th}": r for (dt, th), r in peaks.items()}

        result["configs"] = {}
        for name in a.configs.split(","):
            big = name == "shakespeare"
            torch._dynamo.reset()  # compiled graphs of the previous config must not make this one dynamic
            result["configs"][name] = compare_variants(
                name, a.variants.split(","), a.threads,
                warmup=a.warmup or (1 if big else (2 if a.quick else 3)),
                rounds=a.rounds or (3 if big else (2 if a.quick else 5)),
                steps_per_round=a.steps_per_round or (1 if big else (3 if a.quick else 4)),
                max_step_s=a.max_step_s, data_dir=data_dir, tmp=tmp, peaks=peaks, device_type=device_type,
                profile=a.profile)

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
            # the same with dropout 0.2: the path of gptcore's own attention and dropout mask on a CPU
            print("\n== quality: the same with dropout 0.2 (the shakespeare config's)")
            result["quality_cpu_dropout"] = quality("cpu", a.quality_steps, a.threads, data_dir, tmp, None,
                                                    dropout=0.2)
        if a.big_quality_steps:
            print(f"\n== quality: val loss after {a.big_quality_steps} steps, shakespeare config")
            result["quality_shakespeare"] = quality("shakespeare", a.big_quality_steps, a.threads, data_dir, tmp,
                                                    eval_iters=4)

        summary = []
        for name, r in result["configs"].items():
            v = r["variants"]
            if "plain" in v and "defaults" in v:
                summary.append(f"{name}: defaults ({v['defaults']['dtype']}"
                               f"{', compile' if v['defaults']['compile'] else ''}) run at "
                               f"{v['defaults']['vs_plain']:.2f}x the plain fp32 eager tokens/s")
            for label in ("bf16", "plain"):
                if label in v:
                    summary.append(f"{name}: {label} at {v[label]['mfu_pct']:.1f}% of the {v[label]['dtype']} "
                                   f"matmul peak at {a.threads} thread{'s' if a.threads != 1 else ''}")
        if summary:
            print("\n" + "\n".join(summary))
        write_json(a.json_name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
