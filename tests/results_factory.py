"""Synthetic sweep results for the analysis tests: trial folders as docs/outputs.md describes them.

`make_trial` fabricates a trial folder (result.json lines built by gptcore.record, params.json,
config.json from TrainConfig, status.json as the sweep writes it, optional metrics.jsonl,
sample.txt, error.txt; or, with `legacy=True`, the rows of a sweep written before the record
had a status); `make_run` the trials of one run over several seeds, each seed's curve shifted by
its own (deterministic) noise; no training, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from gptcore import record
from gptcore.config import TrainConfig
from sweeps.command import pipeline
from sweeps.experiment.files import load_experiment
from sweeps.results.load import load_sweep
from sweeps.results.trial import ERRORED, FINAL, RUNNING, STATUS_FILE, STOPPED, divergence_row, report_row

# small enough that tokens stay readable: 4 x 1 x 16 = 64 tokens per iteration
SMALL = {"batch_size": 4, "gradient_accumulation_steps": 1, "block_size": 16, "eval_interval": 250}


def curve(final: float, iters=range(0, 1001, 250), start: float = 4.2, gap: float = 0.05,
          k: float = 4.0) -> list[tuple[int, float, float]]:
    """(iter, train, val) points of a smoothly falling val loss ending near `final`, train `gap` below it."""
    its = list(iters)
    end = its[-1] or 1
    out = []
    for it in its:
        val = final + (start - final) * math.exp(-k * it / end)
        out.append((it, val - gap, val))
    return out


def make_trial(exp_dir: Path, name: str, evals: list[tuple[int, float, float]], *, max_iters: int | None = None,
               overrides: dict | None = None, trial_id: str | None = None, n_params: float = 1e6,
               mem_mb: float = 100.0, time_s: float | None = None, per_iter: list[float] | None = None,
               sample: str | None = None, error: str | None = None, diverged_at: int | None = None,
               extra_rows: list[dict] | None = None, config_json: bool = True, seed: int = 1337,
               stage: str | None = None, status: str | None = None, legacy: bool = False) -> Path:
    """Write one trial folder the way a sweep leaves it (docs/outputs.md) and return it.

    `status` is how the trial ended (by default what the sweep would have written: errored with an
    `error`, diverged with `diverged_at`, completed at max_iters, else stopped early; nothing without
    evaluations); `interrupted` writes no status.json and leaves the last row `running`.
    """
    index = len([d for d in exp_dir.iterdir() if d.is_dir()]) if exp_dir.is_dir() else 0
    trial_id = trial_id or f"ab{index:03d}_{index:05d}"
    d = exp_dir / f"{name}_s{seed}_{trial_id}"
    d.mkdir(parents=True)
    over = {**SMALL, "seed": seed, **(overrides or {})}
    if max_iters is None:
        max_iters = evals[-1][0] if evals else 1000
    over["max_iters"] = max_iters
    cfg = {**TrainConfig().as_dict(), **over}
    tpi = cfg["batch_size"] * cfg["gradient_accumulation_steps"] * cfg["block_size"]
    (d / "params.json").write_text(json.dumps({"name": name, **over, **({"stage": stage} if stage else {})}))
    if config_json:
        (d / "config.json").write_text(json.dumps({**cfg, "resolved_device": "cpu", "resolved_dtype": "float32"}))
    if status is None and (evals or diverged_at is not None):
        status = (ERRORED if error else record.DIVERGED if diverged_at is not None
                  else record.COMPLETED if evals[-1][0] >= max_iters else STOPPED)
    rows, best = [], math.inf
    for k, (it, tr, va) in enumerate(evals):
        best = min(best, va)
        elapsed = (time_s if time_s is not None else max_iters / 100) * it / max(max_iters, 1)
        ray = {"training_iteration": k + 1, "trial_id": trial_id, "time_total_s": elapsed + 1.0, "done": False}
        if legacy:  # a sweep written before the record: no status, a `diverged` flag
            rows.append({"iter": it, "tokens": it * tpi, "train_loss": tr, "val_loss": va, "gap": va - tr,
                         "lr": 1e-3, "tokens_per_s": 1000.0, "elapsed_s": elapsed, "best_val_loss": best,
                         "mem_mb": mem_mb, "n_params": n_params, "max_iters": max_iters, "diverged": 0, **ray})
            continue
        ev = record.evaluation(it, tpi, tr, va, 1e-3, elapsed, elapsed, it, best, mem_mb, saved=False)
        said = status if k == len(evals) - 1 and status == record.COMPLETED else RUNNING
        rows.append({**report_row(ev, n_params, max_iters, said), **ray})
    if diverged_at is not None:
        if legacy:  # the old divergence row: the last finite val loss stamped on the divergence step
            last = evals[-1][2] if evals else math.nan
            rows.append({"iter": diverged_at, "tokens": diverged_at * tpi, "train_loss": math.nan, "val_loss": last,
                         "gap": math.nan, "diverged": 1, "n_params": n_params, "max_iters": max_iters,
                         "trial_id": trial_id, "time_total_s": 5.0, "mem_mb": mem_mb})
        else:
            end = record.end(record.DIVERGED, diverged_at, 4.0, 4.0, best, mem_mb, loss=math.nan)
            rows.append({**divergence_row(end, tpi, n_params, max_iters), "trial_id": trial_id,
                         "time_total_s": 5.0})
    rows += extra_rows or []
    if status in FINAL and not legacy:  # what the sweep writes when a trial ends
        (d / STATUS_FILE).write_text(json.dumps({"status": status, "iter": (rows[-1] if rows else {})
                                                        .get("iter")}))
    if rows:
        # json.dumps writes NaN as `NaN`, exactly as Ray does
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if per_iter is not None:
        events = [record.step(i * 10, tpi, x, 1e-3, 0.005, 1.0) for i, x in enumerate(per_iter)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if sample is not None:
        (d / "sample.txt").write_text(sample)
    if error is not None:
        (d / "error.txt").write_text(f"Failure # 1\nTraceback (most recent call last):\n  ...\n{error}\n")
    return d


SEEDS = (1337, 1338, 1339)


def seed_offset(seed: int, sigma: float) -> float:
    """The shift of one seed's curve: the same for every run trained with that seed (paired noise)."""
    return float(np.random.default_rng(seed).normal(0, sigma))


