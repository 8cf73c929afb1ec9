"""The command layer: what a user types, parsed once, and the steps it runs.

`sweep.py` is `gptsweep EXP` (parse, plan, run, summarise) with `options.py` its options, typed
and checked once; `finish.py` the end of a sweep (its summary, report and checkpoints);
`pipeline.py` the analysis as read → judge → write, for a folder, a bucket or logs;
`analyze.py` is `gptsweep analyze`, `ls.py` is `gptsweep ls`, `diff.py` is `gptsweep diff` (two sweeps
compared: `results.compare`, with the verdicts judged here where a folder has none).

May import: every layer below (tune, strategies, view, trackers, storage, report, verdicts,
results, experiment) and gptcore. Nothing imports it but the entry points (sweeps/__main__.py, run.py,
analyze.py).
"""
