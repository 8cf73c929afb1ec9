"""The view layer: the live view of a sweep, as events in and text out.

`state.py` holds a sweep's state as its events arrive (trials added, reporting, waiting at a
rung, ended; decisions; looks) and renders it; a strategy adds its own `Panel` (a search's block).
`outputs.py` shows a View on a terminal (redrawn in place) or as plain lines (a pipe, CI);
`text.py` writes its numbers. The same events always give the same text: no clock, no Ray.

May import: results (a trial's statuses). The Tune side that feeds it is sweeps/tune/live.py.
"""
