"""`gptsweep diff A B`: are two sweeps of one experiment the same to the last digit, and if not, where they part.

    gptsweep diff results/exp1 other/results/exp1     # two sweep folders
    gptsweep diff results/exp1 s3://bucket/prefix/exp1
    gptsweep diff A B --json                          # one JSON object, for scripts

Trials are matched by run name, seed and stage, and compared exactly: configuration, status, and
train and val loss at every evaluation. When they differ, the first decision where the sweeps part
is found in their decision logs (decisions.jsonl, walked in the design's order; without a log on
one side, the first trial that differs instead), then every verdict that changed (outcome, effect,
interval, side by side; a folder without verdicts.json is judged as `gptsweep analyze` judges it,
and nothing is written into it), then what differs in their environments (the driver's, each
trial's device, dtype and threads, how each sweep was started). Exit status: 0 identical, 1 they
differ, 2 a mistake (one line: a missing path, a folder without a sweep, two experiments).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from gptcore.errors import UserError
from sweeps.command.pipeline import experiment_of, fetch, judge
from sweeps.results.compare import (
    Comparison,
    DecisionDiff,
    EnvDiff,
    SweepFacts,
    TrialDiff,
    compare,
    plain,
    read_facts,
)
from sweeps.results.load import load_sweep, read_sweep_info, trial_dirs
from sweeps.storage.local import is_remote

USAGE = __doc__.split("\n\n")[1]
WIDTH = 100


# ------------------------------------------------------------------------------------------------
# reading the two sides


def locate(where: str) -> Path:
    """The local folder of a sweep named on the command line (a bucket's is copied here first, checkpoints left
    out); a path that is not a sweep's folder is a UserError that says what to give instead."""
    folder = fetch(where, quiet=True) if is_remote(where) else Path(where)
    if not folder.exists():
        raise UserError(f"no folder {where}: give a sweep's folder (e.g. results/exp1) or s3://bucket/prefix/exp1")
    if not folder.is_dir():
        raise UserError(f"{where} is a file: give a sweep's folder (e.g. results/exp1), the one that holds sweep.json")
    if not (folder / "sweep.json").is_file() and not trial_dirs(folder):
        inner = sorted(d.name for d in folder.iterdir() if d.is_dir() and (d / "sweep.json").is_file())
        hint = (f"it holds the sweeps {', '.join(inner[:4])}: give one of them, e.g. {where.rstrip('/')}/{inner[0]}"
                if inner else "give a sweep's folder (e.g. results/exp1; `gptsweep ls` lists them)")
        raise UserError(f"{where} holds no sweep (no sweep.json, no trial folders): {hint}")
    return folder


def side(where: str, folder: Path) -> SweepFacts:
    """One sweep's facts, its verdicts judged here where it has no verdicts.json."""
    try:
        res = load_sweep(folder)
    except UserError:
        raise UserError(f"{where} holds no trials yet (a sweep that has not started one): diff a sweep that ran, "
                        "or wait for its first trial") from None
    facts = read_facts(folder, res, where)
    if facts.verdicts is None:  # judged as `gptsweep analyze` would, nothing written
        analysis = judge(res, experiment_of(folder), facts.info or None)
        facts.verdicts = plain([v.to_json() for v in analysis.verdicts])
    return facts


def compare_paths(a: str, b: str) -> Comparison:
    """The comparison of the sweeps at `a` and `b` (folders or bucket URIs); UserError for a mistake."""
    folders = locate(a), locate(b)
    xa, xb = ((read_sweep_info(f) or {}).get("exp") for f in folders)
    if isinstance(xa, str) and isinstance(xb, str) and xa != xb:  # said before anything is loaded or judged
        raise UserError(f"{a} is a sweep of {xa} and {b} one of {xb}: diff compares two sweeps of one experiment")
    fa, fb = side(a, folders[0]), side(b, folders[1])
    exp = experiment_of(fa.folder)
    return compare(fa, fb, exp.run_names if exp is not None else [])


# ------------------------------------------------------------------------------------------------
# the text


def fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def number(x: float, digits: int) -> str:
    return f"{x:.{digits}g}"


def pair(x: Any, y: Any) -> tuple[str, str]:
    """Two values as text, numbers with as many digits as tell them apart (all 17 where only the last differs)."""
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) and x != y:
        if isinstance(x, int) and isinstance(y, int):
            return str(x), str(y)
        for digits in range(4, 17):
            if number(x, digits) != number(y, digits):
                return number(x, digits), number(y, digits)
        return repr(float(x)), repr(float(y))  # the shortest texts that read back as each value
    return value(x), value(y)


