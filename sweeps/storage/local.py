"""Where a sweep's results go, and the rule that protects them: never overwritten silently.

`--storage` is a local path, a path on a network filesystem, or a URI (`s3://...`, `gs://...`)
that pyarrow reads. A sweep of experiment EXP lives in `<storage>/<EXP>/`, Ray Tune's own
experiment directory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path

from gptcore import record
from gptcore.errors import UserError
from sweeps.results.trial import STOPPED

# "s3://", "gs://", "abfs://", "hdfs://", ...: handled by pyarrow, visible from every node
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(storage: str) -> bool:
    """Whether `storage` is a URI that pyarrow opens (not a path of this machine; `file://` is local)."""
    return bool(_URI.match(storage)) and not storage.startswith("file://")


def check_remote(uri: str, write: bool = True) -> None:
    """Fail within seconds, with a one-line UserError, when a remote `--storage` cannot be used: an endpoint
    that does not answer, a bucket that does not exist, missing or refused credentials (and, with `write`,
    no right to write there). Call it before starting Ray; a local path passes."""
    if uri.startswith("s3://"):  # other schemes: Ray's own checks (check_existing) say what is wrong
        from sweeps.storage.s3 import check_remote as check

        check(uri, write=write)


def local_path(storage: str) -> str:
    """A local `--storage` as a plain path (`file://` stripped)."""
    return storage[len("file://"):] if storage.startswith("file://") else storage


def storage_root(storage: str) -> str:
    """What Ray's RunConfig(storage_path=...) gets: a URI as it is, a local path made absolute."""
    return storage if is_remote(storage) else str(Path(local_path(storage)).expanduser().resolve())


def experiment_dir(storage: str, exp: str) -> str:
    """The experiment directory of `exp` under `storage`."""
    root = storage_root(storage)
    return root.rstrip("/") + "/" + exp if is_remote(storage) else str(Path(root) / exp)


def driver_file(exp_path: str, name: str, kind: str) -> Path:
    """A file of the sweep that must be on the driver's own disk (Optuna's journal, Ray's log): beside the
    trials when the results are local, else in the one cache (`gptcore.sources.cache_dir()`) under
    `sweeps/<kind>/<hash of the sweep's URI>/<name>`. Its folder is made."""
    if is_remote(exp_path):
        from gptcore.sources import cache_dir

        folder = cache_dir() / "sweeps" / kind / hashlib.sha256(exp_path.encode()).hexdigest()[:12]
    else:
        folder = Path(local_path(exp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def aside_name(path: Path) -> Path:
    """A free name beside `path` for the old results: `<name>.old-<time>`, `-2`, `-3`, ... if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.old-{stamp}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.old-{stamp}-{n}")
        n += 1
    return candidate


def blocked_by(folder: Path) -> str | None:
    """Why nothing can be written in `folder` (made if need be), or None: its nearest existing ancestor
    (itself included) is a file, or a folder this user cannot write to."""
    for parent in [folder, *folder.absolute().parents]:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable by this user"
            return None
    return None


def check_writable(path: str) -> None:
    """Refuse a local results path that cannot hold results: a file on the way, or a folder not writable."""
    if is_remote(path):
        return
    why = blocked_by(Path(local_path(path)).expanduser().absolute())
    if why is not None:
        fix = " or change its permissions" if why.endswith("this user") else ""
        raise UserError(f"--storage {path}: {why}: choose another --storage{fix}")


class SweepLock:
    """One running sweep per experiment directory: an exclusive lock, released when the process ends.

    The lock file sits beside the experiment directory (`<storage>/.<exp>.lock`), so that
    `--fresh` can move the directory aside while holding it. It records the holder's PID and
    command, which a second sweep names in its refusal. The kernel drops the lock when its holder
    dies (even by SIGKILL), so a crashed sweep never leaves a stale one.
    """

    def __init__(self, exp_path: str):
        p = Path(exp_path)
        self.path = p.with_name(f".{p.name}.lock")
        self._file = None

    def acquire(self, command: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except ValueError:
                holder = {}
            f.close()
            raise UserError(f"{self.path.parent / self.path.name[1:-5]} is in use by a running sweep (pid "
                            f"{holder.get('pid', '?')}: {holder.get('command', '?')}): wait for it to end, stop it "
                            "(Ctrl-C), or use another --storage") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def check_existing(path: str, resume: bool, fresh: bool) -> bool:
    """Apply the results-directory policy; True when the sweep there should be restored.

    An existing sweep needs `--resume` (continue it) or `--fresh` (move it aside, never delete);
    `--resume` needs a sweep to continue. A remote sweep cannot be moved aside.
    """
    if is_remote(path):
        from ray import tune

        exists = tune.Tuner.can_restore(path)
        if fresh and exists:
            raise UserError(f"--fresh cannot move a sweep aside in remote storage {path}: use a new --storage prefix")
        if resume and not exists:
            raise UserError(f"nothing to resume at {path}: drop --resume to start the sweep")
        if exists and not resume:
            raise UserError(f"{path} already holds a sweep: pass --resume to continue it or use a new --storage")
        return exists
    check_writable(path)
    p = Path(path)
    if resume:
        if not (p / "tuner.pkl").is_file():
            raise UserError(f"nothing to resume in {p}: drop --resume to start the sweep")
        return True
    if p.exists() and any(p.iterdir()):
        if not fresh:
            raise UserError(f"{p} already holds results: pass --resume to continue that sweep or --fresh to start "
                            "over (the old results are moved aside, not deleted)")
        aside = aside_name(p)
        p.rename(aside)
        print(f"moved the previous results to {aside}")
    return False


KEEP_CHECKPOINTS = ("last", "best", "none")


def checkpoint_dirs(trial_dir: Path) -> list[Path]:
    """A trial's checkpoint folders (Ray's checkpoint_00000N), oldest first."""
    return sorted(p for p in Path(trial_dir).glob("checkpoint_*") if p.is_dir())


def prune_checkpoints(trial_dir: Path, keep: int) -> int:
    """Delete all but the newest `keep` checkpoints of a trial; the bytes freed."""
    import shutil

    freed = 0
    for d in checkpoint_dirs(trial_dir)[: max(0, len(checkpoint_dirs(trial_dir)) - keep)]:
        freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        shutil.rmtree(d, ignore_errors=True)
    return freed


def apply_checkpoint_policy(exp_dir: Path, trials, policy: str, keep_names: set[str]) -> int:
    """What stays after a sweep (`--keep-checkpoints`); the bytes freed.

    `trials` is the loader's trials table. A trial that did not finish (interrupted, not
    started, errored) keeps its checkpoints as they are, so `--resume` can continue it. Of the
    finished ones: `last` keeps each one's newest checkpoint (to sample from, or to train on),
    `best` only those of `keep_names` (the best run's seeds; in a search the confirmed runs),
    `none` none. The report needs no checkpoint.
    """
    if policy not in KEEP_CHECKPOINTS:
        raise UserError(f"--keep-checkpoints {policy!r}: choose one of {', '.join(KEEP_CHECKPOINTS)}")
    freed = 0
    for _, row in trials.iterrows():
        folder = Path(exp_dir) / str(row["path"])
        if not folder.is_dir():
            continue
        if row["status"] not in (record.COMPLETED, STOPPED, record.DIVERGED):
            # unfinished: left as Ray knows it (its newest folder may be one whose upload was cut short,
            # while Ray's record points at the one before: --resume needs that one)
            continue
        keep = 0 if policy == "none" or (policy == "best" and row["name"] not in keep_names) else 1
        freed += prune_checkpoints(folder, keep)
    return freed
