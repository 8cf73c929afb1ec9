"""The experiment layer: the five experiment files of `search_spaces/` as data, validated on load.

`files.py` reads and checks an experiment file and the shared profiles (unknown keys, wrong
types, impossible configs and verdicts naming no run are one-line errors); `specs.py` is its data
model (frozen dataclasses: the experiment, its profiles, its verdict specs, a range of seeds, the
metric every sweep ranks by). What an experiment *is*, not how it runs: the strategies plan it,
the verdicts judge it.

May import: gptcore's config (nothing else of the project).
"""
