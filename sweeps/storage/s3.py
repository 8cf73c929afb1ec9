"""Sweeps in remote storage (`s3://bucket/prefix`, or another URI pyarrow opens), read without Ray.

- `open_fs(uri)`: pyarrow's filesystem and the path inside it. For S3 the endpoint is the standard
  `AWS_ENDPOINT_URL` (also `AWS_ENDPOINT_URL_S3`), passed as `endpoint_override` (pyarrow's own
  reading of it depends on its AWS SDK's version), with short timeouts and one retry, so that a
  wrong setting is an error within seconds, not minutes of retries.
- `remote_error(uri, e)`: what pyarrow raised, as a one-line `UserError` that names the setting to fix
  (an endpoint that does not answer, a bucket that does not exist, missing or wrong credentials).
- `check_remote(uri, write=...)`: those checks up front, for a command about to use the URI.
- `download(uri, local)` / `upload_outputs(local, uri)`: a sweep's records copied to a local copy
  (`local_copy`, without checkpoints) to be analysed there, and the analysis's outputs put back
  beside them (sweeps/command/pipeline.py).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from gptcore.errors import UserError

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 2  # one retry

# what `gptsweep analyze` writes, copied back into the bucket
OUTPUTS = ("report.md", "verdicts.json", "trials.csv", "history.csv", "curves.csv", "scaling.json", "decisions.jsonl")

_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@dataclass(frozen=True)
class Entry:
    """A file under a root: its path relative to the root (with `/`), modification time and size."""

    rel: str
    mtime: float | None
    size: int


def split_uri(uri: str) -> tuple[str, str]:
    """(scheme, bucket/key without a trailing slash) of a URI."""
    scheme, _, rest = uri.partition("://")
    return scheme.lower(), rest.strip("/")


def endpoint() -> str | None:
    """The custom S3 endpoint the environment names, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def open_fs(uri: str):
    """(pyarrow filesystem, path inside it) for a remote URI; a URI pyarrow cannot open is a UserError."""
    import pyarrow.fs as pafs

    scheme, path = split_uri(uri)
    if not path:
        raise UserError(f"{uri}: no bucket in the URI: use s3://bucket/prefix")
    if scheme != "s3":
        try:
            fs, inner = pafs.FileSystem.from_uri(uri)
        except (ValueError, OSError) as e:
            raise remote_error(uri, e) from None
        return fs, inner.rstrip("/")
    options = dict(connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
                   retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint():
        options["endpoint_override"] = endpoint()
    elif not region:
        try:  # the bucket's own region (one request); S3 answers requests in the wrong region with a redirect
            region = pafs.resolve_s3_region(path.split("/")[0])
        except (ValueError, OSError) as e:
            raise remote_error(uri, e) from None
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options), path


