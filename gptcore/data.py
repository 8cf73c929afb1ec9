"""Datasets on disk (nanoGPT's formats) and the batches the trainer draws from them.

A prepared dataset is a folder `data_dir/<name>/` holding `train.bin` and `val.bin` (uint16
token ids) and `meta.pkl` (`stoi`, `itos`, `vocab_size`), byte for byte what nanoGPT's
`data/shakespeare_char/prepare.py` writes: characters sorted into a vocabulary, the first 90%
of the text for training and the rest for validation. `shakespeare_char`'s text, Tiny
Shakespeare, ships inside the package (`assets/`), so it is prepared with no network; any other
text is a file, or an http(s) URL downloaded once into the cache.

Batches are deterministic functions of (seed, step): the examples of one optimizer step do not
depend on how they are split into micro-batches. Evaluation uses fixed windows drawn from their
own seed (`eval_seed`), the same for every run with the same eval_seed, evaluation batch size
and block size, whatever seed it trains with.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import http.client
import os
import pickle
import shlex
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

# Tiny Shakespeare ships inside the package (public domain; nanoGPT's input.txt, gzip -9 -n)
SHAKESPEARE_ASSET = "assets/tinyshakespeare.txt.gz"
SHAKESPEARE_BYTES = 1_115_394
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_LABEL = "the Tiny Shakespeare packaged with gptcore"
MAX_VOCAB = 65536  # uint16 token ids: 0 .. 65535
DATASET_FILES = ("train.bin", "val.bin", "meta.pkl")
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


# ----------------------------------------------------------------------------------------
# preparation


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


def _read_source(name: str, input_path: str | None, folder: Path, say=print) -> tuple[str, bytes]:
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


def _decode(raw: bytes, path: str) -> str:
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


@contextmanager
def locked(folder: Path):
    """An exclusive lock on a dataset folder (created if need be), so that processes starting
    together prepare or write it once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)




def is_prepared(folder: Path) -> bool:
    return all((folder / n).is_file() for n in DATASET_FILES)


def prepare_command(folder: Path) -> str:
    """The command that (re)writes the dataset folder `data_dir/<name>`, for error messages."""
    name, data_dir = folder.name, folder.parent
    cmd = f"python -m gptcore prepare {shlex.quote(name)}"
    if name != "shakespeare_char" and not (folder / "input.txt").is_file():
        cmd += " --input FILE"  # only Tiny Shakespeare has a source gptcore finds by itself
    if data_dir != Path("data"):  # prepare's default
        cmd += f" --data_dir {shlex.quote(str(data_dir))}"
    return cmd


def _again(folder: Path) -> str:
    return f"prepare the dataset again: `{prepare_command(folder)}`"


def _incomplete(folder: Path) -> UserError | None:
    """The error for a dataset folder that lacks some of its files (None when all are there)."""
    missing = [n for n in DATASET_FILES if not (folder / n).is_file()]
    if not missing:
        return None
    if len(missing) == len(DATASET_FILES):
        return UserError(f"dataset {folder.name!r} is not prepared in {folder}: run `{prepare_command(folder)}`")
    return UserError(f"{folder / missing[0]} is missing (the dataset in {folder} is incomplete): {_again(folder)}")


