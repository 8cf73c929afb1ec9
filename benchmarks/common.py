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
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": _cpu_capability(), "load_avg_1m": _load()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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


def table(rows: list[list], header: list[str]) -> str:
    """A plain text table, first column left-aligned, the rest right-aligned."""
    return text_table(header, rows, align="l" + "r" * (len(header) - 1))
