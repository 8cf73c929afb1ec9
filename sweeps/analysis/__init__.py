"""The analysis layer: results on disk -> DataFrames, verdicts, plots and report.md.

`sweeps/analyze.py` is the command and holds the two entry points the rest of the project uses
(`analyze`, `load_results`); the modules here are its parts:

- `load`: trial folders and hand-made logs -> `Results` (trials, history, per-iteration loss);
- `metrics`: overfitting classes, loss noise, power-law fit, compute accounting;
- `verdicts`: the chapter's expectations per experiment, judged on the data;
- `plots`: the PNG figures (matplotlib, Agg backend);
- `report`: report.md and the terminal summary.
"""
