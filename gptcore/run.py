"""One training run with its files: the lifecycle `python -m gptcore train` and a sweep's trial share.

    run = Run(cfg)                      # nothing on disk yet
    run.start()                         # data and checkpoint checked, the run folder opened
    for event in run.events(): ...      # the trainer's events, written to the run's files and sinks
    run.close()

A run's folder (`cfg.out_dir`) holds `config.json` (the resolved config, the device and dtype,
the code version and what the caller adds), `train.log` (the console lines, as `tee` keeps them),
`metrics.jsonl` (every event of `gptcore.record`) and, when asked, `sample.txt` (a text generated
at the end). `start` builds the trainer before creating anything, so a mistake in the config,
the data or the checkpoint leaves no folder behind; until the folder exists the lines said are
printed and kept, then written at the top of train.log.

A run that resumes takes its checkpoint from a list of candidates, newest first: the first one
that loads wins, each one refused is said (`resume: ...`), and with none loadable the run starts
over. A checkpoint that carries its run's history (train.log and metrics.jsonl beside ckpt.pt, as
a sweep's checkpoints do) brings it along, so the log goes on from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO

from . import record
from .config import TrainConfig
from .errors import UserError, write_error
from .sinks import Console, Jsonl

HISTORY_FILES = ("train.log", "metrics.jsonl")  # a run's history, which a checkpoint may carry beside ckpt.pt


class Sink(Protocol):
    def log(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Run:
    """A training run and its folder (module docstring).

    `stream` receives the console lines (None: the log file only); `facts` are added to
    config.json (a sweep's trial name and id, ...); `sample_chars` > 0 writes that many generated
    characters to sample.txt when the run completes.
    """

    def __init__(self, cfg: TrainConfig, stream: TextIO | None = sys.stdout, facts: dict[str, Any] | None = None,
                 sample_chars: int = 0):
        self.cfg = cfg
        self.out_dir = Path(cfg.out_dir)
        self.stream = stream
        self.facts = dict(facts or {})
        self.sample_chars = sample_chars
        self.trainer = None
        self.resumed = False  # whether the trainer continues a checkpoint
        self.saved_at: int | None = None  # the step out_dir/ckpt.pt holds, as far as this run knows
        self._early: list[str] = []
        self._console: Console | None = None
        self._jsonl: Jsonl | None = None

    def say(self, line: str) -> None:
        """A line for the console and train.log (kept until the log exists)."""
        if self._console is not None:
            self._console.say(line)
            return
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        self._early.append(line)

    # ------------------------------------------------------------------------------------

    def start(self, resume_from: Iterable[Path] = ()) -> None:
        """Build the trainer, from the first loadable of `resume_from` (ckpt.pt paths, newest first) if any,
        then open the run's folder and files.

        With `cfg.init_from == 'resume'` and no candidates, the candidate is out_dir/ckpt.pt, and a
        checkpoint that cannot be loaded is the error it is (the user asked for that file).
        """
        from .train import Trainer  # torch: after the config is known to be valid

        candidates = [Path(p) for p in resume_from]
        if candidates:
            self._start_from(candidates, Trainer)
        else:
            self.trainer = Trainer(self.cfg, say=self.say)
            self.resumed = self.cfg.init_from == "resume"
            self.saved_at = self.trainer.iter_num if self.resumed else None
        self._open()

    def _start_from(self, candidates: list[Path], trainer_class) -> None:
        refused = []
        for path in candidates:
            try:
                self.trainer = trainer_class(self.cfg, resume_from=path, say=self.say)
            except UserError as e:
                refused.append(path)
                self.say(f"resume: {path.parent.name} cannot be loaded ({e})")
                continue
            if refused:
                self.say(f"resume: continuing from {path.parent.name}")
            self._take_history(path.parent)
            self.resumed = True
            self.saved_at = self.trainer.iter_num
            return
        if refused:
            self.say("resume: no loadable checkpoint: this run starts over")
        self.trainer = trainer_class(self.cfg, say=self.say)

    def _take_history(self, folder: Path) -> None:
        """The history a checkpoint carries, up to its step, as the run's own (it goes on from there)."""
        if folder.resolve() == self.out_dir.resolve():
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in HISTORY_FILES:
                if (folder / name).is_file():
                    shutil.copyfile(folder / name, self.out_dir / name)
        except OSError as e:
            raise write_error(getattr(e, "filename", None) or self.out_dir, e) from None

    def _open(self) -> None:
        import torch

        from .version import environment

        cfg = self.cfg = self.trainer.cfg  # with a resumed checkpoint's shape, which config.json records
        t = self.trainer
        resolved = {**cfg.as_dict(), "resolved_device": t.device, "resolved_dtype": t.dtype, "dtype_why": t.dtype_why,
                    "torch_threads": torch.get_num_threads(), "pid": os.getpid(), **environment(), **self.facts}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._console = Console(self.out_dir / "train.log", stream=self.stream, append=self.resumed)
            (self.out_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
            self._jsonl = Jsonl(self.out_dir / "metrics.jsonl", append=self.resumed)
        except OSError as e:
            raise write_error(e.filename or self.out_dir, e) from None
        self._console.write_file(self._early)
        self._early = []
        self.trainer.say = self.say

    # ------------------------------------------------------------------------------------

    def events(self, sinks: Iterable[Sink] = (), eval_at_start: bool = True,
               save_best: bool = True) -> Iterator[dict[str, Any]]:
        """Train to the end: every event goes to train.log, metrics.jsonl and `sinks`, then to the caller.

        `save_best=False` leaves checkpoints to a sink (a sweep's reporter saves at every
        evaluation); `eval_at_start=False` skips the evaluation a resumed run reported already.
        A completed run writes sample.txt (when asked) before its end event goes out. Ctrl-C
        writes an `interrupted` end to metrics.jsonl and is raised again.
        """
        if self.trainer is None or self._console is None:
            raise RuntimeError("Run.start() first")
        sinks = list(sinks)
        trainer = self.trainer
        try:
            for m in trainer.run(eval_at_start=eval_at_start, save_best=save_best):
                if m["event"] == record.EVAL and m["saved"]:
                    self.saved_at = m["iter"]
                if m["event"] == record.END and m["status"] == record.COMPLETED and self.sample_chars:
                    self._write(self.out_dir / "sample.txt", self.sample(self.sample_chars))
                self._console.log(m)
                self._jsonl.log(m)
                for s in sinks:
                    s.log(m)
                yield m
        except KeyboardInterrupt:
            # a save under way when Ctrl-C came was abandoned whole (Trainer.save): the file holds the one before
            with contextlib.suppress(Exception):
                self._jsonl.log(trainer.end_event(record.INTERRUPTED, trainer.iter_num))
            raise

    def sample(self, chars: int) -> str:
        """A text of `chars` characters from the model as it is now, after a newline (or the first character)."""
        from .sample import sample_texts

        t = self.trainer
        stoi = t.meta.get("stoi") or {}
        if not t.meta.get("itos") or not stoi:
            return ""
        start = "\n" if "\n" in stoi else next(iter(stoi))
        (text,) = sample_texts(t.model, t.meta, start, 1, chars, seed=t.cfg.seed, device=t.device,
                               autocast=t.autocast)
        return text

    def _write(self, path: Path, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise write_error(path, e) from None

    def close(self) -> None:
        """Close the run's files (and nothing else: the sinks belong to the caller)."""
        for f in (self._console, self._jsonl):
            if f is not None:
                f.close()
