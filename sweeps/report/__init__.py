"""The report layer: a judged experiment (`analysis.Analysis`) written for people.

`analysis.py` holds what the report says, computed once (the verdicts, the fits, a search's
facts, the compute); `markdown.py` is report.md; `summary.py` the terminal's summary and the
formatters both share; `plots.py` the figures; `tables.py` the project's one table printer (text
and Markdown); `write.py` writes the files of an analysis into a sweep's folder. Nothing here
judges: each strategy judges its results into an Analysis (sweeps/strategies/).

May import: verdicts, results, experiment. Never Ray or torch.
"""
