"""The analysis layer: results on disk -> DataFrames, verdicts, plots and report.md.

`sweeps/analyze.py` is the command (`gptsweep analyze`); the modules here are its parts:

- `load`: a sweep's folder -> `Results` (trials, history, per-iteration loss) and each trial's status;
- `logs`: hand-made nanoGPT-style training logs -> the same `Results`;
- `metrics`: overfitting classes, loss noise, power-law fit, compute accounting;
- `verdicts`: the checks an experiment file names (`CHECKS`), judged on the data;
- `plots`: the PNG figures (matplotlib figures of their own, no display needed);
- `report`: report.md and the terminal summary.
"""
