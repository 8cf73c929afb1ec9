"""Reading the raw files a sweep writes: JSON, JSON lines (tolerating a half-written last line), text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many lines could not be read.

    A crash while writing (or a reader polling a live file) meets a truncated last line: skip it
    rather than lose the trial. Ray writes non-finite numbers as `NaN`/`Infinity`, which `json`
    accepts; gptcore writes null.
    """
    rows, bad = [], 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows, 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows, bad


def result_rows(trial_dir: Path) -> list[dict[str, Any]]:
    """A trial's result rows (Ray's result.json, one per report), oldest first."""
    return read_jsonl(Path(trial_dir) / "result.json")[0]


def num(value: Any) -> float:
    """A float, with None and non-numbers as NaN (JSON null is how gptcore writes NaN)."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    return math.nan


def last_line(path: Path, limit: int = 200) -> str:
    """The last non-empty line of a text file: for a traceback, the exception itself."""
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
