"""Where a dataset's text comes from: Tiny Shakespeare packaged with gptcore, a file, or an http(s) URL.

`read_source` finds the text to prepare (the `--input` given, a folder's `input.txt`, or for
`shakespeare_char` the packaged copy) and `decode` reads it as nanoGPT does. A URL is downloaded
once into `cache_dir()` (the one cache of gptcore and the sweeps) and read from there after.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

from .errors import UserError

# Tiny Shakespeare ships inside the package (public domain; nanoGPT's input.txt, gzip -9 -n)
SHAKESPEARE_ASSET = "assets/tinyshakespeare.txt.gz"
SHAKESPEARE_BYTES = 1_115_394
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_LABEL = "the Tiny Shakespeare packaged with gptcore"
# an --input URL: no byte for STALL_SECONDS, or a download past DOWNLOAD_SECONDS, is an error
STALL_SECONDS = 10
DOWNLOAD_SECONDS = 30


def cache_dir() -> Path:
    """Where downloaded source texts and shipped datasets are kept: $GPTCORE_CACHE, else ~/.cache/gptcore."""
    return Path(os.environ.get("GPTCORE_CACHE") or Path.home() / ".cache" / "gptcore")


def shakespeare_text() -> bytes:
    """Tiny Shakespeare as it ships inside the package: nanoGPT's input.txt, byte for byte.

    Its size and sha256 are checked: a missing or damaged copy (a broken install) is a UserError.
    """
    asset = resources.files(__package__).joinpath(SHAKESPEARE_ASSET)
    fix = "reinstall gptcore (`pip install -e .` in the repository)"
    try:
        raw = gzip.decompress(asset.read_bytes())
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise UserError(f"the Tiny Shakespeare packaged with gptcore ({asset}) is missing or damaged "
                        f"({e.__class__.__name__}): {fix}") from None
    if len(raw) != SHAKESPEARE_BYTES or hashlib.sha256(raw).hexdigest() != SHAKESPEARE_SHA256:
        raise UserError(f"the Tiny Shakespeare packaged with gptcore ({asset}) is damaged ({len(raw):,} bytes, "
                        f"not the {SHAKESPEARE_BYTES:,} of nanoGPT's input.txt): {fix}")
    return raw


def is_url(source: str) -> bool:
    """Whether an --input (or a sweep's --data-source) is an http(s) address to download."""
    return source.strip().lower().startswith(("http://", "https://"))


def _why(e: BaseException) -> str:
    """A download's failure in a few words: 'HTTP 404 Not Found', 'Connection refused', 'timed out'."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}".strip()
    why = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(why, OSError) and why.strerror:
        return why.strerror
    return " ".join(str(why).split())[:100] or e.__class__.__name__


def download(url: str, say=print) -> Path:
    """The text at an http(s) URL, downloaded into cache_dir()/downloads once and reused after
    (offline too; delete it there to fetch it again).

    A URL that cannot be fetched is a one-line UserError; so is a server that sends nothing for
    STALL_SECONDS, or a download still going after about DOWNLOAD_SECONDS.
    """
    url = url.strip()
    name = Path(urllib.parse.urlsplit(url).path).name or "input.txt"
    target = cache_dir() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file() and target.stat().st_size:
        return target
    tmp = None
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=STALL_SECONDS) as r, tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=".download-", delete=False
        ) as f:
            tmp = Path(f.name)
            while chunk := r.read1(1 << 16):  # what has come, not a full 64 KiB: a slow server is seen
                f.write(chunk)
                # each read waits STALL_SECONDS at most: stopping here keeps the whole under DOWNLOAD_SECONDS
                if time.monotonic() - started > DOWNLOAD_SECONDS - STALL_SECONDS:
                    raise TimeoutError(f"still going after {DOWNLOAD_SECONDS - STALL_SECONDS} s")
        os.replace(tmp, target)
        tmp = None
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, timeouts: OSErrors
        if tmp is not None:
            tmp.unlink(missing_ok=True)
            tmp = None
        try:
            target.parent.rmdir()  # leave no empty folder behind
        except OSError:
            pass
        raise UserError(f"--input {url}: could not download it ({_why(e)}): check the address, or download "
                        "the text yourself and give its path") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    say(f"downloaded {url} to {target}")
    return target


def read_source(name: str, input_path: str | None, folder: Path, say=print) -> tuple[str, bytes]:
    """The text to prepare, and what messages call it: the --input given (a path, or an http(s)
    URL, downloaded), else `<folder>/input.txt`, else, for shakespeare_char, the packaged copy."""
    if input_path:
        if is_url(input_path):
            return input_path.strip(), _read_bytes(download(input_path, say))
        p = Path(input_path).expanduser()
        if not p.is_file():
            raise UserError(f"--input {input_path}: no such file: give the path of a UTF-8 text file "
                            "(or an http(s) URL)")
        return str(p), _read_bytes(p)
    if (folder / "input.txt").is_file():  # where nanoGPT's prepare.py leaves it
        return str(folder / "input.txt"), _read_bytes(folder / "input.txt")
    if name == "shakespeare_char":
        return SHAKESPEARE_LABEL, shakespeare_text()
    raise UserError(f"dataset {name!r} has no source text: run `python -m gptcore prepare {name} --input FILE`")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}): give a readable UTF-8 text file") from None


def decode(raw: bytes, path: str) -> str:
    """A source text's bytes as nanoGPT reads them; `path` names it in messages."""
    if not raw:
        raise UserError(f"{path} is empty: give a text file with at least a few thousand characters")
    if b"\x00" in raw[:65536]:
        raise UserError(f"{path} looks binary (it has NUL bytes): give a plain UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}): convert it to UTF-8 first") from None
    # nanoGPT reads the text with open(path, 'r'): universal newlines turn \r\n and \r into \n
    return text.replace("\r\n", "\n").replace("\r", "\n")
