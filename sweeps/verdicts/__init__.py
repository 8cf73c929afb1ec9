"""The verdicts layer: each expectation of the chapter as a measurement, and the one function that judges them.

`stats.py` is the noise model (per-seed samples, the tests, the outcome rule and the level of a
sequential design); `verdict.py` a `Verdict` and the `Runs` a check works on; `checks.py` what
each check of an experiment file measures (`CHECKS`); `search.py`, `scaling.py` and `lr_law.py`
the checks and fits of a search and of model size; `judging.py` the one judging function, that
the report, the looks over seeds and the early stopping's rungs all use; `sequential.py` the looks
over a range of seeds.

May import: results, experiment (and gptcore's record). Never Ray or torch.
"""
