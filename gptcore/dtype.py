"""The dtype a run trains in when `dtype=auto`: on a CPU, measured for the run's own model.

On a GPU, auto is bfloat16 where the GPU supports it, else float16 (`gptcore.device.resolve_device`).
On a CPU, bfloat16 can only pay where oneDNN multiplies it in hardware (AVX-512 BF16, AMX); where
it emulates it a step runs about 10x slower, so auto is float32 there without a measurement. Where
it is native, whether bfloat16 wins depends on the model and the threads: the matmuls get faster,
but the casts autocast adds and the work that stays in float32 do not, and a small model at one
thread can come out slower (benchmarks/README.md). So the trainer probes: a few training steps
(forward, backward, clipping, AdamW) of the run's model, its shape and dropout (fewer layers for a
large one) with a batch of at most `PROBE_TOKENS` tokens, in float32 and in bfloat16, alternating,
at the run's thread count.
bfloat16 is chosen when its fastest step is at least `MARGIN` times as fast as float32's (`decide`:
the same timings always give the same choice; the fastest, not the median, because another
process taking the CPU for a moment only ever adds time).

A probe takes a few seconds at most. Its timings are cached in `<cache>/dtype-probe.json`
(`gptcore.sources.cache_dir`), keyed by the machine (CPU model, cores, torch version), what was
measured (shape, batch, dropout on or off) and the thread count. A file lock makes the runs that
start together on one machine (a sweep's trials) wait for the first one's probe and read its
result: they share one probe, and each node of a cluster makes its own. The choice and the
figures behind it go into the run's config.json (`resolved_dtype`, `dtype_why`) and train.log.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .config import TrainConfig
from .device import autocast_context, cpu_has_native_bf16
from .eager import optimizer_step, shapes_only
from .model import GPT, GPTConfig

MARGIN = 1.05  # bfloat16 must be this much faster: it rounds, and a tie is not worth that
PROBE_TOKENS = 1024  # tokens per probe step at most (whole sequences, at least one)
PROBE_FLOPS = 25e9  # training FLOPs per probe step at most (0.3 s at 80 GFLOP/s): layers, then sequences, are cut
MIN_STEPS, MAX_STEPS, BUDGET_S = 3, 20, 1.0  # timed steps per dtype: at least 3, more while within budget
CACHE_NAME = "dtype-probe.json"
PROBE_VERSION = 2  # bump when the probe measures something else: old entries are then not used


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a run trains in, and why in words (config.json `dtype_why`; train.log `dtype: DTYPE (WHY)`)."""

    dtype: str
    why: str


def choose_dtype(cfg: TrainConfig, model: GPTConfig, device_type: str, resolved: str,
                 threads: int | None = None) -> DtypeChoice:
    """The dtype of a run of `model` with `cfg`, given `resolved`, what `resolve_device` made of cfg.dtype.

    Only `dtype=auto` on a CPU with native bfloat16 is measured (`probe_cpu`, cached); every other
    case is `resolved`, with its reason.
    """
    if cfg.dtype != "auto":
        return DtypeChoice(resolved, f"set by dtype={cfg.dtype}")
    if device_type == "cuda":
        why = "this GPU supports it" if resolved == "bfloat16" else "this GPU has no bfloat16"
        return DtypeChoice(resolved, f"auto on CUDA: {why}")
    if device_type != "cpu":
        return DtypeChoice(resolved, f"auto on {device_type}")
    if not cpu_has_native_bf16():
        return DtypeChoice("float32", "auto: this CPU has no native bfloat16 (oneDNN would emulate it, about 10x "
                                      "slower)")
    threads = threads or torch.get_num_threads()
    shape = probe_shape(model, cfg.batch_size)
    timings = cached_probe(shape, threads)
    return decide(timings, threads)


def decide(timings: dict, threads: int) -> DtypeChoice:
    """bfloat16 when the probe's fastest bfloat16 step is at least MARGIN times as fast as float32's."""
    speedup = timings["float32_s"] / timings["bfloat16_s"]
    what = (f"auto: probe bfloat16 {speedup:.2f}x float32 at {threads} thread{'s' if threads != 1 else ''} "
            f"({timings['shape']}; {timings['source']})")
    if speedup >= MARGIN:
        return DtypeChoice("bfloat16", what)
    return DtypeChoice("float32", f"{what}, below the {MARGIN:.2f}x it must win by")


# --------------------------------------------------------------------------------------------
# the probe


@dataclass(frozen=True)
class ProbeShape:
    """What a probe trains: the run's network (maybe fewer layers) on `batch` sequences a step."""

    model: GPTConfig
    batch: int
    run_layers: int  # the run's n_layer (the probe may train fewer: per-layer costs are the same)

    def describe(self) -> str:
        m = self.model
        layers = f"{m.n_layer} of {self.run_layers} layers" if m.n_layer != self.run_layers else f"{m.n_layer} layers"
        return (f"{layers}, {m.n_head} heads, {m.n_embd} wide, {self.batch} x {m.block_size} tokens a step"
                + (", dropout" if m.dropout > 0 else ""))


