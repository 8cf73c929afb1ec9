"""Where a sweep's results go, and the rule that protects them: never overwritten silently.

`--storage` is a local path, a path on a network filesystem, or a URI (`s3://...`, `gs://...`)
that pyarrow reads. A sweep of experiment EXP lives in `<storage>/<EXP>/`, Ray Tune's own
experiment directory.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from gptcore.errors import UserError

# "s3://", "gs://", "abfs://", "hdfs://", ...: handled by pyarrow, visible from every node
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(storage: str) -> bool:
    """Whether `storage` is a URI that pyarrow opens (not a path of this machine; `file://` is local)."""
    return bool(_URI.match(storage)) and not storage.startswith("file://")


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


def aside_name(path: Path) -> Path:
    """A free name beside `path` for the old results: `<name>.old-<time>`, `-2`, `-3`, ... if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.old-{stamp}")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.old-{stamp}-{n}")
        n += 1
    return candidate


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