def prepare(name: str, data_dir: str | Path = "data", input_path: str | None = None,
            block_size: int = 256, quiet: bool = False) -> dict:
    """Encode a text character by character into `data_dir/name/` (nanoGPT's three files).

    Files are written under temporary names and renamed into place, `meta.pkl` last, so a
    reader never sees a half-written dataset. Returns a summary dict.
    """
    folder = Path(data_dir) / name
    say = (lambda *a: None) if quiet else print
    with locked(folder):
        src, raw = _read_source(name, input_path, folder, say)
        data = _decode(raw, src)
        chars = sorted(set(data))
        if len(chars) > MAX_VOCAB:
            raise UserError(f"{src} has {len(chars):,} distinct characters, more than uint16 token ids can number "
                            f"({MAX_VOCAB:,}): use a text with a smaller alphabet")
        n = len(data)
        n_train = int(n * 0.9)
        if n - n_train <= block_size:
            raise UserError(f"{src} is too short: {n:,} characters leave {n - n_train:,} for validation, not "
                            f"enough for one block of {block_size}; use a longer text or a smaller --block_size")
        stoi = {ch: i for i, ch in enumerate(chars)}
        itos = {i: ch for i, ch in enumerate(chars)}
        ids = np.fromiter((stoi[c] for c in data), dtype=np.uint16, count=n)
        say(f"length of dataset in characters: {n:,}")
        say(f"all the unique characters: {''.join(chars)!r}")
        say(f"vocab size: {len(chars)}")
        say(f"train has {n_train:,} tokens")
        say(f"val has {n - n_train:,} tokens")
        for fname, arr in (("train.bin", ids[:n_train]), ("val.bin", ids[n_train:])):
            tmp = folder / f".{fname}.tmp"
            arr.tofile(tmp)
            os.replace(tmp, folder / fname)
        tmp = folder / ".meta.pkl.tmp"
        with open(tmp, "wb") as f:
            pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
        os.replace(tmp, folder / "meta.pkl")
    return {"folder": str(folder), "characters": n, "vocab_size": len(chars),
            "train_tokens": n_train, "val_tokens": n - n_train, "source": src}


def ensure_prepared(name: str, data_dir: str | Path, quiet: bool = False, block_size: int = 256) -> Path:
    """The dataset folder, preparing it first when it is not there yet and its source text can be found.

    A folder that has its meta.pkl but lacks a .bin is damaged, not new: that is an error
    naming the missing file (never a new preparation or a download).
    """
    folder = Path(data_dir) / name
    if is_prepared(folder):
        return folder
    if (folder / "meta.pkl").is_file():
        # prepare() renames meta.pkl in last: with it there the folder was complete once, and a
        # missing .bin is damage; without it a preparation was interrupted, and is done again
        raise _incomplete(folder)
    if name == "shakespeare_char" or (folder / "input.txt").is_file():
        prepare(name, data_dir, quiet=quiet, block_size=block_size)
        return folder
    raise UserError(f"dataset {name!r} is not prepared in {folder}: run "
                    f"`python -m gptcore prepare {name} --input FILE` (or set --data_dir)")


def dataset_files(folder: Path) -> dict[str, bytes]:
    """A prepared dataset's three files by name, to ship elsewhere (e.g. through Ray's object store)."""
    return {n: (Path(folder) / n).read_bytes() for n in DATASET_FILES}


def install_dataset(files: dict[str, bytes], name: str) -> str:
    """Write shipped dataset files (see `dataset_files`) as dataset `name`, once, and return the
    data_dir that holds them: cache_dir()/datasets/<hash of the content>.

    The folder is named by the content's hash, so processes on one machine share one copy
    (written under `locked`, meta.pkl last, as it marks completion) and a changed dataset never
    mixes with an old one.
    """
    digest = hashlib.sha256()
    for n in sorted(files):
        digest.update(n.encode())
        digest.update(files[n])
    data_dir = cache_dir() / "datasets" / digest.hexdigest()[:16]
    folder = data_dir / name
    if not is_prepared(folder):
        with locked(folder):
            if not is_prepared(folder):
                for n in DATASET_FILES:  # meta.pkl last
                    tmp = folder / f".{n}.tmp"
                    tmp.write_bytes(files[n])
                    os.replace(tmp, folder / n)
    return str(data_dir)


def load_meta(folder: Path) -> dict:
    """meta.pkl, checked to be the plain dict nanoGPT writes (`vocab_size`; `itos`, `stoi` if present).

    It is unpickled with a loader that only builds dicts, ints and strings, so a dataset
    folder from elsewhere cannot run code.
    """
    path = folder / "meta.pkl"
    fix = _again(folder)
    try:
        with open(path, "rb") as f:
            meta = _SafeUnpickler(f).load()
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}): {fix}") from None
    except Exception as e:
        # arbitrary bytes fail in many ways (UnpicklingError, ValueError, KeyError, EOFError, ...);
        # the safe loader's own refusal of anything but plain data is an UnpicklingError too
        why = " ".join(str(e).split())[:100]
        raise UserError(f"{path} is damaged or not a meta.pkl ({e.__class__.__name__}: {why}): {fix}") from None
    problem = meta_problem(meta)
    if problem:
        raise UserError(f"{path} is not a nanoGPT meta.pkl ({problem}): {fix}")
    return meta


