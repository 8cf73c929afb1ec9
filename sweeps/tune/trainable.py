"""The Ray Tune trainable: gptcore's run lifecycle (`gptcore.run.Run`) as one trial, and a sink that reports to Tune.

This is the only module that calls Tune's session API (`tune.report`, `tune.get_checkpoint`,
`tune.get_context`); Ray has renamed that API several times, so a rename is a one-file change.

A trial's config is flat: `name` (and `stage` in a search) plus TrainConfig values (see
docs/outputs.md). The trial reports a `sweeps.results.trial.report_row` at every evaluation, with a
checkpoint that carries the run's history, so a crashed trial restarts from its last evaluation
(on any node) and the scheduler compares trials at its rungs (its time attribute is `iter`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from ray import tune

from gptcore import record
from gptcore.config import build_config
from gptcore.data import install_dataset
from gptcore.errors import UserError
from gptcore.run import HISTORY_FILES, Run
from sweeps.experiment.specs import expand_shape
from sweeps.results.trial import divergence_row, report_row

NON_CONFIG_KEYS = ("name", "stage")  # the run's label and, in a search, search or confirm
SAMPLE_CHARS = 300


def _synced_dir() -> Path:
    """The folder whose files Ray uploads to the trial's storage folder, from the node the trial runs on.

    That is the trial's working directory, where Ray puts the trial's process (RAY_CHDIR_TO_TRIAL_DIR,
    on by default), synced at every checkpoint. `get_trial_dir()` is not it: in Ray 2.60 it is that
    folder only in a reused worker, and in a fresh one the driver's local staging folder, which exists
    on the driver's machine alone (what a trial on another node writes there never reaches storage;
    on the driver's machine it overwrites the newer files of a retried trial).
    """
    if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") != "0":
        return Path.cwd()
    from ray.train._internal.session import get_session  # private; only when the chdir is turned off

    return Path(get_session().storage.trial_working_directory)


def _trial_config(config: dict[str, Any], trial_dir: Path, data_dir: str):
    values = {k: v for k, v in config.items() if k not in NON_CONFIG_KEYS}
    values = expand_shape(values, "trial config")
    values.update(out_dir=str(trial_dir), data_dir=data_dir, init_from="scratch")
    return build_config(values, where=f"trial {config.get('name', '')}")


@contextlib.contextmanager
def _candidates(checkpoint) -> Iterator[list[Path]]:
    """The ckpt.pt files to resume from, newest first: the checkpoint Tune gives, then (local storage) the
    older ones Ray kept beside it (num_to_keep 2), in case the newest is damaged."""
    if checkpoint is None:
        yield []
        return
    path = Path(checkpoint.path)
    if path.is_dir():
        older = sorted((p for p in path.parent.glob("checkpoint_*") if p.is_dir() and p.name < path.name),
                       reverse=True)
        yield [p / "ckpt.pt" for p in (path, *older)]
        return
    with checkpoint.as_directory() as d:  # remote storage: only the one Tune gives, downloaded
        yield [Path(d) / "ckpt.pt"]


class TuneReporter:
    """A run sink: a report row and a checkpoint to Tune at every evaluation, the trial's end with its last row.

    The evaluation at max_iters is held back until the run's end event, so that the checkpoint of
    the last report carries the whole log and sample.txt is written before Ray sees the trial end.
    """

    def __init__(self, run: Run):
        self.run = run
        t = run.trainer
        self.constants = {"n_params": t.model.get_num_params(), "max_iters": t.cfg.max_iters}
        self.last_eval: dict[str, Any] | None = None

    def log(self, m: dict[str, Any]) -> None:
        kind, n, last = m["event"], self.constants["n_params"], self.constants["max_iters"]
        if kind == record.EVAL:
            self.last_eval = m
            if m["iter"] < last:
                self._report(report_row(m, n, last))
        elif kind == record.END and m["status"] == record.COMPLETED and self.last_eval is not None:
            self._report(report_row(self.last_eval, n, last, record.COMPLETED))
        elif kind == record.END and m["status"] == record.DIVERGED:
            self._report(divergence_row(m, self.run.trainer.tokens_per_iter, n, last))

    def _report(self, row: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            self.run.trainer.save(Path(tmp) / "ckpt.pt")
            for name in HISTORY_FILES:  # flushed line by line, so complete up to this evaluation
                shutil.copyfile(self.run.out_dir / name, Path(tmp) / name)
            # Ray copies the checkpoint to storage, and the trial's files (train.log, ...) with it
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))

    def close(self) -> None:
        pass


def train_gpt(config: dict[str, Any], dataset: dict[str, bytes] | None = None) -> None:
    """Run one trial. `dataset` is the prepared dataset's files (`gptcore.data.dataset_files`)."""
    ctx = tune.get_context()
    # the cluster launcher exports OMP_NUM_THREADS=1 on every node; use the CPUs this trial holds
    cpus = ctx.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    trial_dir = _synced_dir()
    trial_dir.mkdir(parents=True, exist_ok=True)
    if dataset is None:
        raise UserError("the trainable needs the dataset's files: build it with tune.with_parameters")
    cfg = _trial_config(config, trial_dir, install_dataset(dataset, config.get("dataset", "shakespeare_char")))
    facts = {"name": config.get("name", ""), "trial_id": ctx.get_trial_id(),
             # which GPUs Ray gave this process: for the packing tests
             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    run = Run(cfg, stream=None, facts=facts, sample_chars=SAMPLE_CHARS)
    try:
        with _candidates(tune.get_checkpoint()) as candidates:
            run.start(candidates)
        for _ in run.events([TuneReporter(run)], eval_at_start=not run.resumed, save_best=False):
            pass
    finally:
        run.close()


def actor_label(exp: str, config: dict[str, Any], trial_id: str, reused: bool = False) -> str:
    """What the dashboard's Actors page shows of a trial's actor (its Repr): `exp1 baseline s1337 trial 1a2b3_00000`."""
    seed = config.get("seed")
    label = f"{exp} {config.get('name', 'trial')}" + (f" s{seed}" if seed is not None else "") + f" trial {trial_id}"
    # Ray records an actor's repr once, when it starts: a reused actor goes on to train other trials
    return label + (" (its first trial; the actor is reused)" if reused else "")


def trial_class(exp: str, dataset: dict[str, bytes], resources: dict[str, float], reused: bool = False) -> type:
    """The trainable that Tune makes each trial's actor of: `train_gpt` as a class named `GptTrial` (the
    Actors page's Class) whose repr names the experiment, run, seed and trial id (`actor_label`).

    A function trainable would be Tune's `ImplicitFunc`, shown with the function's name alone.
    """
    from ray.tune.trainable.function_trainable import wrap_function

    base = wrap_function(tune.with_resources(tune.with_parameters(train_gpt, dataset=dataset), resources))

    class GptTrial(base):
        _exp, _reused = exp, reused

        def __repr__(self) -> str:
            return actor_label(self._exp, self.config or {}, self.trial_id, self._reused)

    GptTrial.__qualname__ = "GptTrial"  # the Class column shows the qualified name, not `trial_class.<locals>...`
    return GptTrial
