"""gptcore.data: nanoGPT's prepared files, other texts, clear errors, deterministic batches."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATASET_DAMAGE

from gptcore import data as gdata
from gptcore import sources as gsources
from gptcore.batches import Batches
from gptcore.data import check_dataset, ensure_prepared, load_meta, prepare, prepare_command
from gptcore.errors import UserError

NANOGPT_SHA256 = {
    "train.bin": "6ec305602a99ac2802745a134e1f5e33e2231b4855525b00b9aebb730ac2626f",
    "val.bin": "d37d30cc0c8327c270d493299c3dca54135f6d5f1c9ef60cda78076e311204b1",
}
SHAKESPEARE_VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shakespeare_char_is_nanogpts(data_dir):
    folder = data_dir / "shakespeare_char"
    for name, digest in NANOGPT_SHA256.items():
        assert sha256(folder / name) == digest, name
    train = np.fromfile(folder / "train.bin", dtype=np.uint16)
    val = np.fromfile(folder / "val.bin", dtype=np.uint16)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    with open(folder / "meta.pkl", "rb") as f:
        meta = pickle.load(f)  # nanoGPT's sample.py reads it with plain pickle
    assert list(meta) == ["vocab_size", "itos", "stoi"]
    assert meta["vocab_size"] == 65
    assert "".join(meta["itos"][i] for i in range(65)) == SHAKESPEARE_VOCAB
    assert meta["stoi"] == {c: i for i, c in enumerate(SHAKESPEARE_VOCAB)}
    assert (meta["stoi"]["\n"], meta["stoi"][" "], meta["stoi"]["a"]) == (0, 1, 39)
    assert load_meta(folder) == meta


def test_prepare_reports_nanogpts_numbers(tmp_path, shakespeare_input, capsys):
    info = prepare("shakespeare_char", tmp_path, input_path=str(shakespeare_input))
    assert (info["characters"], info["train_tokens"], info["val_tokens"], info["vocab_size"]) == (
        1_115_394, 1_003_854, 111_540, 65)
    out = capsys.readouterr().out
    for line in ("length of dataset in characters: 1,115,394", "vocab size: 65", "train has 1,003,854 tokens",
                 "val has 111,540 tokens"):
        assert line in out


def test_the_packaged_text_is_nanogpts_input_txt():
    raw = gsources.shakespeare_text()
    assert len(raw) == 1_115_394
    assert hashlib.sha256(raw).hexdigest() == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    gz = (Path(gsources.__file__).parent / gsources.SHAKESPEARE_ASSET).read_bytes()
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\x00" * 4  # gzip -n: no timestamp, so the file is reproducible


def _no_network(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_shakespeare_char_is_prepared_offline_from_the_packaged_text(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    folder = ensure_prepared("shakespeare_char", tmp_path / "data", quiet=True)
    assert sha256(folder / "train.bin") == NANOGPT_SHA256["train.bin"]
    assert sha256(folder / "val.bin") == NANOGPT_SHA256["val.bin"]
    assert load_meta(folder)["vocab_size"] == 65
    assert prepare("shakespeare_char", tmp_path / "again", quiet=True)["source"] == gsources.SHAKESPEARE_LABEL


def test_an_input_txt_in_the_folder_comes_before_the_packaged_text(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    folder = tmp_path / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    (folder / "input.txt").write_text("Friends, Romans, countrymen\n" * 100)
    info = prepare("shakespeare_char", tmp_path / "data", block_size=16, quiet=True)
    assert info["source"] == str(folder / "input.txt") and info["characters"] == 2800
    # and an --input given comes before both
    other = tmp_path / "other.txt"
    other.write_text("lend me your ears\n" * 100)
    assert prepare("shakespeare_char", tmp_path / "data", input_path=str(other), block_size=16,
                   quiet=True)["source"] == str(other)


@pytest.mark.parametrize("how", ["missing", "not_gzip", "truncated", "other_text"])
def test_a_damaged_packaged_text_says_reinstall(tmp_path, monkeypatch, how):
    gz = (Path(gsources.__file__).parent / gsources.SHAKESPEARE_ASSET).read_bytes()
    fake = tmp_path / "pkg"
    (fake / "assets").mkdir(parents=True)
    damaged = {"not_gzip": b"not gzip at all", "truncated": gz[: len(gz) // 2],
               "other_text": gzip.compress(b"To be, or not to be\n" * 1000)}
    if how in damaged:
        (fake / gsources.SHAKESPEARE_ASSET).write_bytes(damaged[how])
    monkeypatch.setattr(gsources.resources, "files", lambda package: fake)
    with pytest.raises(UserError) as e:
        prepare("shakespeare_char", tmp_path / "data", quiet=True)
    msg = str(e.value)
    assert "reinstall" in msg and "\n" not in msg and str(fake / gsources.SHAKESPEARE_ASSET) in msg, msg
    assert not (tmp_path / "data" / "shakespeare_char" / "meta.pkl").exists()


# ---------------------------------------------------------------------------------------
# an --input URL


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """`http_server(handler=None)` -> the base URL of a local HTTP server (default: the files of tmp_path/www)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "www").mkdir()
    servers = []

    def start(handler=None) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), handler or functools.partial(_Quiet, directory=str(tmp_path / "www")))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_input_url_is_downloaded_once_into_the_cache(tmp_path, http_server, monkeypatch, capsys):
    text = "Now is the winter of our discontent\n" * 200
    (tmp_path / "www" / "richard.txt").write_text(text)
    url = http_server() + "/richard.txt"
    info = prepare("richard", tmp_path / "data", input_path=url, block_size=16)
    assert info["source"] == url and info["characters"] == len(text)
    downloaded = list((gsources.cache_dir() / "downloads").glob("*/richard.txt"))
    assert len(downloaded) == 1 and downloaded[0].read_text() == text
    assert f"downloaded {url} to {downloaded[0]}" in capsys.readouterr().out
    assert not list((gsources.cache_dir() / "downloads").glob("*/.download-*"))
    # later preparations reuse it, offline too
    _no_network(monkeypatch)
    again = prepare("richard", tmp_path / "again", input_path=url, block_size=16, quiet=True)
    assert sha256(tmp_path / "again" / "richard" / "train.bin") == sha256(tmp_path / "data" / "richard" / "train.bin")
    assert again["characters"] == len(text)


