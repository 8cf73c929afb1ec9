"""`gptsweep ls [ROOT]`: the sweeps under a results root, one line each (or `--json`).

    gptsweep ls                       # results/
    gptsweep ls runs                  # another local root (a --storage)
    gptsweep ls s3://bucket/prefix    # a remote one
    gptsweep ls --json                # a JSON list, for scripts

A sweep is a folder under ROOT that holds sweep.json or tuner.pkl (also `<exp>.old-*`, moved aside
by --fresh). Only the sweeps' own records are read (sweep.json, the lock file, each trial's
status.json or last result row): no Ray. Its state:

- `running`: the sweep's lock (`ROOT/.<exp>.lock`) is held: a process on this machine (or one
  sharing the filesystem's locks) runs it; host and PID from the sweep's records;
- `running?` (remote roots, which have no lock): some trial is unfinished and the newest file of
  the sweep changed in the last RECENT_S seconds (trials write a row at every evaluation, and Ray
  saves its experiment state every few minutes);
- `finished`: every planned trial ended (completed, stopped early, diverged);
- `failed`: every planned trial ended, some errored;
- `interrupted`: some trial unfinished, or planned trials never started: `--resume` continues it.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gptcore import record
from gptcore.errors import UserError
from sweeps.results.trial import ERRORED, STATUS_FILE, final_status, left_behind
from sweeps.storage.local import is_remote, local_path
from sweeps.storage.s3 import Entry

USAGE = __doc__.split("\n\n")[1]
RECENT_S = 300  # a remote sweep whose newest file is younger than this, with trials unfinished, may be running
MARKERS = ("sweep.json", "tuner.pkl")
# files the analysis writes later: not the sweep's activity
_OUTPUTS = ("report.md", "verdicts.json", "trials.csv", "history.csv", "curves.csv", "scaling.json")


@dataclass
class Sweep:
    """One line of `gptsweep ls`."""

    exp: str
    folder: str
    state: str
    done: int  # trials that ended (completed, stopped early, diverged, errored)
    planned: int  # the trials the sweep will have: sweep.json's planned_trials, or what is there
    errored: int
    started: str | None  # ISO time
    wall_s: float | None  # from started to the newest result (to now while running)
    updated: str | None  # the newest file of the sweep's trials (ISO time)
    command: str | None
    resume: str | None  # the command that continues an interrupted sweep
    host: str | None = None
    pid: int | None = None


class _Source:
    """The files under a root, local or remote: `entries` (every file, relative paths) and `read`."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") if is_remote(root) else local_path(root)
        self.remote = is_remote(root)
        if self.remote:
            from sweeps.storage.s3 import open_fs, walk

            self.entries = walk(self.root)
            self._fs, _ = open_fs(self.root)
        else:
            p = Path(self.root)
            if not p.is_dir():
                raise UserError(f"no folder {self.root}: name the folder that holds the sweeps (a --storage), "
                                "or s3://bucket/prefix")
            self.entries = list(_walk_local(p))

    def read(self, rel: str) -> bytes | None:
        if self.remote:
            from sweeps.storage.s3 import read_bytes

            return read_bytes(self.root, rel, self._fs)
        try:
            return (Path(self.root) / rel).read_bytes()
        except OSError:
            return None


def _walk_local(root: Path):
    """The files under a local root, without descending into checkpoints (ours: no need, and large)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith("checkpoint_")]
        for name in files:
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue
            yield Entry(path.relative_to(root).as_posix(), st.st_mtime, st.st_size)


def _json(data: bytes | None) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _last_row(data: bytes | None) -> dict[str, Any] | None:
    for line in reversed((data or b"").splitlines()):
        row = _json(line.strip())
        if isinstance(row, dict):
            return row
    return None


def trial_ending(status_json: dict | None, last_row: dict | None) -> str | None:
    """A trial's final status (FINAL) from its status.json, else its last result row; None while
    it has none (running, interrupted, or a row of an old version that carries no status)."""
    said = final_status(status_json, last_row)
    if said is not None or not last_row:
        return said
    if last_row.get("status") is None:  # an older sweep's rows: only what they show for sure
        if last_row.get("diverged") == 1:
            return record.DIVERGED
        it, top = last_row.get("iter"), last_row.get("max_iters")
        if isinstance(it, (int, float)) and isinstance(top, (int, float)) and it >= top:
            return record.COMPLETED
    return None


def lock_holder(root: str, exp: str) -> dict[str, Any] | None:
    """The holder's record (pid, command, started) when the sweep's lock is held, else None.

    A non-blocking shared lock on `ROOT/.<exp>.lock`: refused exactly while a sweep holds it
    (an exclusive lock); released at once when granted.
    """
    path = Path(local_path(root)) / f".{exp}.lock"
    try:
        f = open(path, "rb")
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                return None
            holder = _json(f.read())
            return holder if isinstance(holder, dict) else {}
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def resume_command(command: str | None, exp: str) -> str:
    """The command that made the sweep, with `--resume` (and without `--fresh`)."""
    if not command:
        return f"gptsweep {exp} --resume"
    try:
        words = shlex.split(command)
    except ValueError:
        return f"{command} --resume"
    words = [w for w in words if w != "--fresh"]
    return shlex.join(words + ([] if "--resume" in words else ["--resume"]))


def sweeps_under(root: str, now: float | None = None) -> list[Sweep]:
    """Every sweep under `root` (a local folder or a remote URI), sorted by name."""
    src = _Source(root)
    now = time.time() if now is None else now
    by_exp: dict[str, list[Entry]] = {}
    for e in src.entries:
        top, _, rest = e.rel.partition("/")
        if rest and not top.startswith("."):
            by_exp.setdefault(top, []).append(Entry(rest, e.mtime, e.size))
    exps = sorted(x for x, files in by_exp.items() if any(f.rel in MARKERS for f in files))
    reads = []
    for x in exps:
        trials = _trial_files(by_exp[x])
        reads += [f"{x}/sweep.json"]
        reads += [f"{x}/{t}/{name}" for t, names in trials.items() for name in names
                  if name in (STATUS_FILE, "result.json")]
        reads += [f"{x}/{f.rel}" for f in _newest_state(by_exp[x])]
    with ThreadPoolExecutor(max_workers=8 if src.remote else 1) as pool:
        data = dict(zip(reads, pool.map(src.read, reads)))
    return [_sweep(root, x, by_exp[x], data, src.remote, now) for x in exps]


def _trial_files(files: list[Entry]) -> dict[str, set[str]]:
    """Trial folder -> its files' names, for the folders that hold result.json or params.json."""
    out: dict[str, set[str]] = {}
    for f in files:
        parts = f.rel.split("/")
        if len(parts) == 2:
            out.setdefault(parts[0], set()).add(parts[1])
    return {t: names for t, names in out.items() if names & {"result.json", "params.json"}}