def probe_shape(model: GPTConfig, batch_size: int) -> ProbeShape:
    """The run's model on at most PROBE_TOKENS tokens (whole sequences) a step, with at most PROBE_FLOPS
    a step: layers are cut first (each costs the same, so the ratio holds; the rows a matmul sees do
    not change), then sequences, so that a probe stays within seconds."""
    from .record import flops_per_token

    def flops(m: GPTConfig, batch: int) -> float:
        n = shapes_only(m).get_num_params()  # the parameter count without allocating the network
        return flops_per_token(n, m.n_layer, m.n_embd, m.block_size) * batch * m.block_size

    batch = max(1, min(batch_size, PROBE_TOKENS // model.block_size))
    probe = model
    while probe.n_layer > 1 and flops(probe, batch) > PROBE_FLOPS:
        probe = replace(probe, n_layer=probe.n_layer - 1)
    batch = max(1, min(batch, int(PROBE_FLOPS // flops(probe, 1))))
    return ProbeShape(probe, batch, model.n_layer)


def probe_cpu(shape: ProbeShape, threads: int) -> dict:
    """The fastest training step of `shape` in float32 and in bfloat16 at `threads` threads, in seconds.

    Steps alternate between the dtypes, after one warm-up step each (oneDNN builds its kernels on
    first use), until each has MIN_STEPS and BUDGET_S has passed, or MAX_STEPS. The run's random
    state is left as it was.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    began = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = GPT(shape.model)
            opt = model.configure_optimizers(0.1, 1e-4, (0.9, 0.99), "cpu")
            x, y = (torch.randint(shape.model.vocab_size, (shape.batch, shape.model.block_size)) for _ in range(2))

            def step(dtype: str) -> float:
                t = time.perf_counter()
                with autocast_context("cpu", dtype):
                    _, loss = model(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer_step(opt)
                opt.zero_grad(set_to_none=True)
                return time.perf_counter() - t

            times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
            for dtype in times:
                step(dtype)
            start = time.perf_counter()
            while True:
                for dtype in times:
                    times[dtype].append(step(dtype))
                n = len(times["float32"])
                if n >= MAX_STEPS or (n >= MIN_STEPS and time.perf_counter() - start >= BUDGET_S):
                    break
    finally:
        torch.set_num_threads(before)
    return {"float32_s": min(times["float32"]), "bfloat16_s": min(times["bfloat16"]),
            "steps": n, "probe_s": round(time.perf_counter() - began, 3)}


# --------------------------------------------------------------------------------------------
# the cache


def machine_key() -> str:
    """This machine, as far as a probe's timings depend on it."""
    from .version import cpu_model

    return f"{cpu_model()}; {os.cpu_count()} cores; torch {torch.__version__}"


def probe_key(shape: ProbeShape, threads: int) -> str:
    m = shape.model
    return (f"v{PROBE_VERSION}; {machine_key()}; {m.n_layer}/{m.n_head}/{m.n_embd} block {m.block_size} "
            f"vocab {m.vocab_size} bias {m.bias} dropout {m.dropout > 0}; batch {shape.batch}; threads {threads}")


_MEMO: dict[str, dict] = {}  # this process's probes: a sweep's reused worker runs many trials


def cache_path() -> Path:
    """The probes' cache on this machine: `<cache>/dtype-probe.json` (`gptcore.sources.cache_dir`)."""
    from .sources import cache_dir

    return cache_dir() / CACHE_NAME


def cached_probe(shape: ProbeShape, threads: int) -> dict:
    """The probe's timings for `shape` at `threads`: from this process, the cache file, or measured now
    (and then cached). With the cache unusable (a read-only home) the probe is made and not kept."""
    key = probe_key(shape, threads)
    if key in _MEMO:
        return {**_MEMO[key], "source": "probed earlier in this process"}
    path = cache_path()
    with _locked(path.with_suffix(".lock")):
        entries = _read(path)
        if key in entries and _valid(entries[key]):
            got = {**entries[key], "source": f"cached {entries[key].get('when', '')}".strip()}
        else:
            got = {**probe_cpu(shape, threads), "shape": shape.describe(), "when": time.strftime("%Y-%m-%d %H:%M")}
            entries[key] = got
            got = {**got, "source": f"measured now in {got['probe_s']:.1f} s"}
            _write(path, entries)
    _MEMO[key] = {k: v for k, v in got.items() if k != "source"}
    return got


def _valid(entry: object) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(k), (int, float)) and math.isfinite(entry[k]) and entry[k] > 0
        for k in ("float32_s", "bfloat16_s")) and isinstance(entry.get("shape"), str)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: probe again and write it anew
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, entries: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):  # a cache that cannot be written costs a probe per run, nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created) while the block runs; no lock where that is impossible."""
    try:
        import fcntl
    except ImportError:  # Windows: runs may probe twice, which is harmless
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except OSError:
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield
