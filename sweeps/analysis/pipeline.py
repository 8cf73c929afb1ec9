"""The analysis of one experiment as a pipeline: read → judge → render → write.

- read: `load.load_sweep` (a sweep's folder) or `logs.load_logs` (hand-made training logs) → `Results`;
- judge: `judgement.judge` → an `Analysis`, every verdict and every fit computed once;
- render: `report.render_report`, `report.summary_text` and `plots.make_plots`, functions of the Analysis;
- write: `write` → trials.csv, history.csv, curves.csv, verdicts.json (scaling.json), plots/*.png, report.md.

`analyse_sweep` is the whole pipeline for a sweep's folder: `gptsweep analyze` and the end of a
sweep both call it.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from gptcore.errors import UserError

from ..spaces import Experiment, experiment_names, load_experiment
from .files import read_json
from .judgement import Analysis, judge
from .load import load_sweep
from .logs import load_logs
from .plots import make_plots
from .report import render_report
from .results import Results


def read_sweep_info(exp_dir: Path) -> dict[str, Any] | None:
    """sweep.json (how the sweep was started), or None when absent or unreadable."""
    return read_json(Path(exp_dir) / "sweep.json")


def experiment_of(exp_dir: Path, name: str | None = None) -> Experiment | None:
    """The experiment file a folder's verdicts come from.

    `name` (exp1 ... or a YAML path) when given; else the copy of the file the sweep saved
    beside its results (`<exp_dir>/<exp>.yaml`, so a later edit of the file does not change an
    old sweep's verdicts); else the shipped file named like the folder (`exp1`, `exp1.old-...`).
    """
    if name:
        return load_experiment(name)
    info = read_sweep_info(exp_dir) or {}
    exp = info.get("exp")
    if isinstance(exp, str) and (Path(exp_dir) / f"{exp}.yaml").is_file():
        try:
            return load_experiment(Path(exp_dir) / f"{exp}.yaml")
        except UserError as e:
            if exp not in experiment_names():
                raise
            # a copy written by an older version of this program: the shipped file of that name
            print(f"note: the sweep's copy of its experiment file cannot be read by this version ({e}); "
                  f"judging it by the shipped {exp}", file=sys.stderr)
            return load_experiment(exp)
    m = re.match(r"^(exp\d+)", Path(exp_dir).name)
    if m and m.group(1) in experiment_names():
        return load_experiment(m.group(1))
    return None


def write(a: Analysis, out_dir: Path) -> Path:
    """Write the analysis's files into out_dir (module docstring); the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a.res.trials.to_csv(out_dir / "trials.csv", index=False)
    a.res.history.to_csv(out_dir / "history.csv", index=False)
    a.grouped.to_csv(out_dir / "curves.csv", index=False)
    _write_json(out_dir / "verdicts.json", [v.to_json() for v in a.verdicts])
    fits = a.scaling[0].to_json() if a.scaling is not None else {}
    if a.lr_scaling is not None:
        fits["learning_rate"] = a.lr_scaling.to_json()
    if fits:
        _write_json(out_dir / "scaling.json", fits)
    plots = make_plots(a, out_dir)
    made = {p for _, p in plots}
    for old in (out_dir / "plots").glob("*.png"):  # figures of an earlier analysis that this one did not draw
        if old not in made:
            old.unlink()
    report = out_dir / "report.md"
    report.write_text(render_report(a, plots, out_dir) + "\n", encoding="utf-8")
    return report


def analyse(res: Results, exp: Experiment | None, out_dir: Path,
            info: dict[str, Any] | None = None) -> tuple[Analysis, Path]:
    """Judge `res` and write the analysis into out_dir: (the analysis, its report.md)."""
    a = judge(res, exp, info)
    return a, write(a, out_dir)


def analyse_sweep(exp_dir: Path, exp: str | None = None) -> tuple[Analysis, Path]:
    """The whole pipeline for a sweep's folder, written in place: (the analysis, its report.md).

    `exp` (exp1 ... exp5, or an experiment file) selects the verdicts; by default `experiment_of`
    finds them. Raises UserError when the folder is missing or holds no trials.
    """
    exp_dir = Path(exp_dir)
    res = load_sweep(exp_dir)
    return analyse(res, experiment_of(exp_dir, exp), exp_dir, read_sweep_info(exp_dir))


def analyse_logs(files: list[Path], exp: Experiment | None, out_dir: Path) -> tuple[Analysis, Path]:
    """The whole pipeline for hand-made training logs, written into out_dir."""
    return analyse(load_logs(files), exp, out_dir)


def _write_json(path: Path, data) -> None:
    """Write JSON atomically (a reader never sees half a file); NaN and infinities as null."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
