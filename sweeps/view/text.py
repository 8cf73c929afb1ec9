"""How the live view writes numbers: losses with their spread, times, values and progress bars."""

from __future__ import annotations

import math
from typing import Any

BAR = 20  # the progress bar's width in characters


def mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std


def fmt_loss(mean: float | None, std: float | None = None) -> str:
    """`3.7527 ± 0.0140`; `3.7527` for one seed; `diverged` for an infinite mean, `—` for none."""
    if mean is None:
        return "—"
    if not math.isfinite(mean):
        return "diverged"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None and math.isfinite(std) else "")


def fmt_time(seconds: float) -> str:
    """`41s`, `3m05s`, `1h02m`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def bar(fraction: float, width: int = BAR, full: str = "█", empty: str = "░") -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return full * filled + empty * (width - filled)