def _download_error(tmp_path, url: str) -> str:
    with pytest.raises(UserError) as e:
        prepare("web", tmp_path / "data", input_path=url, block_size=16, quiet=True)
    msg = str(e.value)
    assert msg.startswith(f"--input {url}: could not download it (") and "\n" not in msg, msg
    assert not (tmp_path / "data" / "web" / "meta.pkl").exists()
    assert not list((gsources.cache_dir() / "downloads").glob("*/*"))  # nothing half-written is kept
    return msg


def test_an_unreachable_url_is_one_line(tmp_path):
    from conftest import UNREACHABLE_URL

    assert "Connection refused" in _download_error(tmp_path, UNREACHABLE_URL)
    assert "no host given" in _download_error(tmp_path, "https://")


def test_an_offline_machine_is_one_line(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert "Temporary failure in name resolution" in _download_error(tmp_path, "https://example.org/input.txt")


def test_a_missing_page_is_one_line(tmp_path, http_server):
    assert "HTTP 404" in _download_error(tmp_path, http_server() + "/nope.txt")


def test_a_stalled_server_is_an_error_not_a_hang(tmp_path, monkeypatch):
    import socket
    import time

    monkeypatch.setattr(gsources, "STALL_SECONDS", 0.5)
    with socket.socket() as listener:  # accepts the connection (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        started = time.monotonic()
        msg = _download_error(tmp_path, f"http://127.0.0.1:{listener.getsockname()[1]}/input.txt")
    assert "timed out" in msg and time.monotonic() - started < 5


def test_a_download_that_drags_on_is_stopped(tmp_path, http_server, monkeypatch):
    import time

    class Drip(_Quiet):  # a short line every 0.1 s, for a minute
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"drip\n")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

    monkeypatch.setattr(gsources, "STALL_SECONDS", 0.5)
    monkeypatch.setattr(gsources, "DOWNLOAD_SECONDS", 1.5)
    started = time.monotonic()
    assert "still going after" in _download_error(tmp_path, http_server(Drip) + "/input.txt")
    assert time.monotonic() - started < 5