def remote_error(uri: str, e: BaseException) -> UserError:
    """An error pyarrow raised for `uri`, as one line that says what to fix."""
    text = " ".join(str(e).split()) or type(e).__name__
    bucket = split_uri(uri)[1].split("/")[0]
    where = f" at {endpoint()}" if endpoint() else ""
    if "NETWORK_CONNECTION" in text or "curlCode" in text or "Could not connect" in text or "timed out" in text:
        return UserError(f"{uri}: cannot reach the S3 endpoint{where or ' (AWS)'}: check AWS_ENDPOINT_URL and the "
                         "network")
    if "NO_SUCH_BUCKET" in text or f"Bucket '{bucket}' not found" in text or "NoSuchBucket" in text:
        return UserError(f"{uri}: bucket {bucket} does not exist{where}: check the name (and AWS_ENDPOINT_URL)")
    if any(code in text for code in ("INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "EXPIRED_TOKEN", "ExpiredToken")):
        return UserError(f"{uri}: the S3 credentials were refused{where}: check AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
    if "ACCESS_DENIED" in text or "AccessDenied" in text or "403" in text:
        return UserError(f"{uri}: access denied{where}: the credentials may not use bucket {bucket}")
    if not any(os.environ.get(v) for v in _CREDENTIAL_VARS) and not _credentials_file():
        return UserError(f"{uri}: no S3 credentials found ({_first_words(text)}): set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    return UserError(f"{uri}: S3 error{where}: {_first_words(text)}")


def _credentials_file() -> bool:
    home = Path(os.path.expanduser("~"))
    files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE"), os.environ.get("AWS_CONFIG_FILE"),
             home / ".aws" / "credentials", home / ".aws" / "config"]
    return any(f and Path(f).is_file() for f in files)


def _first_words(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s*\(Request ID: [^)]*\)", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_remote(uri: str, write: bool = False) -> None:
    """Fail fast, with one line, when `uri` cannot be used: the endpoint, the bucket, the credentials.

    Lists the prefix (one request); with `write`, also writes and deletes a small object under it,
    as a sweep must. Takes seconds at most with a wrong setting.
    """

    fs, path = open_fs(uri)
    try:
        _list(fs, path, recursive=False)
        if write:
            probe = f"{path}/.gptsweep-check-{uuid.uuid4().hex[:8]}"
            with fs.open_output_stream(probe) as f:
                f.write(b"ok\n")
            fs.delete_file(probe)
    except (OSError, ValueError) as e:
        raise remote_error(uri, e) from None


def _list(fs, path: str, recursive: bool) -> list:
    """The FileInfos under `path`; [] when nothing is there. A bucket that does not exist is an error (pyarrow's
    allow_not_found would hide it)."""
    import pyarrow.fs as pafs

    try:
        return fs.get_file_info(pafs.FileSelector(path, recursive=recursive))
    except FileNotFoundError:
        return []


def walk(uri: str) -> list[Entry]:
    """Every file under `uri` (one recursive listing); [] when nothing is there."""
    import pyarrow.fs as pafs

    fs, path = open_fs(uri)
    try:
        infos = _list(fs, path, recursive=True)
    except (OSError, ValueError) as e:
        raise remote_error(uri, e) from None
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(path):].lstrip("/")
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        out.append(Entry(rel, mtime, int(info.size or 0)))
    return out


def read_bytes(uri: str, rel: str, fs=None) -> bytes | None:
    """The bytes of `<uri>/<rel>`, or None when it cannot be read."""
    if fs is None:
        fs, path = open_fs(uri)
    else:
        path = split_uri(uri)[1]
    try:
        with fs.open_input_stream(f"{path}/{rel}") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def local_copy(uri: str) -> Path:
    """Where a remote experiment folder is copied to analyse it: in the one cache (`gptcore.sources.cache_dir()`),
    `sweeps/<scheme>/<bucket>/<key>`."""
    from gptcore.sources import cache_dir

    scheme, path = split_uri(uri)
    return cache_dir() / "sweeps" / scheme / path


def download(uri: str, local: Path) -> int:
    """Copy the experiment folder at `uri` into `local`, without checkpoints; the number of files copied.

    A file already there with the same size and a time no older than the remote one is kept.
    """
    fs, path = open_fs(uri)
    entries = [e for e in walk(uri) if not any(p.startswith("checkpoint_") for p in e.rel.split("/")[:-1])]
    if not entries:
        raise UserError(f"no sweep at {uri}: the prefix holds no files (check the path; `gptsweep ls` lists the "
                        "sweeps under a root)")
    copied = 0
    try:
        for e in entries:
            target = local / e.rel
            if target.is_file() and target.stat().st_size == e.size and (
                    e.mtime is None or target.stat().st_mtime >= e.mtime):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(f"{path}/{e.rel}") as f:
                data = f.read()
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
            copied += 1
    except (OSError, ValueError) as e:
        if isinstance(e, OSError) and e.filename:  # a local file that could not be written
            raise UserError(f"cannot write the local copy {e.filename} ({e.strerror}): set XDG_CACHE_HOME to a "
                            "writable folder") from None
        raise remote_error(uri, e) from None
    return copied


def upload_outputs(local: Path, uri: str) -> list[str]:
    """Copy the analysis outputs in `local` to `uri` (plots/ included; plots the analysis no longer draws
    are removed there); the relative paths copied."""
    import pyarrow.fs as pafs

    fs, path = open_fs(uri)
    names = [n for n in OUTPUTS if (local / n).is_file()]
    names += sorted(f"plots/{p.name}" for p in (local / "plots").glob("*.png"))
    try:
        for rel in names:
            with fs.open_output_stream(f"{path}/{rel}") as f:
                f.write((local / rel).read_bytes())
        old = fs.get_file_info(pafs.FileSelector(f"{path}/plots", allow_not_found=True))
        for info in old:
            if info.type == pafs.FileType.File and info.path.endswith(".png") and \
                    f"plots/{info.path.rsplit('/', 1)[-1]}" not in names:
                fs.delete_file(info.path)
    except (OSError, ValueError) as e:
        raise remote_error(uri, e) from None
    return names
