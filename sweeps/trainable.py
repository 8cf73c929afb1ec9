"""The Ray Tune trainable: gptcore's training loop as one trial.

This is the only module that calls Tune's session API (`tune.report`, `tune.get_checkpoint`,
`tune.get_context`); Ray has renamed that API several times, so a rename is a one-file change.

A trial's config is flat: `name` plus TrainConfig values (see docs/outputs.md). The trial
reports at every evaluation, with a checkpoint, so a crashed trial restarts from its last
evaluation and ASHA can compare trials at its rungs (its time attribute is `iter`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from ray import tune

from gptcore.config import build_config
from gptcore.data import _locked, cache_dir, is_prepared
from gptcore.errors import UserError
from gptcore.sinks import Console, Jsonl
from gptcore.train import Trainer, resolve_device
from gptcore.version import environment

from .spaces import expand_shape

NON_CONFIG_KEYS = ("name", "stage")  # the run's label and, in a search, search or confirm
SAMPLE_CHARS = 300
# the trial's history; a copy travels in every checkpoint (see `train_gpt`)
HISTORY_FILES = ("train.log", "metrics.jsonl")


def dataset_files(folder: Path) -> dict[str, bytes]:
    """The prepared dataset's three files, to ship to every node through Ray's object store."""
    return {n: (folder / n).read_bytes() for n in ("train.bin", "val.bin", "meta.pkl")}


def materialise(files: dict[str, bytes], dataset: str) -> str:
    """Write the shipped dataset on this node once, and return the data_dir that holds it.

    The folder is named by the content's hash, so concurrent trials on one node share one
    copy (under a lock) and a changed dataset never mixes with an old one.
    """
    digest = hashlib.sha256()
    for n in sorted(files):
        digest.update(n.encode())
        digest.update(files[n])
    data_dir = cache_dir() / "datasets" / digest.hexdigest()[:16]
    folder = data_dir / dataset
    if not is_prepared(folder):
        with _locked(folder):
            if not is_prepared(folder):
                for n in ("train.bin", "val.bin", "meta.pkl"):  # meta.pkl last: it marks completion
                    tmp = folder / f".{n}.tmp"
                    tmp.write_bytes(files[n])
                    os.replace(tmp, folder / n)
    return str(data_dir)


def _synced_dir() -> Path:
    """The folder whose files Ray uploads to the trial's storage folder, from the node the trial runs on.

    That is the trial's working directory, where Ray puts the trial's process (RAY_CHDIR_TO_TRIAL_DIR,
    on by default), synced at every checkpoint. `get_trial_dir()` is not it: in Ray 2.60 it is that
    folder only in a reused worker, and in a fresh one the driver's local staging folder, which exists
    on the driver's machine alone (what a trial on another node writes there never reaches storage;
    on the driver's machine it overwrites the newer files of a retried trial).
    """
    if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") != "0":
        return Path.cwd()
    from ray.train._internal.session import get_session  # private; only when the chdir is turned off

    return Path(get_session().storage.trial_working_directory)


def _trial_config(config: dict[str, Any], trial_dir: Path, data_dir: str):
    values = {k: v for k, v in config.items() if k not in NON_CONFIG_KEYS}
    values = expand_shape(values, "trial config")
    values.update(out_dir=str(trial_dir), data_dir=data_dir, init_from="scratch")
    return build_config(values, where=f"trial {config.get('name', '')}")


def _sample(trainer: Trainer) -> str:
    """A short text from the trained model, for the report (exp5 compares sizes by it)."""
    model = trainer.model
    model.eval()
    itos = trainer.meta.get("itos")
    stoi = trainer.meta.get("stoi", {})
    if not itos:
        return ""
    start = "\n" if "\n" in stoi else next(iter(stoi))
    idx = torch.tensor([[stoi[start]]], dtype=torch.long, device=trainer.device)
    gen = torch.Generator(device=trainer.device).manual_seed(trainer.cfg.seed)
    with torch.no_grad(), trainer.autocast:
        out = model.generate(idx, SAMPLE_CHARS, temperature=0.8, top_k=200, generator=gen)
    return "".join(itos[int(i)] for i in out[0].tolist())


def _candidates(checkpoint) -> list[Path]:
    """The checkpoint Tune gives, then the older ones beside it (local storage), newest first."""
    path = Path(checkpoint.path)
    if not path.is_dir():  # remote storage: only the one Tune gives
        return []
    older = sorted((p for p in path.parent.glob("checkpoint_*") if p.is_dir() and p.name < path.name), reverse=True)
    return [path, *older]


def _start(checkpoint, cfg, trial_dir: Path, devnull) -> tuple[Trainer, Console, bool]:
    """The trainer of this attempt: from the newest loadable checkpoint, else from scratch, saying which.

    A checkpoint can be damaged (a disk that filled, a copy cut short); Ray offers only its
    newest. The older ones Ray kept beside it (num_to_keep 2) are tried next, and with none
    loadable the trial starts over; the trial's train.log says what happened (`resume: ...`).
    """
    if checkpoint is None:
        console = Console(trial_dir / "train.log", stream=devnull)
        return Trainer(cfg, say=console.say), console, False
    paths = _candidates(checkpoint)
    problems = []
    for path in paths or [None]:
        with (checkpoint.as_directory() if path is None else _local(path)) as d:
            d = Path(d)
            console = None
            try:
                # Ray uploads the local files as they are, and a retry on another node (or after
                # --resume, in a new Ray session) starts with none: take the history up to the
                # checkpoint from it, so the log goes on instead of being replaced by the rest
                for n in HISTORY_FILES:
                    if (d / n).is_file():
                        shutil.copyfile(d / n, trial_dir / n)
                console = Console(trial_dir / "train.log", stream=devnull, append=True)
                for p in problems:
                    console.say(p)
                if problems:
                    console.say(f"resume: continuing from {d.name}")
                # Trainer reads the whole checkpoint in its constructor, so the directory may go
                return Trainer(cfg, resume_from=d / "ckpt.pt", say=console.say), console, True
            except UserError as e:
                problems.append(f"resume: {d.name} cannot be loaded ({e})")
                if console is not None:
                    console.close()
    console = Console(trial_dir / "train.log", stream=devnull)
    for p in problems:
        console.say(p)
    console.say("resume: no loadable checkpoint: this trial starts over")
    return Trainer(cfg, say=console.say), console, False


@contextmanager
def _local(path: Path):
    yield path


def train_gpt(config: dict[str, Any], dataset: dict[str, bytes] | None = None) -> None:
    """Run one trial. `dataset` is the prepared dataset's files (see `dataset_files`)."""
    ctx = tune.get_context()
    # the cluster launcher exports OMP_NUM_THREADS=1 on every node; use the CPUs this trial holds
    cpus = ctx.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    trial_dir = _synced_dir()
    trial_dir.mkdir(parents=True, exist_ok=True)
    if dataset is None:
        raise UserError("the trainable needs the dataset's files: build it with tune.with_parameters")
    cfg = _trial_config(config, trial_dir, materialise(dataset, config.get("dataset", "shakespeare_char")))

    devnull = open(os.devnull, "w")
    trainer, console, resumed = _start(tune.get_checkpoint(), cfg, trial_dir, devnull)
    jsonl = Jsonl(trial_dir / "metrics.jsonl", append=resumed)
    device, _, dtype = resolve_device(cfg)
    meta = {**cfg.as_dict(), "name": config.get("name", ""), "trial_id": ctx.get_trial_id(),
            "resolved_device": device, "resolved_dtype": dtype, "torch_threads": torch.get_num_threads(),
            # which process this is, and which GPUs Ray gave it: for the fault and packing tests
            "pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            **environment()}
    (trial_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")

    constant = {"n_params": trainer.model.get_num_params(), "max_iters": cfg.max_iters, "diverged": 0}
    last_eval: dict[str, Any] = {}

    def report(metrics: dict[str, Any]) -> None:
        metrics = {**metrics, **constant, **({"diverged": 1} if metrics.get("diverged") else {})}
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save(Path(tmp) / "ckpt.pt")
            for n in HISTORY_FILES:  # flushed line by line, so complete up to this evaluation
                shutil.copyfile(trial_dir / n, Path(tmp) / n)
            # Ray copies the checkpoint to storage, and the trial's files (train.log, ...) with it
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        for m in trainer.run(eval_at_start=not resumed, save_best=False):
            console.log(m)
            jsonl.log(m)
            if m["event"] == "eval":
                last_eval = {k: v for k, v in m.items() if k not in ("event", "saved")}
                if m["iter"] < cfg.max_iters:
                    report(last_eval)
                # the final evaluation is reported after "done", once the log and sample are complete
            elif m["event"] == "diverged":
                # end this trial as diverged; the sweep goes on with the others
                report({**last_eval, "iter": m["iter"], "diverged": 1,
                        "val_loss": last_eval.get("val_loss", float("nan"))})
                return
            elif m["event"] == "done":
                (trial_dir / "sample.txt").write_text(_sample(trainer), encoding="utf-8")
                if last_eval:
                    report(last_eval)
    finally:
        console.close()
        jsonl.close()
        devnull.close()
