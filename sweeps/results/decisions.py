"""A sweep's decision log: every decision its design made, in the design's order, and the environment.

`results/<exp>/decisions.jsonl`, one JSON object a line, written by the driver as the sweep runs:

    {"kind": "environment", "env": {...}}                      at every start (and each --resume)
    {"kind": "ask", "key": [...], "trial": "t005", "config": {...}, "knew": ["t000", ...]}
    {"kind": "rung", "key": [...], "trial": "t005", "step": 10, "value": 2.31, "cutoff": 2.28,
     "among": ["t000", "t001"], "decision": "stop"}                       (a search's early stopping)
    {"kind": "rung", "key": [...], "step": 100, "ranked": [...], "stopped": [...], "held": {...}}
                                                                          (a grid's successive halving)
    {"kind": "look", "key": [...], "look": 2, "seeds": 5, "open": [...], "added": {"baseline": 2}}
    {"kind": "end", "key": [...], "trial": "t005", "status": "stopped", "iter": 10, "val_loss": 2.31}

`key` orders the records as the design made them, whatever the timing: a list of numbers compared
element by element (a search: its trial number, then the phase, then the step; a grid: the rung's
step, the look's number). The same command gives the same records under the same keys, so two
sweeps are compared key by key (`gptsweep diff`); a record written twice (a trial re-run after
`--resume`) is kept once, the first time. `environment` records carry no key: they describe the
processes, not a decision.
"""

from __future__ import annotations

import json
import math
import os
import platform
import threading
from pathlib import Path
from typing import Any

FILE = "decisions.jsonl"
ENVIRONMENT = "environment"


def _jsonable(x: Any) -> Any:
    """Floats as they are (non-finite ones as strings, JSON has none), containers recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    try:  # numpy scalars
        return _jsonable(x.item())
    except AttributeError:
        return str(x)


class DecisionLog:
    """Appends records to `path` (created with its folder on first use); safe to call from several threads.

    A log with no path records nothing (a dry run, a strategy driven without a sweep folder)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        if self.path is not None and self.path.exists():
            for r in read(self.path):
                self._seen.add(_identity(r))

    def record(self, kind: str, key: list[float] | tuple | None = None, **fields: Any) -> None:
        if self.path is None:
            return
        rec = {"kind": kind, **({"key": list(key)} if key is not None else {}), **fields}
        rec = _jsonable(rec)
        ident = _identity(rec)
        with self._lock:
            if kind != ENVIRONMENT and ident in self._seen:
                return
            self._seen.add(ident)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
                f.flush()

    def __getstate__(self) -> dict:  # a searcher holding a log is pickled with Tune's state
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


def _identity(rec: dict) -> str:
    """What makes two records the same decision: its kind, key and trial (not its figures)."""
    return json.dumps([rec.get("kind"), rec.get("key"), rec.get("trial")])


def read(path: str | Path) -> list[dict]:
    """The records of a log, as written (a torn last line, from a killed driver, is skipped)."""
    out = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def decisions(records: list[dict]) -> list[dict]:
    """The decisions of a log in the design's order (environment records left out; the first of duplicates)."""
    seen, out = set(), []
    for r in records:
        if r.get("kind") == ENVIRONMENT:
            continue
        ident = _identity(r)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(r)
    return sorted(out, key=lambda r: (_key(r.get("key")), str(r.get("kind")), str(r.get("trial"))))


def environments(records: list[dict]) -> list[dict]:
    """The environment of each start of the sweep, in order."""
    return [r.get("env", {}) for r in records if r.get("kind") == ENVIRONMENT]


def _key(key: Any) -> tuple:
    if not isinstance(key, list):
        return ()
    return tuple(float(k) if isinstance(k, (int, float)) else math.inf for k in key)


# ------------------------------------------------------------------------------------------------
# the environment that decides the figures


def driver_environment() -> dict[str, Any]:
    """What the driver can say of the figures' environment: the versions and this machine (the trials add the
    device, dtype and threads they resolved, in their own records)."""
    import importlib.metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    from gptcore.version import code_version, cpu_model

    env: dict[str, Any] = {"code": code_version(), "python": platform.python_version(),
                           "torch": version("torch"), "ray": version("ray"), "optuna": version("optuna"),
                           "numpy": version("numpy"), "cpu": cpu_model(), "cores": os.cpu_count(),
                           "platform": platform.platform()}
    return env
