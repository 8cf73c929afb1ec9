"""gptcore.dtype: what dtype=auto trains in on a CPU (a probe of the run's model, cached), and its record."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

import gptcore.dtype as dt
from gptcore.dtype import DtypeChoice, choose_dtype, decide, probe_shape
from gptcore.model import GPTConfig
from gptcore.run import Run

TINY_MODEL = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=65, bias=False)


@pytest.fixture(autouse=True)
def _fresh_memo(monkeypatch):
    """No probe remembered from another test of this process."""
    monkeypatch.setattr(dt, "_MEMO", {})


@pytest.fixture
def native(monkeypatch):
    """A CPU with native bfloat16 (whatever this one is), and a probe that counts its calls and
    reports `timings["speedup"]`."""
    calls = []
    timings = {"speedup": 2.0}

    def fake_probe(shape, threads):
        calls.append((shape, threads))
        return {"float32_s": 0.2 * timings["speedup"], "bfloat16_s": 0.2, "steps": 3, "probe_s": 0.01}

    monkeypatch.setattr(dt, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dt, "probe_cpu", fake_probe)
    return calls, timings


def test_decide_is_bfloat16_only_by_the_margin():
    base = {"shape": "1 layers", "source": "measured now in 0.1 s"}
    fast = decide({**base, "float32_s": 1.8, "bfloat16_s": 1.0}, 2)
    assert fast == DtypeChoice("bfloat16", "auto: probe bfloat16 1.80x float32 at 2 threads (1 layers; measured now "
                                           "in 0.1 s)")
    tie = decide({**base, "float32_s": 1.04, "bfloat16_s": 1.0}, 1)
    assert tie.dtype == "float32" and "1.04x float32 at 1 thread " in tie.why and "below the 1.05x" in tie.why
    assert decide({**base, "float32_s": 1.05, "bfloat16_s": 1.0}, 1).dtype == "bfloat16"
    assert decide({**base, "float32_s": 0.5, "bfloat16_s": 1.0}, 1).dtype == "float32"


def test_explicit_dtypes_and_cpus_without_bf16_are_not_probed(tiny_config, native, monkeypatch):
    calls, _ = native
    assert choose_dtype(tiny_config(dtype="float32"), TINY_MODEL, "cpu", "float32") == \
        DtypeChoice("float32", "set by dtype=float32")
    assert choose_dtype(tiny_config(dtype="bfloat16"), TINY_MODEL, "cpu", "bfloat16").dtype == "bfloat16"
    assert choose_dtype(tiny_config(dtype="auto"), TINY_MODEL, "cuda", "bfloat16") == \
        DtypeChoice("bfloat16", "auto on CUDA: this GPU supports it")
    monkeypatch.setattr(dt, "cpu_has_native_bf16", lambda: False)
    got = choose_dtype(tiny_config(dtype="auto"), TINY_MODEL, "cpu", "float32")
    assert got.dtype == "float32" and "no native bfloat16" in got.why
    assert calls == []


def test_auto_on_a_bf16_cpu_probes_once_per_machine_shape_and_threads(tiny_config, native, tmp_path, monkeypatch):
    calls, timings = native
    cfg = tiny_config(dtype="auto")
    first = choose_dtype(cfg, TINY_MODEL, "cpu", "float32", threads=1)
    assert first.dtype == "bfloat16" and "2.00x float32 at 1 thread" in first.why and "measured now" in first.why
    assert len(calls) == 1 and calls[0][1] == 1
    # another process (an empty memo) on this machine reads the cache file instead of probing
    monkeypatch.setattr(dt, "_MEMO", {})
    again = choose_dtype(cfg, TINY_MODEL, "cpu", "float32", threads=1)
    assert again.dtype == "bfloat16" and "cached" in again.why and len(calls) == 1
    entries = json.loads((dt.cache_path()).read_text())
    (key, entry), = entries.items()
    assert "threads 1" in key and "1/2/16 block 16" in key and entry["bfloat16_s"] == 0.2
    # another thread count, or another shape, is another probe; the decision follows its timings
    timings["speedup"] = 0.9
    other = choose_dtype(cfg, TINY_MODEL, "cpu", "float32", threads=2)
    assert other.dtype == "float32" and "0.90x float32 at 2 threads" in other.why and len(calls) == 2
    choose_dtype(cfg, GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=65), "cpu", "float32",
                 threads=1)
    assert len(calls) == 3


def test_a_damaged_cache_is_probed_again_and_rewritten(tiny_config, native):
    calls, _ = native
    path = dt.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert choose_dtype(tiny_config(dtype="auto"), TINY_MODEL, "cpu", "float32", threads=1).dtype == "bfloat16"
    assert len(calls) == 1 and len(json.loads(path.read_text())) == 1


def test_runs_starting_together_share_one_probe(native, monkeypatch):
    calls, _ = native
    slow = dt.probe_cpu

    def slow_probe(shape, threads):
        time.sleep(0.3)  # the second run arrives while the first one probes
        return slow(shape, threads)

    monkeypatch.setattr(dt, "probe_cpu", slow_probe)
    got = []

    def run():
        got.append(dt.cached_probe(probe_shape(TINY_MODEL, 4), 1)["source"])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(s.split()[0] for s in got) in (["cached", "measured"], ["measured", "probed"])


def test_probe_shape_keeps_small_models_and_cuts_large_ones():
    small = probe_shape(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65), 12)
    assert (small.model.n_layer, small.batch) == (4, 12) and small.describe() == \
        "4 layers, 4 heads, 128 wide, 12 x 64 tokens a step"
    tutorial = probe_shape(GPTConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65, dropout=0.2), 64)
    assert tutorial.batch == 1024 // 256 and tutorial.model.n_layer < 6 and tutorial.run_layers == 6
    assert tutorial.describe().startswith(f"{tutorial.model.n_layer} of 6 layers") and "dropout" in tutorial.describe()
    gpt2 = probe_shape(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304), 12)
    assert (gpt2.model.n_layer, gpt2.batch) == (1, 1)


def test_the_real_probe_is_quick_and_leaves_the_random_state(monkeypatch):
    monkeypatch.setattr(dt, "BUDGET_S", 0.0)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    got = dt.probe_cpu(probe_shape(TINY_MODEL, 4), 1)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert got["float32_s"] > 0 and got["bfloat16_s"] > 0 and got["steps"] == dt.MIN_STEPS
    assert got["probe_s"] < 10


def test_the_run_records_the_choice_and_why(tiny_config, native):
    run = Run(tiny_config(dtype="auto", max_iters=2), stream=None)
    run.start()
    for _ in run.events():
        pass
    run.close()
    conf = json.loads((run.out_dir / "config.json").read_text())
    assert conf["dtype"] == "auto" and conf["resolved_dtype"] == "bfloat16" == run.trainer.dtype
    assert conf["dtype_why"].startswith("auto: probe bfloat16 2.00x float32 at 1 thread (1 layers, 2 heads, 16 wide")
    log = (run.out_dir / "train.log").read_text()
    assert f"dtype: bfloat16 ({conf['dtype_why']})" in log.splitlines()
    with run.trainer.autocast:
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
