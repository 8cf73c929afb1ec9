"""The machine a run trains on: its device and dtype, the autocast that applies the dtype, and peak memory.

`resolve_device` turns a config's `device` and `dtype` (either may be `auto`) into what this
machine runs, and refuses what it cannot (float16 on a CPU, bfloat16 on a GPU without it). On a
CPU it leaves auto at float32: whether bfloat16 is faster there depends on the model and the
threads, and the trainer measures it (`gptcore.dtype.choose_dtype`).
"""

from __future__ import annotations

import contextlib
import resource
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from .config import TrainConfig
from .errors import UserError

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_context(device_type: str, dtype: str) -> AbstractContextManager:
    """The context that runs forward passes in `dtype` ('float32', 'bfloat16' or 'float16').

    float32 needs no autocast (a `nullcontext`); the others get `torch.amp.autocast`, which
    keeps the weights in float32 and casts matmul inputs. `dtype` is a resolved one (see
    `resolve_device`), never 'auto'. The context can be entered again and again.
    """
    if dtype == "float32":
        return nullcontext()
    return torch.amp.autocast(device_type=device_type, dtype=TORCH_DTYPES[dtype])


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX), through oneDNN.

    Only then can bf16 autocast be faster on a CPU (and `gptcore.dtype` measures whether it is).
    Without it (AVX2 machines, for one) oneDNN emulates bf16 and a step runs about 10x slower
    than float32 (benchmarks/train_speed.py).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_device(cfg: TrainConfig) -> tuple[str, str, str]:
    """(device, device_type, dtype) for this machine; refuses what the device can't run.

    dtype=auto is bfloat16 (or float16) on CUDA, float32 elsewhere: on a CPU with native bfloat16
    the trainer then measures whether bfloat16 trains its model faster (`gptcore.dtype`); sampling
    and the checks stay in float32.
    """
    dev = cfg.device
    if dev == "auto":
        if torch.cuda.is_available():
            dev = "cuda"
        elif torch.backends.mps.is_available():
            dev = "mps"
        else:
            dev = "cpu"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device={cfg.device!r} but torch sees no CUDA GPU here: use --device=cpu (or auto)")
        index = int(dev.split(":")[1]) if ":" in dev else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device={dev!r} but there are {torch.cuda.device_count()} GPUs: use --device=cuda:0")
    if dev == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps' but this torch has no Apple GPU backend here: use --device=cpu (or auto)")
    dtype = cfg.dtype
    if dev.startswith("cuda"):
        bf16 = torch.cuda.is_bf16_supported()
        if dtype == "auto":
            dtype = "bfloat16" if bf16 else "float16"
        elif dtype == "bfloat16" and not bf16:
            raise UserError("dtype='bfloat16' is not supported by this GPU: use --dtype=float16 (or auto)")
    elif dev == "mps":
        if dtype == "auto":
            dtype = "float32"
        elif dtype != "float32":
            raise UserError(f"dtype={dtype!r} on mps is not supported by gptcore: use --dtype=float32 (or auto)")
    else:
        if dtype == "auto":
            dtype = "float32"
        elif dtype == "float16":
            raise UserError("dtype='float16' needs a GPU; on cpu use --dtype=bfloat16 or --dtype=float32 (or auto)")
    device_type = "cuda" if dev.startswith("cuda") else dev
    return dev, device_type, dtype


def reset_peak_memory(device_type: str) -> None:
    """Start measuring peak memory afresh: a process may train several runs (a sweep reuses its workers)."""
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current one
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device_type: str) -> float:
    """Peak memory since `reset_peak_memory`: GPU memory allocated on cuda, resident set size elsewhere."""
    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the process's peak (KiB on Linux)
