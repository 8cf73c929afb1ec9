"""The path of the sweep command through the project's modules: a trace of the calls, counted.

    .venv/bin/python scripts/call_path.py [--out FILE] -- exp1 --profile smoke --seeds 2

Runs the sweep command in this process (results in a temporary folder) and follows its
arguments through the project's own code (gptcore/, sweeps/) in the driver's main thread: a call from
one of our functions into another is on the path when it is handed the command line, or a value made
from it (`trace`). A *stay* is a stretch of that path in one module; the script prints the modules in
the order of their stays, how many stays and modules there were, and how many times the path came
back to a module it had already left (stays minus modules). Calls that Ray or Tune make into our code
(a scheduler's hooks, a callback) are not the command's path. `--out` writes the stays as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = tuple(str(REPO / p) + os.sep for p in ("gptcore", "sweeps"))


# the layers of sweeps/, lowest first (sweeps/__init__.py), and where the modules of the flat layout before them
# (up to 381a2b1) belong, so that a path through either layout is measured the same way
LAYERS = ("gptcore", "experiment", "results", "verdicts", "report", "storage", "view", "strategies", "tune", "command")
FLAT = {"specs": "experiment", "spaces": "experiment", "plan": "strategies", "sampling": "strategies",
        "scheduler": "strategies", "seeding": "strategies", "searcher": "strategies", "launch": "tune",
        "trainable": "tune", "callbacks": "tune", "live_tune": "tune", "resources": "tune", "cluster": "tune",
        "live": "view", "storage": "storage", "remote": "storage", "render": "report", "run": "command",
        "analyze": "command", "options": "command", "summary": "command", "listing": "command", "__main__": "command",
        "analysis.judgement": "report", "analysis.report": "report", "analysis.plots": "report",
        "analysis.pipeline": "command", "analysis.files": "results", "analysis.load": "results",
        "analysis.logs": "results", "analysis.results": "results", "analysis.metrics": "results"}


def layer(module: str) -> int:
    """The layer of a module (gptcore's the lowest); the flat layout's modules by where they went."""
    top, _, rest = module.partition(".")
    if top == "gptcore":
        return 0
    first = rest.split(".")[0]
    if first in LAYERS:
        return LAYERS.index(first)
    return LAYERS.index(FLAT.get(rest, "verdicts" if rest.startswith("analysis.") else "command"))


def module_of(filename: str) -> str | None:
    if not filename.startswith(OURS):
        return None
    rel = Path(filename).relative_to(REPO).with_suffix("")
    return ".".join(rel.parts)


def _members(obj) -> list:
    """The values one step inside an object: a dataclass's or an instance's attributes, a container's items."""
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return []
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    d = getattr(obj, "__dict__", None)
    return list(d.values()) if isinstance(d, dict) else []


def trace(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The modules of the arguments' path, one per stay, and its calls from one module into another.

    A call is on the path when one of its arguments is the command line, a value made from it (what an
    earlier call on the path returned, or an argument it was given) or a member of one. Each call from one
    function into another counts once, the first time it is made (a loop over trials is one step of the
    path, as a reader follows the code); the modules of those calls, and of the callers they come back
    to, in order, are the stays.
    """
    stays: list[str] = []
    calls: list[tuple[str, str]] = []  # (caller's module, callee's module) of each call on the path, in order
    keep: list = []  # the values on the path (held, so that their ids stay theirs)
    seen: set[int] = set()
    on_path: set[int] = set()  # frames of calls on the path (their return values join it)
    edges: set = set()  # (caller's code, callee's code) already followed
    main_thread = threading.main_thread()

    def taint(value, depth: int = 2) -> None:
        if id(value) in seen and depth < 2:
            return
        if id(value) not in seen:
            seen.add(id(value))
            keep.append(value)
        if depth:
            for m in _members(value):
                taint(m, depth - 1)

    def tainted(value) -> bool:
        return id(value) in seen and not isinstance(value, (bool, int, type(None)))

    def stay(module: str) -> None:
        if not stays or stays[-1] != module:
            stays.append(module)

    taint(argv)

    def profile(frame, event, arg):
        if threading.current_thread() is not main_thread:
            return
        if event == "call":
            mine = module_of(frame.f_code.co_filename)
            caller = frame.f_back
            theirs = module_of(caller.f_code.co_filename) if caller is not None else None
            if mine is None or theirs is None:
                return
            code = frame.f_code
            args = [frame.f_locals.get(n) for n in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]]
            if any(tainted(a) or any(tainted(m) for m in _members(a)) for a in args):
                on_path.add(id(frame))
                for a in args:
                    taint(a)
                edge = (caller.f_code, code)
                if edge not in edges:  # each call from one function into another once, as a reader follows it
                    edges.add(edge)
                    stay(theirs)
                    stay(mine)
                    if theirs != mine:
                        calls.append((theirs, mine))
        elif event == "return" and id(frame) in on_path:
            on_path.discard(id(frame))
            taint(arg)

    from sweeps.__main__ import main

    sys.setprofile(profile)
    try:
        main(argv)
    finally:
        sys.setprofile(None)
    return stays, calls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="write the stays as JSON here")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the sweep command's arguments (after --)")
    a = p.parse_args()
    argv = [x for x in a.command if x != "--"] or ["exp1", "--profile", "smoke", "--seeds", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        if "--storage" not in argv:
            argv += ["--storage", tmp]
        stays, calls = trace(argv)
    modules = list(dict.fromkeys(stays))
    up = [(a, b) for a, b in calls if layer(b) > layer(a)]
    print("path:", " -> ".join(m.split(".", 1)[-1] for m in stays))
    print(f"{len(modules)} modules in {len(stays)} stays; {len(stays) - len(modules)} returns to a module already "
          "left; "
          f"{len(set(calls))} distinct calls between modules, {len(set(up))} of them up a layer"
          + (f": {', '.join(sorted(f'{a} -> {b}' for a, b in set(up)))}" if up else ""))
    if a.out:
        Path(a.out).write_text(json.dumps({"argv": argv, "stays": stays, "modules": modules, "calls": calls},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
