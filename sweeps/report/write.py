"""Writing a judged experiment into its folder: the tables, verdicts.json (scaling.json), the plots and report.md.

    trials.csv, history.csv, curves.csv   the pandas frames (docs/outputs.md)
    verdicts.json                         every verdict, `Verdict.to_json`
    scaling.json                          exp5's fits, where the file asks for them
    plots/*.png, report.md                the figures and the report that links them

JSON is written atomically (a reader never sees half a file), with NaN and infinities as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from sweeps.report.analysis import Analysis
from sweeps.report.markdown import render_report
from sweeps.report.plots import make_plots


def write(a: Analysis, out_dir: Path) -> Path:
    """Write the analysis's files into out_dir (module docstring); the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a.res.trials.to_csv(out_dir / "trials.csv", index=False)
    a.res.history.to_csv(out_dir / "history.csv", index=False)
    a.grouped.to_csv(out_dir / "curves.csv", index=False)
    write_json(out_dir / "verdicts.json", [v.to_json() for v in a.verdicts])
    fits = a.scaling[0].to_json() if a.scaling is not None else {}
    if a.lr_scaling is not None:
        fits["learning_rate"] = a.lr_scaling.to_json()
    if fits:
        write_json(out_dir / "scaling.json", fits)
    plots = make_plots(a, out_dir)
    made = {p for _, p in plots}
    for old in (out_dir / "plots").glob("*.png"):  # figures of an earlier analysis that this one did not draw
        if old not in made:
            old.unlink()
    report = out_dir / "report.md"
    report.write_text(render_report(a, plots, out_dir) + "\n", encoding="utf-8")
    return report


def write_json(path: Path, data) -> None:
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