def value(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else number(x, 6)
    if isinstance(x, (list, tuple)):
        items = [value(v) for v in x]
        return "[" + ", ".join(items[:4] + ([f"... {len(items)} in all"] if len(items) > 4 else [])) + "]"
    if isinstance(x, dict):
        more = ", ..." if len(x) > 4 else ""
        return "{" + ", ".join(f"{k} {value(v)}" for k, v in list(x.items())[:4]) + more + "}"
    return str(x)


def field_text(path: str, x: Any, y: Any) -> str:
    """`config learning_rate 0.00123 vs 0.00456`; lists by what only one side holds, or by their order."""
    if isinstance(x, list) and isinstance(y, list):
        try:
            only_a, only_b = [v for v in x if v not in y], [v for v in y if v not in x]
        except TypeError:
            only_a = only_b = []
        if only_a or only_b:
            parts = [f"{value(only_a)} only in A" if only_a else "", f"{value(only_b)} only in B" if only_b else ""]
            return f"{path} {'; '.join(p for p in parts if p)}"
        return f"{path} another order: {value(x)} vs {value(y)}"
    sx, sy = pair(x, y)
    return f"{path} {sx} vs {sy}"


def decision_head(d: DecisionDiff) -> str:
    rec = d.a or d.b or {}
    head = f"{d.kind} {d.trial}" if d.trial else f"{d.kind} {value(d.key)}"
    return head + (f" at {value(rec['step'])}" if "step" in rec else "")


def decision_text(d: DecisionDiff) -> str:
    """`rung t004 at 10: continue (2.31 vs cutoff 2.28) vs stop (2.33 vs cutoff 2.28)`, `ask t010: config ...`."""
    head = decision_head(d)
    if d.a is None or d.b is None:
        have, side_ = (d.a, "A") if d.b is None else (d.b, "B")
        rest = {k: v for k, v in have.items() if k not in ("kind", "key", "trial")}
        return f"{head}: only in {side_} ({value(rest)[1:-1]})"
    if {"decision", "value", "cutoff"} <= set(d.a) & set(d.b):
        va, vb = pair(d.a["value"], d.b["value"])
        ca, cb = pair(d.a["cutoff"], d.b["cutoff"])
        return f"{head}: {d.a['decision']} ({va} vs cutoff {ca}) vs {d.b['decision']} ({vb} vs cutoff {cb})"
    return f"{head}: " + "; ".join(field_text(*f) for f in d.fields)


def trial_lines(t: TrialDiff) -> list[str]:
    if t.only:
        return [f"{t.label}: only in {t.only}"]
    out = [f"{t.label}:"]
    out += [f"  config {field_text(k, x, y)}" for k, x, y in t.config]
    if t.status:
        out.append(f"  status {t.status[0]} vs {t.status[1]}")
    if t.evals:
        it, what, x, y = t.evals[0]
        if what == "evaluation":
            out.append(f"  evaluation at iter {value(it)}: only in {'A' if y is None else 'B'}")
        else:
            sx, sy = pair(x, y)
            out.append(f"  {what} at iter {value(it)}: {sx} vs {sy}")
        if len(t.evals) > 1:
            out.append(f"  ... and {len(t.evals) - 1} more loss(es) at later evaluations")
    return out


def verdict_lines(c: Comparison) -> list[str]:
    out = []
    for v in c.verdicts:
        out.append(f"  {v.check or '-'}: {v.expectation}")
        if v.a is None or v.b is None:
            have = v.a or v.b or {}
            out.append(f"    only in {'A' if v.b is None else 'B'}: {have.get('outcome')}")
            continue
        ea, eb = pair(v.a.get("effect"), v.b.get("effect"))
        sa, sb = pair(v.a.get("stderr"), v.b.get("stderr"))
        ia, ib = v.a.get("interval") or [None, None], v.b.get("interval") or [None, None]
        lo, hi = pair(ia[0], ib[0]), pair(ia[1], ib[1])
        rows = [("outcome", str(v.a.get("outcome")), str(v.b.get("outcome"))),
                ("effect", f"{ea} ± {sa}" if v.a.get("stderr") is not None else ea,
                 f"{eb} ± {sb}" if v.b.get("stderr") is not None else eb),
                ("interval", f"[{lo[0]}, {hi[0]}]" if v.a.get("interval") else "none",
                 f"[{lo[1]}, {hi[1]}]" if v.b.get("interval") else "none")]
        width = max(len(r[1]) for r in rows)
        out += [f"    {name:<9}{x:<{width}}  vs  {y}" for name, x, y in rows]
        rest = [f for f in v.fields if f not in ("outcome", "effect", "stderr", "interval")]
        if rest:
            out.append(f"    also: {', '.join(rest)}")
    return out


def summary(c: Comparison) -> list[str]:
    def line(name: str, f: SweepFacts, i: int) -> str:
        log = "decision log" if f.log is not None else "no decision log"
        return (f"{name}: {f.where} ({f.info.get('exp', 'no sweep.json')}, {c.n_trials[i]} trials, "
                f"{c.n_evals[i]} evaluations, {log})")

    return [line("A", c.a, 0), line("B", c.b, 1)]


def env_texts(e: EnvDiff) -> tuple[str, str]:
    """Each side's values (`bfloat16 (24 trials)`); a long prefix that every value shares is left out, so that a
    line of 100 columns still shows where they differ."""
    values = list(e.a) + list(e.b)
    common = values[0]
    for v in values[1:]:
        while not v.startswith(common):
            common = common[:-1]
    # cut before the word ahead of the first difference: `...--storage /tmp/r0` rather than `.../tmp/r0`
    cut = common.rfind(" ", 0, max(0, common.rstrip().rfind(" "))) + 1 if len(common) > 24 and max(
        map(len, values)) > 40 else 0

    def side_(counts: dict[str, int]) -> str:
        if not counts:
            return "none"
        return ", ".join(("..." if cut else "") + v[cut:] + (f" ({n} trial{'s' if n > 1 else ''})" if e.per_trial
                                                             else "") for v, n in counts.items())

    return side_(e.a), side_(e.b)


def missing_log(c: Comparison) -> str:
    return {(False, True): "A", (True, False): "B"}.get(c.logs, "either")


def text(c: Comparison) -> str:
    out = summary(c)
    la, lb = c.logs
    if c.identical:
        dec = f"{c.n_decisions} decisions" if la and lb else f"decisions not compared (no log in {missing_log(c)})"
        ver = "every verdict" if c.n_verdicts[0] else "no verdicts"
        out.append(f"identical: {c.n_trials[0]} trials, {c.n_evals[0]} evaluations, {dec}, {ver}")
    else:
        kinds = [sum(1 for t in c.trials if x(t)) for x in (lambda t: t.only, lambda t: t.config,
                                                            lambda t: t.status, lambda t: t.evals)]
        parts = [f"{len(c.trials)} of {max(c.n_trials)} trials" + (
            " (" + ", ".join(f"{w} {n}" for n, w in zip(kinds, ("on one side only", "configuration", "status",
                                                                "losses")) if n) + ")" if c.trials else "")]
        if la and lb:
            parts.append(f"{len(c.decisions)} of {c.n_decisions} decisions")
        parts.append(f"{len(c.verdicts)} of {max(c.n_verdicts)} verdicts changed")
        out.append("they differ: " + ", ".join(parts))
        if la and lb and c.decisions:
            out.append(f"first decision where they part (of {len(c.decisions)} that differ):")
            out.append(f"  {decision_text(c.decisions[0])}")
        elif not (la and lb):
            out.append(f"no decision log in {missing_log(c)} (a sweep written before the log): the first trial that "
                       "differs instead")
        if c.trials:
            others = ", ".join(t.name for t in c.trials[1:6]) + (", ..." if len(c.trials) > 6 else "")
            more = f" (of {len(c.trials)}: {others})"
            out.append("first trial that differs" + (more if len(c.trials) > 1 else "") + ":")
            out += ["  " + x for x in trial_lines(c.trials[0])]
        if c.verdicts:
            out.append(f"verdicts that changed ({len(c.verdicts)} of {max(c.n_verdicts)}):")
            out += verdict_lines(c)
    if c.environment:
        out.append("environment:")
        for e in c.environment:
            x, y = env_texts(e)
            one = f"  {e.what}: {x} vs {y}"
            out += [one] if len(one) <= WIDTH else [f"  {e.what}:", f"    A {x}", f"    B {y}"]
    else:
        out.append("same environment")
    return "\n".join(fit(x) for x in out)


def to_json(c: Comparison) -> dict[str, Any]:
    """The comparison as one JSON object: the same facts as the text, every difference listed."""
    def sweep(f: SweepFacts, i: int) -> dict[str, Any]:
        return {"where": f.where, "exp": f.info.get("exp"), "trials": c.n_trials[i], "evaluations": c.n_evals[i],
                "decision_log": f.log is not None, "verdicts": c.n_verdicts[i]}

    def decision(d: DecisionDiff) -> dict[str, Any]:
        return {"kind": d.kind, "key": d.key, "trial": d.trial, "a": d.a, "b": d.b, "text": decision_text(d),
                "fields": [{"field": k, "a": x, "b": y} for k, x, y in d.fields]}

    def trial(t: TrialDiff) -> dict[str, Any]:
        return {"name": t.name, "seed": t.seed, "stage": t.stage, "only": t.only,
                "config": [{"field": k, "a": x, "b": y} for k, x, y in t.config],
                "status": list(t.status) if t.status else None,
                "evaluations": [{"iter": it, "field": f, "a": x, "b": y} for it, f, x, y in t.evals]}

    return plain({"identical": c.identical, "a": sweep(c.a, 0), "b": sweep(c.b, 1),
                  "decisions": {"compared": all(c.logs), "count": c.n_decisions, "differ": len(c.decisions),
                                "first": decision(c.decisions[0]) if c.decisions else None},
                  "trials": [trial(t) for t in c.trials],
                  "verdicts": [{"check": v.check, "expectation": v.expectation, "a": v.a, "b": v.b, "fields": v.fields}
                               for v in c.verdicts],
                  "environment": [{"what": e.what, "a": e.a, "b": e.b, "counts": "trials" if e.per_trial else "starts"}
                                  for e in c.environment]})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gptsweep diff", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="a sweep's folder (results/exp1) or s3://bucket/prefix/exp1")
    p.add_argument("b", metavar="B", help="the other sweep, of the same experiment")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    a = p.parse_args(argv)
    try:
        c = compare_paths(a.a, a.b)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(to_json(c), indent=2) if a.json else text(c))
    return 0 if c.identical else 1


if __name__ == "__main__":
    sys.exit(main())
