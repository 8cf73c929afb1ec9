"""The results layer: what a sweep (or a hand-made log) leaves on disk, read into pandas.

`load.py` reads a sweep's folder (Ray's result.json and experiment state, gptcore's files, the
sweep's status.json) without Ray; `logs.py` reads nanoGPT-style training logs into the same
`Results`; `frames.py` builds the three frames (trials, history, per-iteration loss) with its one
builder of a trial's rows (`trial_frames`), also used to judge trials while a sweep runs;
`trial.py` is a sweep's record of a trial (how it ended: `ending`, the one rule; the report rows
it sends Ray); `metrics.py` the plain numbers (overfitting class, loss noise, compute); `files.py`
reading raw JSON and text; `decisions.py` the sweep's decision log (every decision in the design's
order, and the environment); `compare.py` two sweeps side by side (`gptsweep diff`).

May import: experiment (and gptcore's record and config). Never Ray or torch: a report can be made
on any machine that holds a copy of the results.
"""