def meta_problem(meta) -> str | None:
    """What makes `meta` other than nanoGPT's meta dict, or None."""
    if not isinstance(meta, dict):
        return f"it holds a {type(meta).__name__}, not a dict"
    vocab = meta.get("vocab_size")
    if type(vocab) is not int or not 1 <= vocab <= MAX_VOCAB:
        return f"vocab_size is {vocab!r:.40}, not a number of tokens from 1 to {MAX_VOCAB}"
    itos, stoi = meta.get("itos"), meta.get("stoi")
    if itos is None and stoi is None:
        return None  # a vocabulary of ids only (a tokenizer's dataset): enough to train
    if not (isinstance(itos, dict) and isinstance(stoi, dict)):
        return "itos and stoi must both be dicts"
    if set(itos) != set(range(vocab)) or not all(isinstance(c, str) for c in itos.values()):
        return f"itos does not map the ids 0..{vocab - 1} to strings"
    if any(not isinstance(i, int) or itos.get(i) != c for c, i in stoi.items()):
        return "stoi is not the inverse of itos"
    return None


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"meta.pkl refers to {module}.{name}; only plain data is allowed")


def _open_tokens(path: Path) -> np.ndarray:
    """A .bin of uint16 token ids, memory-mapped; a missing or damaged file is a UserError."""
    fix = _again(path.parent)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}): {fix}") from None
    if size == 0:
        raise UserError(f"{path} is empty (0 bytes): {fix}")
    if size % 2:
        raise UserError(f"{path} has an odd number of bytes ({size:,}), so it is not whole uint16 token ids "
                        f"(cut short, or not a nanoGPT .bin): {fix}")
    try:
        return np.memmap(path, dtype=np.uint16, mode="r")
    except (OSError, ValueError) as e:  # a directory, no permission, ...
        raise UserError(f"cannot read {path} ({e}): {fix}") from None


def split_tokens(folder: Path, split: str, block_size: int, train_tokens: int = 0) -> np.ndarray:
    """The token ids of `split` ('train' or 'val'), checked to hold at least one window.

    `train_tokens` (train only, 0 for all) keeps the first N tokens. A window is block_size + 1
    tokens (the inputs and the next-token targets).
    """
    path = folder / f"{split}.bin"
    tokens = _open_tokens(path)
    if train_tokens and split == "train":
        if train_tokens > len(tokens):
            raise UserError(f"train_tokens={train_tokens:,} is more than {path} holds ({len(tokens):,}): "
                            "lower --train_tokens or set it to 0 for all")
        tokens = tokens[:train_tokens]
    if len(tokens) <= block_size:
        limited = bool(train_tokens) and split == "train"
        raise UserError(f"block_size={block_size} is larger than the data: {path} has {len(tokens):,} tokens"
                        f"{' (the first --train_tokens)' if limited else ''}, and a window needs block_size + 1: "
                        f"set --block_size below {len(tokens):,}{' or raise --train_tokens' if limited else ''}, "
                        f"or prepare the dataset from a longer text: `{prepare_command(folder)}`")
    return tokens