def own_offset(name: str, seed: int, sigma: float) -> float:
    """The part of one trial's shift that is its run's own (the same for the same run and seed, every time)."""
    key = int.from_bytes(hashlib.sha256(f"{name}/{seed}".encode()).digest()[:4], "little")
    return float(np.random.default_rng(key).normal(0, sigma))


def zero_mean(values: list[float]) -> list[float]:
    return [v - float(np.mean(values)) for v in values] if len(values) > 1 else [0.0 for _ in values]


def make_run(exp_dir: Path, name: str, evals: list[tuple[int, float, float]], *, seeds=SEEDS, sigma: float = 0.01,
             per_iter_sigma: float | None = None, per_iter_final: float | None = None, own: float | None = None,
             **kwargs) -> list[Path]:
    """The trials of one run, one per seed: `evals` shifted by each seed's offset (std `sigma`, shared by every run
    with that seed) and the run's own (std `own`, by default `sigma` / 2), each evaluation wobbling by a fifth of
    that.

    With `per_iter_sigma`, each seed also logs a per-iteration training loss of that noise level.
    """
    out = []
    mine = sigma / 2 if own is None else own
    # each evaluation's own wobble (a fifth of the run's own noise), with no mean over the seeds: a seed's rises
    # between evaluations differ, and the run's mean curve stays the planted one
    wobble = {it: zero_mean([own_offset(f"{name}@{it}", seed, mine / 5) for seed in seeds]) for it, _, _ in evals}
    spread = zero_mean([own_offset(f"{name}#cost", seed, 0.01) for seed in seeds])  # time and memory, ±1%
    for i, seed in enumerate(seeds):
        # what the seed shares with every run trained with it (its data order, often its initialisation), and what
        # is this run's own: paired seeds, as a sweep's are, whose differences still scatter
        shift = seed_offset(seed, sigma) + own_offset(name, seed, mine)
        pts = [(it, tr + shift + wobble[it][i], va + shift + wobble[it][i]) for it, tr, va in evals]
        extra = dict(kwargs)
        for cost in ("time_s", "mem_mb"):
            if extra.get(cost) is not None:
                extra[cost] = extra[cost] * (1 + spread[i])
        if per_iter_sigma is not None:
            extra["per_iter"] = noisy(per_iter_final if per_iter_final is not None else evals[-1][2], per_iter_sigma,
                                      seed=seed * 7 + i)
        out.append(make_trial(exp_dir, name, pts, seed=seed, **extra))
    return out


def make_exp2(exp_dir: Path) -> Path:
    """A finished exp2 sweep, three seeds per run, whose one verdict holds (both runs follow one curve)."""
    a = curve(1.8, iters=range(0, 501, 100))
    make_run(exp_dir, "large_batch", a, overrides={"batch_size": 64})
    make_run(exp_dir, "grad_accum", a, overrides={"batch_size": 16, "gradient_accumulation_steps": 4})
    return exp_dir


def noisy(final: float, sigma: float, n: int = 100, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(final + 2.5 * np.exp(-np.arange(n) / 10) + rng.normal(0, sigma, n))


def by_expectation(vs, word: str):
    hits = [v for v in vs if word in v.expectation]
    assert hits, f"no verdict mentions {word!r}: {[v.expectation for v in vs]}"
    return hits[0]


def judge(name: str, exp_dir: Path) -> list:
    """The verdicts of the shipped experiment `name` on the trial folders in exp_dir."""
    return verdicts(load_experiment(name), load_sweep(exp_dir))


def verdicts(exp, res):
    """The verdicts of `res` judged against `exp` as the analysis judges them (one look, at 0.05)."""
    return pipeline.judge(res, exp).verdicts
