"""sweeps: the tutorial's experiments as Ray Tune sweeps, in layers that import only downwards.

    command/      the commands: gptsweep (parse, plan, run, the end of a sweep), analyze, ls
    tune/         the Ray wiring: starting Ray, the Tuner, the trainable, callbacks, resources, cluster
    strategies/   grid and search: their plans, Tune searchers and schedulers, views and judging
    view/         the live view: state and text, no Ray
    trackers/     a sweep's trials and verdicts as W&B or MLflow runs (live, or a finished sweep)
    storage/      where results go: local folders and their lock, S3
    report/       an Analysis, report.md, plots and the files written
    verdicts/     the checks, their statistics and the one judging function
    results/      reading a sweep's folder (or logs) into pandas; a trial's record
    experiment/   the experiment files and their data model

Each package's __init__ says what it owns and which layers it may import (tests/test_layers.py
checks it). gptcore, the trainer, is below all of them and never imports ray.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types

# Modules of earlier versions, by the names a sweep's saved state (tuner.pkl) still uses: resolved
# to where their contents live now, so that `--resume` of a sweep started before the re-layout works.
_MOVED = {
    "sweeps.scheduler": ("sweeps.strategies.halving", "sweeps.strategies.base", "sweeps.strategies.asha"),
    "sweeps.seeding": ("sweeps.strategies.seeds",),
    "sweeps.searcher": ("sweeps.strategies.study",),
    "sweeps.sampling": ("sweeps.strategies.sampling",),
    "sweeps.live_tune": ("sweeps.tune.live",),
    "sweeps.callbacks": ("sweeps.tune.callbacks",),
    "sweeps.trainable": ("sweeps.tune.trainable",),
    "sweeps.specs": ("sweeps.experiment.specs",),
    "sweeps.spaces": ("sweeps.experiment.files",),
}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in _MOVED else None

    def create_module(self, spec):
        module = types.ModuleType(spec.name, f"moved: see {', '.join(_MOVED[spec.name])}")

        def lookup(attr: str):
            for new in _MOVED[spec.name]:
                found = importlib.import_module(new)
                if hasattr(found, attr):
                    return getattr(found, attr)
            raise AttributeError(f"module {spec.name!r} has no attribute {attr!r}")

        module.__getattr__ = lookup
        return module

    def exec_module(self, module):
        pass


sys.meta_path.append(_Moved())