def test_any_utf8_text(tmp_path):
    text = ("Où est la bibliothèque? — Ça va. 東京 🙂\n" * 200)
    src = tmp_path / "mine.txt"
    src.write_text(text, encoding="utf-8")
    info = prepare("mine", tmp_path / "data", input_path=str(src), block_size=32, quiet=True)
    folder = tmp_path / "data" / "mine"
    meta = load_meta(folder)
    assert meta["vocab_size"] == len(set(text)) == info["vocab_size"]
    ids = np.concatenate([np.fromfile(folder / "train.bin", np.uint16), np.fromfile(folder / "val.bin", np.uint16)])
    assert "".join(meta["itos"][int(i)] for i in ids) == text
    assert len(np.fromfile(folder / "train.bin", np.uint16)) == int(len(text) * 0.9)
    # once prepared, the dataset is found without its source
    assert ensure_prepared("mine", tmp_path / "data") == folder


def test_windows_line_endings_as_nanogpt_reads_them(tmp_path):
    src = tmp_path / "crlf.txt"
    src.write_bytes(b"first line\r\nsecond line\rthird\n" * 100)
    prepare("crlf", tmp_path / "data", input_path=str(src), block_size=16, quiet=True)
    meta = load_meta(tmp_path / "data" / "crlf")
    assert "\r" not in meta["stoi"]  # open(path, 'r') in nanoGPT's prepare.py translates newlines


def test_the_largest_vocabulary_uint16_holds(tmp_path):
    def alphabet(n):  # n distinct characters: no control characters, no surrogates
        return "".join(chr(c) for c in range(32, n + 4096) if not 0xD800 <= c <= 0xDFFF)[:n]

    ok = tmp_path / "ok.txt"
    ok.write_text(alphabet(65536), encoding="utf-8")
    info = prepare("wide", tmp_path / "data", input_path=str(ok), block_size=16, quiet=True)
    assert info["vocab_size"] == 65536
    assert np.fromfile(tmp_path / "data" / "wide" / "val.bin", np.uint16).max() == 65535

    too_many = tmp_path / "too_many.txt"
    too_many.write_text(alphabet(65537), encoding="utf-8")
    with pytest.raises(UserError, match="65,537 distinct characters"):
        prepare("wider", tmp_path / "data", input_path=str(too_many), block_size=16, quiet=True)


@pytest.mark.parametrize("content, needle", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20, "binary"),
    ("caf\u00e9 ".encode("latin-1") * 500, "not UTF-8"),
    (b"To be, or not to be\n" * 10, "too short"),
])
def test_bad_sources_are_refused(tmp_path, content, needle):
    src = tmp_path / "src.txt"
    src.write_bytes(content)
    with pytest.raises(UserError) as e:
        prepare("bad", tmp_path / "data", input_path=str(src), block_size=256, quiet=True)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "data" / "bad" / "meta.pkl").exists()


def test_missing_input_and_unknown_dataset(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        prepare("x", tmp_path, input_path=str(tmp_path / "nope.txt"))
    with pytest.raises(UserError, match="prepare mine --input"):
        ensure_prepared("mine", tmp_path)


def test_meta_pkl_cannot_run_code(tmp_path, data_dir):
    folder = tmp_path / "evil"
    folder.mkdir()
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65, "x": Evil()}))
    with pytest.raises(UserError, match="meta.pkl"):
        load_meta(folder)
    assert not sentinel.exists()


# ---------------------------------------------------------------------------------------
# shipping a prepared dataset to another process or machine


def _install(args):
    files, cache = args
    import os

    os.environ["GPTCORE_CACHE"] = cache
    return gdata.install_dataset(files, "tiny")


