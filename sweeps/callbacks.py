"""Tune callbacks on the driver: what only the sweep knows of a trial, written where the analysis reads it.

- `TrialStatus` writes `status.json` (gptcore.record.STATUS_FILE) into a trial's folder when the
  trial ends: `completed` or `diverged` as its last report said (the trainer's own word), `stopped
  early` when the scheduler ended it before that, `errored` when Ray gave up on it. A trial that starts (again, after
  `--resume`) loses the file, so it always describes the latest attempt; a trial without one and
  without a final report was interrupted.
- `TrimCheckpoints`: a trial that ended keeps only its newest checkpoint (it needs no more).

Both write through the trial's storage filesystem, so they work the same on a local path, NFS or S3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

from gptcore import record

from .storage import is_remote, prune_checkpoints


def _fs_and_path(trial) -> tuple[Any, str]:
    return trial.storage.storage_filesystem, trial.storage.trial_fs_path


def write_status(trial, status: str, **facts: Any) -> None:
    """`status.json` in the trial's folder: {"status": ..., "iter": ..., ...} (iter: where it ended)."""
    fs, path = _fs_and_path(trial)
    last = trial.last_result or {}
    doc = {"status": status, "iter": last.get("iter"), **facts}
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{record.STATUS_FILE}") as f:
        f.write((json.dumps(doc) + "\n").encode())


class TrialStatus(tune.Callback):
    """Writes each trial's ending into its folder (module docstring)."""

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        fs, path = _fs_and_path(trial)
        from pyarrow.fs import FileType

        if fs.get_file_info(f"{path}/{record.STATUS_FILE}").type != FileType.NotFound:
            fs.delete_file(f"{path}/{record.STATUS_FILE}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        said = last.get("status")
        if said in (record.COMPLETED, record.DIVERGED):
            write_status(trial, said)
        elif "iter" in last:  # it reported, and ended before its last report: the scheduler's STOP
            write_status(trial, record.STOPPED)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        write_status(trial, record.ERRORED)


class TrimCheckpoints(tune.Callback):
    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        path = trial.path
        if path and not is_remote(path) and Path(path).is_dir():
            prune_checkpoints(Path(path), 1)
