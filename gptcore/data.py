"""Prepared datasets on disk (nanoGPT's formats): preparing them once, checking them, shipping them to other nodes.

A prepared dataset is a folder `data_dir/<name>/` holding `train.bin` and `val.bin` (uint16
token ids) and `meta.pkl` (`stoi`, `itos`, `vocab_size`), byte for byte what nanoGPT's
`data/shakespeare_char/prepare.py` writes: characters sorted into a vocabulary, the first 90%
of the text for training and the rest for validation. `shakespeare_char`'s text, Tiny
Shakespeare, ships inside the package (`assets/`), so it is prepared with no network; any other
text is a file, or an http(s) URL downloaded once into the cache (gptcore/sources.py).

Preparing and installing take a lock on the folder, so that processes starting together write it
once; the batches the trainer draws from a prepared folder are gptcore/batches.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import shlex
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import UserError
from .sources import cache_dir, decode, read_source

MAX_VOCAB = 65536  # uint16 token ids: 0 .. 65535
DATASET_FILES = ("train.bin", "val.bin", "meta.pkl")


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
        src, raw = read_source(name, input_path, folder, say)
        data = decode(raw, src)
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


def check_ids(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
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
            check_ids(folder / f"{split}.bin", tokens, meta["vocab_size"])
    return meta