def _newest_state(files: list[Entry]) -> list[Entry]:
    states = sorted((f for f in files if "/" not in f.rel and f.rel.startswith("experiment_state-")
                     and f.rel.endswith(".json")), key=lambda f: f.rel)
    return states[-1:]


def _sweep(root: str, exp: str, files: list[Entry], data: dict[str, bytes | None], remote: bool,
           now: float) -> Sweep:
    info = _json(data.get(f"{exp}/sweep.json"))
    info = info if isinstance(info, dict) else {}
    trials = _trial_files(files)
    sizes = {f.rel: f.size for f in files if f.rel.endswith("/result.json")}
    for stale in left_behind({t: sizes.get(f"{t}/result.json", 0) for t in trials}):
        del trials[stale]  # a start an interruption cut short; --resume ran the trial again in another folder
    endings = [trial_ending(_json(data.get(f"{exp}/{t}/{STATUS_FILE}")),
                            _last_row(data.get(f"{exp}/{t}/result.json"))) for t in trials]
    done = sum(e is not None for e in endings)
    errored = sum(e == ERRORED for e in endings)
    planned = info.get("planned_trials")
    if not isinstance(planned, int):
        state_doc = next((_json(data.get(f"{exp}/{f.rel}")) for f in _newest_state(files)), None)
        known = state_doc.get("trial_data") if isinstance(state_doc, dict) else None
        planned = len(known) if isinstance(known, list) else 0
    planned = max(planned, len(trials))
    # the sweep's activity: its trials' files (a later `gptsweep analyze` writes only outputs at the top)
    times = [f.mtime for f in files if f.mtime is not None and ("/" in f.rel or f.rel not in _OUTPUTS)]
    rows = [_last_row(data.get(f"{exp}/{t}/result.json")) for t in trials]
    times += [float(r["timestamp"]) for r in rows if r and isinstance(r.get("timestamp"), (int, float))]
    newest = max(times) if times else None
    started = _parse_time(info.get("started"))
    command = info.get("command") if isinstance(info.get("command"), str) else None
    holder = None if remote or ".old-" in exp else lock_holder(root, exp)
    host, pid = info.get("host"), info.get("pid")
    if holder is not None:
        state = "running"
        pid = holder.get("pid", pid)
        command = command or holder.get("command")
        started = started or _parse_time(holder.get("started"))
    elif done >= planned and planned > 0:
        state = "failed" if errored else "finished"
    elif remote and newest is not None and now - newest < RECENT_S:
        state = "running?"
    else:
        state = "interrupted"
    end = now if state.startswith("running") else newest
    wall = max(0.0, end - started) if started is not None and end is not None else None
    resume = resume_command(command, exp) if state == "interrupted" and ".old-" not in exp else None
    folder = f"{root.rstrip('/')}/{exp}" if remote else str(Path(local_path(root)) / exp)
    return Sweep(exp=exp, folder=folder, state=state, done=done, planned=planned, errored=errored,
                 started=_iso(started), wall_s=None if wall is None else round(wall, 1), updated=_iso(newest),
                 command=command, resume=resume, host=host if isinstance(host, str) else None,
                 pid=pid if isinstance(pid, int) else None)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s < 86400 else f"{s // 86400}d{s % 86400 // 3600:02d}h"


def table(sweeps: list[Sweep]) -> str:
    """The sweeps as aligned lines: experiment, state, trials done of planned, started, wall time, command."""
    lines = [("sweep", "state", "trials", "started", "wall", "command")]
    for s in sweeps:
        state = s.state
        if s.state.startswith("running") and (s.host or s.pid):
            state += f" on {s.host or '?'} (pid {s.pid if s.pid is not None else '?'})"
        if s.errored:
            state += f", {s.errored} errored"
        started = s.started[:16].replace("T", " ") if s.started else "?"
        command = s.command or "?"
        if s.resume:
            command += f"  (resume: {s.resume})"
        lines.append((s.exp, state, f"{s.done}/{s.planned}", started, duration(s.wall_s), command))
    widths = [max(len(row[i]) for row in lines) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5] for row in lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gptsweep ls", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", nargs="?", default="results",
                   help="the folder (a --storage) or s3://bucket/prefix that holds the sweeps (default: results)")
    p.add_argument("--json", action="store_true", help="print a JSON list (one object per sweep)")
    a = p.parse_args(argv)
    try:
        found = sweeps_under(a.root)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps([asdict(s) for s in found], indent=2))
    elif not found:
        print(f"no sweeps under {a.root}")
    else:
        print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
