"""Where a run's events (`gptcore.record`) go: the console (the tutorial's log lines) and a JSONL file.

A sink has `log(event)` and `close()`. The console lines are a contract, parsed by the
tutorial's `plot_loss.py` and `summarize_experiments.py` and by `sweeps/analyze.py`:

    step {n}: train loss {x:.4f}, val loss {y:.4f}
    iter {n}: loss {x:.4f}, time {ms:.2f}ms, mfu {pct:.2f}%, {tok/s:.0f} tok/s
    training took {seconds:.2f} seconds
    training diverged at step {n}: loss is {loss}
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from . import record
from .errors import write_error


def format_line(m: dict[str, Any]) -> str | None:
    """The console line for one event (None for events with no line: an interrupted end says its own)."""
    ev = m.get("event")
    if ev == record.EVAL:
        return f"step {m['iter']}: train loss {m['train_loss']:.4f}, val loss {m['val_loss']:.4f}"
    if ev == record.STEP:
        return (f"iter {m['iter']}: loss {m['loss']:.4f}, time {m['time_ms']:.2f}ms, mfu {m['mfu']:.2f}%, "
                f"{m['tokens_per_s']:.0f} tok/s")
    if ev == record.END and m["status"] == record.COMPLETED:
        return f"training took {m['elapsed_s']:.2f} seconds"
    if ev == record.END and m["status"] == record.DIVERGED:
        return f"training diverged at step {m['iter']}: loss is {m['loss']}"
    return None


class Console:
    """Prints lines to a stream (None: none) and, when given a path, writes them to a log file too (like `tee`)."""

    def __init__(self, log_path: Path | None = None, stream: TextIO | None = sys.stdout, append: bool = False):
        self.stream = stream
        self.path = log_path
        self.file = open(log_path, "a" if append else "w", encoding="utf-8") if log_path else None

    def say(self, line: str) -> None:
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        self._write([line])

    def write_file(self, lines: list[str]) -> None:
        """Lines already printed (before the log file existed): into the file only."""
        self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if self.file:
            try:
                self.file.writelines(line + "\n" for line in lines)
                self.file.flush()
            except OSError as e:  # a full disk, most likely
                raise write_error(self.path, e) from None

    def log(self, m: dict[str, Any]) -> None:
        line = format_line(m)
        if line is not None:
            self.say(line)

    def close(self) -> None:
        if self.file:
            # after a failed write the lines left in the buffer cannot be written either, and
            # that failure has been reported already
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


class Jsonl:
    """One JSON object per metrics dict; non-finite numbers are written as null."""

    def __init__(self, path: Path, append: bool = False):
        self.path = path
        self.file = open(path, "a" if append else "w", encoding="utf-8")

    def log(self, m: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}
        try:
            self.file.write(json.dumps(clean) + "\n")
            self.file.flush()
        except OSError as e:  # a full disk, most likely
            raise write_error(self.path, e) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):  # as Console.close
            self.file.close()