def _small_dataset(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(b"\x01\x00" * 5000)
    (folder / "val.bin").write_bytes(b"\x02\x00" * 600)
    (folder / "meta.pkl").write_bytes(b"not read here")
    return gdata.dataset_files(folder)


def test_installs_starting_together_write_the_dataset_once(tmp_path):
    import multiprocessing as mp

    files = _small_dataset(tmp_path / "src")
    assert list(files) == ["train.bin", "val.bin", "meta.pkl"]
    cache = str(tmp_path / "cache")
    with mp.get_context("spawn").Pool(2) as pool:
        dirs = pool.map(_install, [(files, cache)] * 4)
    assert len(set(dirs)) == 1  # one folder, named by the content's hash, under the cache
    assert Path(dirs[0]).parent == tmp_path / "cache" / "datasets"
    folder = Path(dirs[0]) / "tiny"
    assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == {"train.bin", "val.bin", "meta.pkl"}
    assert not list(folder.glob(".*.tmp"))
    assert gdata.dataset_files(folder) == files


def test_an_installed_dataset_is_written_once_and_a_changed_one_apart(tmp_path):
    a = _small_dataset(tmp_path / "a")
    b = dict(a, **{"val.bin": b"\x03\x00" * 600})
    where = gdata.install_dataset(a, "tiny")
    before = (Path(where) / "tiny" / "train.bin").stat().st_mtime_ns
    assert gdata.install_dataset(a, "tiny") == where
    assert (Path(where) / "tiny" / "train.bin").stat().st_mtime_ns == before
    assert gdata.install_dataset(b, "tiny") != where


def test_a_prepared_dataset_travels_intact(data_dir, tmp_path):
    files = gdata.dataset_files(data_dir / "shakespeare_char")
    folder = Path(gdata.install_dataset(files, "shakespeare_char")) / "shakespeare_char"
    assert sha256(folder / "train.bin") == NANOGPT_SHA256["train.bin"]
    assert check_dataset(folder, block_size=16)["vocab_size"] == 65


def test_locked_makes_the_folder_and_excludes_others(tmp_path):
    import fcntl

    folder = tmp_path / "new" / "dataset"
    with gdata.locked(folder):
        assert (folder / ".lock").is_file()
        with open(folder / ".lock") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: what another process sees
    with open(folder / ".lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


# ---------------------------------------------------------------------------------------
# batches


def batches(data_dir, batch_size=8, accum=1, seed=1337, block_size=16, **kw):
    return Batches(data_dir / "shakespeare_char", block_size, batch_size, accum, seed, "cpu", **kw)


def test_a_step_sees_the_same_examples_however_it_is_split(data_dir):
    one = batches(data_dir, 8, 1).train_step(3)
    four = batches(data_dir, 2, 4).train_step(3)
    assert len(one) == 1 and len(four) == 4 and all(x.shape == (2, 16) for x, _ in four)
    for a, b in zip(one[0], (np.concatenate([m[i] for m in four]) for i in (0, 1))):
        assert np.array_equal(a.numpy(), b)


def test_training_batches_depend_on_seed_and_step_only(data_dir):
    a, b = batches(data_dir), batches(data_dir)
    b.train_step(0)  # what was drawn before does not matter
    x, y = a.train_step(5)[0]
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (8, 16)
    assert all(torch.equal(p, q) for p, q in zip(a.train_step(5)[0], b.train_step(5)[0]))
    assert not (a.train_step(5)[0][0] == a.train_step(6)[0][0]).all()
    assert not (a.train_step(5)[0][0] == batches(data_dir, seed=1).train_step(5)[0][0]).all()
    assert (x[:, 1:] == y[:, :-1]).all()  # Y is X shifted by one


def test_evaluation_batches_are_fixed(data_dir):
    a, b = batches(data_dir), batches(data_dir)
    first = [x.clone() for x, _ in a.eval_batches("val", 3)]
    again = [x for x, _ in a.eval_batches("val", 3)]
    other = [x for x, _ in b.eval_batches("val", 3)]
    assert len(first) == 3
    assert all((p == q).all() and (p == r).all() for p, q, r in zip(first, again, other))
    # a one-batch look (the diagnostics take one) does not replace the full evaluation set
    assert len(list(a.eval_batches("val", 1))) == 1
    assert len(list(a.eval_batches("val", 3))) == 3
    assert not (next(a.eval_batches("train", 3))[0] == first[0]).all()


def test_block_size_larger_than_the_data(data_dir):
    with pytest.raises(UserError, match=r"block_size=200000 is larger than the data.*--block_size"):
        batches(data_dir, block_size=200_000)
    with pytest.raises(UserError, match="train_tokens"):
        batches(data_dir, train_tokens=2_000_000)
    b = batches(data_dir, train_tokens=1000)
    assert max(int(x.max()) for x, _ in b.train_step(0)) < 65 and len(b.splits["train"].tokens) == 1000


def test_token_ids_beyond_the_vocabulary_are_found(data_dir):
    with pytest.raises(UserError, match="vocab_size is 60"):
        batches(data_dir).check_vocab(60)
    batches(data_dir).check_vocab(65)


def test_a_fixed_eval_batch_size_gives_every_trial_the_same_evaluation(data_dir):
    a = batches(data_dir, batch_size=8, eval_batch_size=6)
    b = batches(data_dir, batch_size=2, accum=4, eval_batch_size=6)
    xa = [x for x, _ in a.eval_batches("val", 3)]
    assert [x.shape for x in xa] == [(6, 16)] * 3
    assert all(torch.equal(p, q) for p, q in zip(xa, (x for x, _ in b.eval_batches("val", 3))))
    assert next(batches(data_dir, batch_size=8).eval_batches("val", 3))[0].shape == (8, 16)  # 0: batch_size


def test_evaluation_windows_follow_eval_seed_not_seed(data_dir):
    a = batches(data_dir, seed=1, eval_seed=7)
    b = batches(data_dir, seed=2, eval_seed=7)
    c = batches(data_dir, seed=1, eval_seed=8)
    for split in ("train", "val"):
        xa, xb, xc = ([x for x, _ in s.eval_batches(split, 3)] for s in (a, b, c))
        assert all(torch.equal(p, q) for p, q in zip(xa, xb)), split  # another training seed, the same text
        assert not any(torch.equal(p, r) for p, r in zip(xa, xc)), split  # another eval_seed, other windows
    # training batches follow seed only
    assert not torch.equal(a.train_step(0)[0][0], b.train_step(0)[0][0])
    assert torch.equal(a.train_step(0)[0][0], c.train_step(0)[0][0])
    # the default is TrainConfig's
    from gptcore.config import TrainConfig

    d = batches(data_dir, seed=2)
    assert d.eval_seed == TrainConfig().eval_seed == 1337
    assert torch.equal(next(d.eval_batches("val", 3))[0], next(batches(data_dir, seed=3).eval_batches("val", 3))[0])


# ---------------------------------------------------------------------------------------
# damaged datasets: one check for every entry point


@pytest.mark.parametrize("how", list(DATASET_DAMAGE))
def test_check_dataset_names_the_damaged_file_and_the_fix(damaged_dataset, how):
    root, folder = damaged_dataset(how)
    _, fname, needle = DATASET_DAMAGE[how]
    with pytest.raises(UserError) as e:
        check_dataset(folder, block_size=16)
    msg = str(e.value)
    assert "\n" not in msg and str(folder / fname) in msg and needle in msg, msg
    assert f"`python -m gptcore prepare shakespeare_char --data_dir {root}`" in msg, msg


def test_check_dataset_returns_the_meta(data_dir):
    meta = check_dataset(data_dir / "shakespeare_char", block_size=16)
    assert meta == load_meta(data_dir / "shakespeare_char") and meta["vocab_size"] == 65
    with pytest.raises(UserError, match=r"train\.bin has 100 tokens \(the first --train_tokens\).*--train_tokens"):
        check_dataset(data_dir / "shakespeare_char", block_size=100, train_tokens=100)
    assert check_dataset(data_dir / "shakespeare_char", block_size=99, train_tokens=100) == meta
    # the check of token ids can be left to the caller (the `check` command's data check reports them)
    assert check_dataset(data_dir / "shakespeare_char", block_size=16, vocab=False) == meta


def test_the_prepare_command_in_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare_command(Path("data") / "shakespeare_char") == "python -m gptcore prepare shakespeare_char"
    assert prepare_command(Path("data") / "mine") == "python -m gptcore prepare mine --input FILE"
    (tmp_path / "my data" / "mine").mkdir(parents=True)
    (tmp_path / "my data" / "mine" / "input.txt").write_text("hello")  # prepare finds it by itself
    assert prepare_command(Path("my data") / "mine") == "python -m gptcore prepare mine --data_dir 'my data'"
    with pytest.raises(UserError, match=r"not prepared in my data/mine: run `python -m gptcore prepare mine "
                                        r"--data_dir 'my data'`"):
        check_dataset(Path("my data") / "mine", block_size=16)


def test_an_incomplete_dataset_is_never_prepared_again_or_downloaded(damaged_dataset, monkeypatch):
    def no_download(*a, **kw):
        raise AssertionError("tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    root, folder = damaged_dataset("missing_val")
    before = (folder / "train.bin").stat().st_mtime_ns
    with pytest.raises(UserError, match=r"val\.bin is missing.*prepare shakespeare_char --data_dir"):
        ensure_prepared("shakespeare_char", root)
    assert not (folder / "val.bin").exists() and (folder / "train.bin").stat().st_mtime_ns == before


def test_an_interrupted_preparation_is_done_again(data_dir, tmp_path, shakespeare_input):
    folder = tmp_path / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(b"\x00\x01\x02")  # killed before val.bin and meta.pkl were renamed in
    (folder / "input.txt").write_bytes(shakespeare_input.read_bytes())
    assert ensure_prepared("shakespeare_char", tmp_path / "data", quiet=True) == folder
    assert sha256(folder / "train.bin") == NANOGPT_SHA256["train.bin"] and check_dataset(folder, 16)["vocab_size"] == 65


def test_batches_refuse_damaged_token_files(damaged_dataset):
    for how in ("odd_train", "empty_train", "missing_val", "short_val"):
        root, folder = damaged_dataset(how)
        with pytest.raises(UserError, match=DATASET_DAMAGE[how][2]):
            Batches(folder, 16, 4, 1, 1337, "cpu")


@pytest.mark.parametrize("meta, needle", [
    ({"vocab_size": 0}, "vocab_size is 0"),
    ({"vocab_size": "65"}, "vocab_size is '65'"),
    ({"vocab_size": 2, "itos": {0: "a", 1: "b"}}, "itos and stoi must both be dicts"),
    ({"vocab_size": 3, "itos": {0: "a", 1: "b"}, "stoi": {"a": 0, "b": 1}}, "ids 0..2"),
    ({"vocab_size": 2, "itos": {0: "a", 1: "b"}, "stoi": {"a": 1, "b": 0}}, "not the inverse"),
])
def test_a_meta_pkl_that_is_not_nanogpts(tmp_path, meta, needle):
    folder = tmp_path / "data" / "odd"
    folder.mkdir(parents=True)
    (folder / "meta.pkl").write_bytes(pickle.dumps(meta))
    with pytest.raises(UserError) as e:
        load_meta(folder)
    assert needle in str(e.value) and "not a nanoGPT meta.pkl" in str(e.value) and "prepare odd" in str(e.value)
    ok = {"vocab_size": 2, "itos": {0: "a", 1: "b"}, "stoi": {"a": 0, "b": 1}}
    (folder / "meta.pkl").write_bytes(pickle.dumps(ok))
    assert load_meta(folder) == ok
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 50304}))  # ids only: enough to train
    assert load_meta(folder) == {"vocab_size": 50304}
