"""Data pipeline: the time to prepare one step's batches against the time of the whole step.

For the cpu config (nanoGPT's CPU recipe, 4/4/128, block 64, batch 12) and the shipped
train_shakespeare_char config (6/6/384, block 256, batch 64) it times
`gptcore.data.Batches.train_step(it)` (draw the step's window starts from the (seed, step)
generator, gather them from the memory-mapped train.bin, make int64 x/y tensors, move them to
the device) and the trainer's full optimizer step (which includes that batch preparation),
alternating in rounds, and prints the median of each and their ratio. Goal: under 5%.
The trainer runs with its defaults (dtype, compile) at the given thread count.

    python benchmarks/data_pipeline.py                     # both configs (a few minutes on 2 cores)
    python benchmarks/data_pipeline.py --configs cpu --threads 1

Writes benchmarks/out/data_pipeline.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SOURCE_HELP, median, prepare_data, table, write_json

from gptcore.config import build_config, find_config, read_config_file
from gptcore.train import Trainer

CONFIGS = {
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "dropout": 0.0},
    "shakespeare": {},
}


def measure(name: str, data_dir: Path, out_dir: Path, threads: int, rounds: int, steps_per_round: int,
            preps_per_round: int) -> dict:
    values = read_config_file(find_config("train_shakespeare_char")[0])
    values.update(CONFIGS[name])
    values.update({"data_dir": str(data_dir), "out_dir": str(out_dir), "log_interval": 1,
                   "eval_interval": 10**9, "max_iters": 10**6})
    cfg = build_config(values)
    torch.set_num_threads(threads)
    trainer = Trainer(cfg, say=lambda line: None)
    run = trainer.run(eval_at_start=False, save_best=False)

    def step() -> float:
        for m in run:
            if m["event"] == "iter":
                return m["time_ms"] / 1000
        raise RuntimeError("the run ended early")

    step()  # warm-up: first-step costs
    prep, steps = [], []
    it = 10**5  # step numbers the run never reaches: fresh draws, as in training
    for _ in range(rounds):
        for _ in range(preps_per_round):
            t = time.perf_counter()
            trainer.batches.train_step(it)
            prep.append(time.perf_counter() - t)
            it += 1
        for _ in range(steps_per_round):
            steps.append(step())
    run.close()
    res = {"tokens_per_step": trainer.tokens_per_iter, "threads": threads, "dtype": trainer.dtype,
           "compile": cfg.compile, "batch_prep_s_median": median(prep), "step_s_median": median(steps),
           "batch_preps": len(prep), "steps": len(steps)}
    res["fraction"] = res["batch_prep_s_median"] / res["step_s_median"]
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--configs", default="cpu,shakespeare", help="comma list of: cpu, shakespeare")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default %(default)s)")
    p.add_argument("--data-source", help=SOURCE_HELP)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data_dir = Path(tmp) / "data"
        prepare_data(data_dir, a.data_source)
        for name in a.configs.split(","):
            big = name == "shakespeare"
            print(f"== {name} config ({a.threads} thread(s))", flush=True)
            results[name] = measure(name, data_dir, Path(tmp) / name, a.threads,
                                    rounds=2 if big else 10, steps_per_round=1 if big else 5,
                                    preps_per_round=50)
    rows = [[n, f"{r['tokens_per_step']:,}", f"{r['batch_prep_s_median'] * 1e3:.3f}",
             f"{r['step_s_median'] * 1e3:,.1f}", f"{100 * r['fraction']:.3g}%",
             "yes" if r["fraction"] < 0.05 else "NO"] for n, r in results.items()]
    print()
    print(table(rows, ["config", "tokens/step", "batch prep ms", "step ms", "prep / step", "< 5%"]))
    write_json("data_pipeline", {"configs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
