"""Helpers shared by the benchmark scripts: paths, the dataset, statistics, JSON output.

The benchmarks are scripts, not tests: each prints its figures and ratios and writes them to
`benchmarks/out/<name>.json` (git-ignored). Measurements on a shared machine are noisy, so
compared variants are always measured in the same run, alternating, and summarised by medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from gptcore.version import cpu_model
from sweeps.report.tables import text_table

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "benchmarks" / "out"
SOURCE_HELP = "a text file or URL to prepare the dataset from (default: the Tiny Shakespeare gptcore ships)"


def source_args(given: str | None) -> list[str]:
    """The sweep command's `--data-source` for a text given on the benchmark's command line (none: gptcore's own)."""
    return ["--data-source", given] if given else []


def prepare_data(data_dir: Path, source: str | None) -> Path:
    """`data_dir/shakespeare_char`, prepared (quietly) once."""
    from gptcore.data import is_prepared, prepare

    folder = Path(data_dir) / "shakespeare_char"
    if not is_prepared(folder):
        prepare("shakespeare_char", data_dir, input_path=source, quiet=True)
    return folder


def median(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": _cpu_capability(), "load_avg_1m": _load()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_capability() -> str:
    import torch

    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return "?"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def write_json(name: str, data: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    record = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **data}
    path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
    print(f"\nwrote {path.relative_to(REPO)}")
    return path


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def table(rows: list[list], header: list[str], align: str | None = None) -> str:
    """A plain text table, first column left-aligned, the rest right-aligned (or as `align` says: l/r each)."""
    return text_table(header, rows, align=align or "l" + "r" * (len(header) - 1))


# --------------------------------------------------------------------------------------------
# the matmul peak, measured on the spot: the denominator of every MFU figure here


def matmul_flops(dtype, device: str, max_n: int, reps: int = 5) -> dict:
    """Best and median FLOP/s of an n x n matmul, n doubled until one takes >= 0.2 s (or max_n)."""
    import torch

    n = 256
    while True:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        times = []
        for _ in range(reps + 1):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - t)
        times = times[1:]  # the first call pays for set-up
        if min(times) >= 0.2 or n >= max_n:
            break
        n *= 2
    flop = 2 * n**3
    return {"n": n, "peak_flops": flop / min(times), "median_flops": flop / median(times)}


def sync(device: str) -> None:
    """Wait for the GPU (CUDA kernels run asynchronously); nothing on a CPU."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_peaks(device: str, thread_counts: list[int]) -> dict:
    """{(dtype name, threads): matmul_flops result} for float32 and bfloat16; threads 0 on CUDA, where
    the float32 figure is with TF32 on, as the trainer runs."""
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    peaks = {}
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        for name, dt in dtypes.items():
            peaks[(name, 0)] = matmul_flops(dt, device, max_n=16384)
        return peaks
    before = torch.get_num_threads()
    for th in thread_counts:
        torch.set_num_threads(th)
        for name, dt in dtypes.items():
            peaks[(name, th)] = matmul_flops(dt, device, max_n=4096)
    torch.set_num_threads(before)
    return peaks
