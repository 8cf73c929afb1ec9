"""A Tune callback on the driver: what only the sweep knows of a trial, written where the analysis reads it.

- `TrialStatus` writes `status.json` (sweeps.results.trial.STATUS_FILE) into a trial's folder when
  the trial ends, as `sweeps.results.trial.ending` decides: `completed` or `diverged` as its last
  report said (the trainer's own word), `stopped early` when the scheduler ended it before that,
  `errored` when Ray gave up on it. A trial that starts (again, after `--resume`) loses the file,
  so it always describes the latest attempt; a trial without one and without a final report was
  interrupted.

It writes through the trial's storage filesystem, so it works the same on a local path, NFS or S3.
A finished trial's older checkpoint is removed at the end of the sweep (`--keep-checkpoints`,
sweeps/storage/local.py), not when the trial ends: until Tune next saves the experiment state (every
10 s or so) that state names the older one, and a sweep stopped in between (`ray job stop`, a
kill) resumes the trial from it.
"""

from __future__ import annotations

import json
from typing import Any

from ray import tune

from sweeps.results.trial import STATUS_FILE, ending


def _fs_and_path(trial) -> tuple[Any, str]:
    return trial.storage.storage_filesystem, trial.storage.trial_fs_path


def write_status(trial, status: str, **facts: Any) -> None:
    """`status.json` in the trial's folder: {"status": ..., "iter": ..., ...} (iter: where it ended)."""
    fs, path = _fs_and_path(trial)
    last = trial.last_result or {}
    doc = {"status": status, "iter": last.get("iter"), **facts}
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{STATUS_FILE}") as f:
        f.write((json.dumps(doc) + "\n").encode())


class TrialStatus(tune.Callback):
    """Writes each trial's ending into its folder (module docstring)."""

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        fs, path = _fs_and_path(trial)
        from pyarrow.fs import FileType

        if fs.get_file_info(f"{path}/{STATUS_FILE}").type != FileType.NotFound:
            fs.delete_file(f"{path}/{STATUS_FILE}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        write_status(trial, ending(trial.last_result, over=True))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        write_status(trial, ending(trial.last_result, over=True, errored=True))