def _check_ids(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    top = int(tokens.max())
    if top >= vocab_size:
        raise UserError(f"{path} has token id {top}, but vocab_size is {vocab_size} ({path.parent / 'meta.pkl'}): "
                        f"the files do not belong together; {_again(path.parent)}")


def check_dataset(folder: Path, block_size: int, train_tokens: int = 0, *, vocab: bool = True) -> dict:
    """Check a prepared dataset folder before any work is done on it, and return its meta.pkl.

    One call for every entry point (train, check, sample's fallback to meta.pkl, the sweep
    before it starts Ray). It raises a one-line UserError naming the file and the fix for: a
    missing train.bin, val.bin or meta.pkl; a meta.pkl that is not nanoGPT's dict; a .bin
    that is empty or has an odd number of bytes; a split shorter than block_size + 1 tokens
    (train counted up to `train_tokens` when nonzero); and, with `vocab`, token ids that
    meta.pkl's vocab_size has no entry for (this reads every token once: ~2 ms per million).
    """
    folder = Path(folder)
    err = _incomplete(folder)
    if err:
        raise err
    meta = load_meta(folder)
    for split in ("train", "val"):
        tokens = split_tokens(folder, split, block_size, train_tokens)
        if vocab:
            _check_ids(folder / f"{split}.bin", tokens, meta["vocab_size"])
    return meta


# ----------------------------------------------------------------------------------------
# batches


@dataclass
class Split:
    tokens: np.ndarray  # uint16, memory-mapped

    def windows(self, starts: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) for windows starting at `starts`; y is x shifted by one token."""
        idx = starts[:, None] + np.arange(block_size + 1)[None, :]
        w = torch.from_numpy(self.tokens[idx].astype(np.int64))
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


class Batches:
    """Draws training and evaluation batches for one run.

    Training: step `it` uses the `batch_size * accum` windows drawn from a generator seeded
    by (seed, it), cut into `accum` micro-batches in order, so 64 x 1 and 16 x 4 train on the
    same examples, and a resumed run draws what an uninterrupted one would have.
    Evaluation: `eval_iters` batches per split of windows spread evenly over the split (from
    an offset drawn from `eval_seed`, not `seed`), fixed once and reused at every evaluation.
    """

    def __init__(self, folder: Path, block_size: int, batch_size: int, accum: int, seed: int,
                 device: str, train_tokens: int = 0, eval_batch_size: int = 0, eval_seed: int = 1337):
        self.folder = folder
        self.block_size, self.batch_size, self.accum, self.seed = block_size, batch_size, accum, seed
        # its own seed, so that trials training with different seeds are measured on the same text
        # (1337: TrainConfig's default)
        self.eval_seed = eval_seed
        # evaluation batches have their own size, so a sweep can hold them equal across trials
        # that train with different batch sizes (0: the training micro-batch, as nanoGPT)
        self.eval_batch_size = eval_batch_size or batch_size
        self.device = device
        self.splits = {name: Split(split_tokens(folder, name, block_size, train_tokens)) for name in ("train", "val")}
        self._eval: dict[tuple[str, int], list[np.ndarray]] = {}

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse token ids the model has no embedding for (a dataset and meta.pkl that do not match)."""
        for name, s in self.splits.items():
            _check_ids(self.folder / f"{name}.bin", s.tokens, vocab_size)

    def _starts(self, split: str, key: tuple[int, ...], n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, *key])
        return rng.integers(0, len(self.splits[split].tokens) - self.block_size, size=n)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor):
        if self.device.startswith("cuda"):
            # pinned memory lets the copy overlap with compute
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def train_step(self, it: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The `accum` micro-batches of optimizer step `it`."""
        starts = self._starts("train", (0, it), self.batch_size * self.accum)
        split = self.splits["train"]
        out = []
        for k in range(self.accum):
            x, y = split.windows(starts[k * self.batch_size:(k + 1) * self.batch_size], self.block_size)
            out.append(self._to_device(x, y))
        return out

    def eval_batches(self, split: str, eval_iters: int):
        """The `eval_iters` fixed evaluation batches of `split`, drawn on first use."""
        key = (split, eval_iters)  # a diagnostic's single batch must not stand in for a full evaluation
        if key not in self._eval:
            # evenly spaced windows (one random offset, then a fixed stride) instead of nanoGPT's
            # fresh random draws: the same token budget estimates the loss of the whole split
            # with much less variance, so evaluations compare models, not samples
            eb = self.eval_batch_size
            n = eval_iters * eb
            span = len(self.splits[split].tokens) - self.block_size
            offset = int(np.random.default_rng([self.eval_seed, 1, 0 if split == "train" else 1]).integers(0, span))
            starts = (offset + (np.arange(n) * span) // n) % span
            self._eval[key] = [starts[i * eb:(i + 1) * eb] for i in range(eval_iters)]
        for starts in self._eval[key]:
            yield self._to_device(*self.splits[split].windows(starts, self.block_size))
