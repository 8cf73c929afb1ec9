"""What the sweep command needs to run on a Ray cluster instead of one machine.

- `resolve_address`: which cluster to connect to (None = start a local Ray instance); an address
  that does not parse (`:::`, `host:port:extra`, `host:notaport`) is one line (`check_address`).
- `check_reachable`: fail at once when nothing listens at that address (Ray would retry for minutes).
- `check_storage`: refuse a local results path when trials can land on other machines; since
  Ray 2.7 Tune does not copy trial directories back to the head, so every node must be able to
  write to `--storage` (cloud storage or a network filesystem mounted on every node).
- `is_network_path`: is a path on NFS/CIFS/Lustre/...? (reads /proc/mounts on Linux).
- `runtime_env_for_cluster`: ships this repository to the worker nodes when connecting to a
  remote cluster (`--address`), so the trainable imports the same `gptcore`/`sweeps` there; with
  an `s3://` --storage it also sends where the bucket is (`AWS_ENDPOINT_URL`, the region), so
  every trial writes where the driver does. Never credentials: a runtime_env shows on the
  dashboard and in Ray's records; each node uses its own (an instance profile, its environment).
- `check_job_storage`: inside a `ray job submit` driver, refuse a relative --storage (it would
  land in the job's temporary copy of the code).

Nothing here imports or starts Ray; the caller passes `ray.nodes()` in.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from gptcore.errors import UserError
from sweeps.storage.local import is_remote, local_path

# Filesystem types (the third field of /proc/mounts) whose contents other machines can see.
# Each still has to be mounted at the same path on every node; that is the user's part.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "coda",
    "lustre", "gpfs", "beegfs", "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "cephfs",
    "ocfs2", "gfs2", "panfs", "wekafs", "pvfs2", "orangefs", "fuse.juicefs", "fuse.sshfs",
    "fuse.s3fs", "fuse.gcsfuse", "fuse.mountpoint-s3", "fuse.blobfuse2", "virtiofs",
})

# Set by Ray's job supervisor in the environment of a `ray job submit` driver. Its runtime_env
# (e.g. --working-dir) then applies to the whole job, and a second working_dir passed to
# ray.init() would conflict with it (ValueError "Failed to merge the Job's runtime env").
_RAY_JOB_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"

# Where an s3:// --storage is: sent to the trials on every node (runtime_env_for_cluster). Who may
# write there (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE) is not sent.
S3_LOCATION_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
_S3_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")

# Kept out of the working_dir upload (gitignore syntax, relative to the repository root).
RUNTIME_ENV_EXCLUDES = [
    "/.venv/",
    "/results/",
    "/data/",
    "/.git/",
    "*.pt",
    "__pycache__/",
    "*.egg-info/",
    "/.pytest_cache/",
]


def resolve_address(address: str | None) -> str | None:
    """The cluster to connect to: `--address`, else $RAY_ADDRESS, else None (local mode).

    "auto" connects to the cluster running on this machine (the head, after `ray up`). An address
    that does not parse is a UserError naming where it came from (see `check_address`).
    """
    for candidate, source in ((address, "--address"), (os.environ.get("RAY_ADDRESS"), "$RAY_ADDRESS")):
        if candidate is not None and candidate.strip():
            return check_address(candidate.strip(), source)
    return None


# what ray.init takes besides host:port: its own words, and Ray Client's ray://host without a port
_WORDS = ("auto", "local")
_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
_ADDRESS = re.compile(rf"(?:ray://)?{_HOST}:(\d{{1,5}})/?|ray://{_HOST}/?")


def check_address(address: str, source: str = "--address") -> str:
    """`address` when Ray can connect to it ("auto", "local", "host:port", "[v6]:port", "ray://host[:port]");
    otherwise a UserError saying what the address should look like (Ray's own error is a traceback)."""
    if address in _WORDS:
        return address
    fix = "give host:port (the head's GCS port, 6379 by default), ray://host:10001 (Ray Client) or auto"
    if source == "$RAY_ADDRESS":
        fix = f"unset RAY_ADDRESS for a local Ray instance, or {fix}"
    if re.match(r"https?://", address, re.IGNORECASE):
        raise UserError(f"{source} {address} is a web address (the dashboard's, for `ray job submit`), not one the "
                        f"sweep can join: {fix}")
    m = _ADDRESS.fullmatch(address)
    if m is None:
        raise UserError(f"{source} {address!r} is not a Ray address: {fix}")
    port = m.group(2)
    if port is not None and not 0 < int(port) < 65536:
        raise UserError(f"{source} {address}: port {int(port)} is out of range (1-65535): {fix}")
    return address


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port", "[v6]:port" or "ray://host:port"; None for "auto" and the like."""
    m = re.fullmatch(r"(?:ray://)?(\[[^\]]+\]|[^:/\s]+):(\d{1,5})/?", address.strip())
    if m is None:
        return None
    return m.group(1).strip("[]"), int(m.group(2))


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise UserError when nothing accepts a TCP connection at `address`.

    `ray.init(address=...)` retries an unreachable GCS 20 times at about 40 s each, so a
    mistyped `--address` or a stopped cluster looks like a hang of ~13 minutes; one connect
    answers at once. Addresses without a port ("auto") are left to ray.init, which fails fast
    for them.
    """
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout_s).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__  # "Connection refused", "timed out", ...
        raise UserError(
            f"no Ray cluster answers at {address} ({reason}): start one there (`ray start --head`, "
            f"`ray up cluster.yaml`) or fix --address / $RAY_ADDRESS"
        ) from None


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as \040, \011, \012, \134.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _read_mounts() -> str | None:
    try:
        return Path("/proc/mounts").read_text()
    except OSError:  # not Linux (macOS, Windows): no cheap way to tell
        return None


def is_network_path(path: str | os.PathLike, mounts_text: str | None = None) -> bool:
    """True when `path` lies on a network filesystem (NFS, CIFS, Lustre, ...).

    The mount is the one with the longest mount point that contains the resolved path (the
    path need not exist yet); among equal mount points the last listed wins, as the kernel
    stacks them. `mounts_text` is the content of /proc/mounts; by default it is read from
    the system, and where there is none (not Linux) the answer is False.
    """
    if mounts_text is None:
        mounts_text = _read_mounts()
        if mounts_text is None:
            return False
    resolved = os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))
    best_len, best_type = -1, None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fs_type = _unescape_mount_field(fields[1]), fields[2]
        if mount_point == "/":
            inside = resolved.startswith("/")
        else:
            mount_point = mount_point.rstrip("/")
            inside = resolved == mount_point or resolved.startswith(mount_point + "/")
        if inside and len(mount_point) >= best_len:
            best_len, best_type = len(mount_point), fs_type
    return best_type is not None and best_type.lower() in NETWORK_FS_TYPES


def _can_run_trials(node: dict) -> bool:
    resources = node.get("Resources")
    if resources is None:  # not reported: assume it can
        return True
    return resources.get("CPU", 0) > 0 or resources.get("GPU", 0) > 0


def check_storage(storage: str, nodes: list[dict], mounts_text: str | None = None) -> None:
    """Raise UserError if trials on other machines could not write to `storage`.

    `nodes` is `ray.nodes()`. A URI (`s3://`, `gs://`, `abfs://`, ...) is always fine; so is a
    path on a network filesystem (see `is_network_path`). A plain local path is fine only while
    the alive nodes all sit on one machine (one NodeManagerAddress: local mode, or a simulated
    cluster) and that machine can run trials. A lone head with no CPU or GPU (`resources:
    {CPU: 0}` in cluster.yaml) means trials will run on workers the autoscaler has yet to start.
    """
    if is_remote(storage):
        return
    path = local_path(storage)
    alive = [n for n in nodes if n.get("Alive")]
    machines = {n.get("NodeManagerAddress") for n in alive}
    if len(machines) > 1:
        where = f"the Ray cluster spans {len(machines)} machines"
    elif alive and not any(_can_run_trials(n) for n in alive):
        where = "the cluster's only machine runs no trials, so they will run on autoscaled workers"
    else:
        return
    if is_network_path(path, mounts_text):
        return
    raise UserError(
        f"--storage {storage} is a local path, but {where}, and trials on other machines "
        f"cannot write to it; "
        f"use --storage s3://bucket/prefix (or gs://...), or a path on NFS mounted at the same "
        f"place on every node"
    )


def _job_env_vars() -> dict[str, str] | None:
    """The env_vars of the `ray job submit` runtime_env this driver runs in; None outside a job."""
    if _RAY_JOB_ENV_VAR not in os.environ:
        return None
    try:
        config = json.loads(os.environ[_RAY_JOB_ENV_VAR])
        return dict((config.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, AttributeError, TypeError):
        return {}


def s3_location(storage: str | None) -> dict[str, str]:
    """The AWS_* settings of this process that say where an `s3://` storage is (endpoint, region); {} otherwise."""
    if not storage or not storage.startswith("s3://"):
        return {}
    return {k: os.environ[k] for k in S3_LOCATION_VARS if os.environ.get(k)}


def credentials_note(storage: str | None) -> str | None:
    """What to tell a user whose S3 credentials are in this machine's environment, when the trials run on a
    cluster's nodes that do not get them (outside a Ray job; inside one the job's own env_vars reach them)."""
    if not storage or not storage.startswith("s3://") or _job_env_vars() is not None:
        return None
    here = [k for k in _S3_CREDENTIAL_VARS if os.environ.get(k)]
    if not here:
        return None
    return (f"the trials write to {storage} with the S3 credentials of the nodes they run on (an instance profile, "
            f"or AWS_* in the nodes' environment); this machine's {', '.join(here)} is not sent to them, as a "
            "runtime_env shows on the dashboard")


def check_job_storage(storage: str) -> None:
    """Inside a `ray job submit` driver, refuse a relative local `--storage` (the default `results` too).

    The job runs in a copy of the submitted working dir that Ray unpacks under its temp dir: results
    written relative to it land there, where Ray may delete them once the job ends, and where a
    later `--resume` (a new copy, if the code changed) does not look.
    """
    if _job_env_vars() is None or is_remote(storage):
        return
    if not os.path.isabs(os.path.expanduser(local_path(storage))):
        raise UserError(f"--storage {storage} is a relative path, and a Ray job runs in a temporary copy of the "
                        "code on the head, which Ray may delete after the job: give an absolute path (on a "
                        "multi-node cluster one on NFS) or s3://bucket/prefix")


def runtime_env_for_cluster(repo_root: Path, storage: str | None = None) -> dict:
    """A Ray runtime_env that ships this repository to every node of a remote cluster.

    `working_dir` puts the repository root on each worker's sys.path, so `gptcore` and
    `sweeps` import there without installing anything; the excludes keep the virtualenv,
    results, data, git history and checkpoints out of the upload (Ray also honours the
    repository's .gitignore). Data therefore is not shipped: trials prepare or read it
    themselves. Pass the result to `ray.init(address=..., runtime_env=...)`.

    With an `s3://` storage, `env_vars` carries the AWS_* settings that say where the bucket is
    (`s3_location`), so a trial on any node writes where the driver does; credentials stay out.

    Inside a `ray job submit` driver there is no working_dir: the job's own runtime_env (its
    --working-dir) already covers the whole job, and Ray refuses a second one; the job's own
    env_vars reach every trial too, so only the location settings the job does not set are
    added (Ray refuses a variable set twice). With the cluster launcher the code is already on
    every node (file_mounts); the runtime_env makes a laptop's `--address` or a job submission
    use the current code.
    """
    env_vars = s3_location(storage)
    job = _job_env_vars()
    if job is not None:
        env_vars = {k: v for k, v in env_vars.items() if k not in job}
        return {"env_vars": env_vars} if env_vars else {}
    out = {"working_dir": str(Path(repo_root).resolve()), "excludes": list(RUNTIME_ENV_EXCLUDES)}
    if env_vars:
        out["env_vars"] = env_vars
    return out
