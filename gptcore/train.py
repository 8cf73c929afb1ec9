"""The training loop of the tutorial (chapter section 1.2), as a generator of metrics.

`Trainer(cfg).run()` yields the events of `gptcore.record`: one per logged iteration
(`event: "iter"`), per evaluation (`event: "eval"`) and one at the end (`event: "end"`, with
`status` completed or diverged). It never prints metrics itself: the run's sinks (console, JSONL,
a sweep's reporter) turn them into lines or reports (`gptcore.run.Run` drives them).

Step semantics: iteration `it` is the optimizer update number `it`; the evaluation labelled
`step N` measures the model after N updates, and a run ends with an evaluation at `max_iters`
(so `max_iters=1000` makes exactly 1000 updates and logs `step 0`, ..., `step 1000`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from . import diagnostics, record
from .batches import Batches
from .checkpoint import CKPT_FIX, MODEL_ARGS, SHAPE_ARGS, load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .data import check_dataset, ensure_prepared
from .device import autocast_context, peak_memory_mb, reset_peak_memory, resolve_device
from .dtype import choose_dtype
from .eager import eager_optimizers, optimizer_step
from .errors import UserError, write_error
from .model import GPT, GPTConfig
from .schedule import get_lr
from .version import code_version

# load_checkpoint and model_from_checkpoint live in checkpoint.py, get_lr in schedule.py, the device in
# device.py; they are imported from here too
__all__ = ["MODEL_ARGS", "Trainer", "autocast_context", "get_lr", "load_checkpoint", "model_config",
           "model_from_checkpoint", "resolve_device"]
def model_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig:
    """The network a run trains: the shape fields of `cfg` and the dataset's `vocab_size`."""
    return GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                     bias=cfg.bias, vocab_size=vocab_size, dropout=cfg.dropout)


# what to do about a checkpoint that cannot be used, in every message about one
def _underlying(e: BaseException) -> BaseException:
    """The error behind `e`: when a write fails inside torch.save (a full disk, Ctrl-C), torch's
    zip writer, finishing the file anyway, raises a RuntimeError whose context is the real one."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, (OSError, KeyboardInterrupt)):
            return seen
        seen = seen.__context__
    return e


class Trainer:
    """One training run: data, model, optimizer and the loop, for a validated TrainConfig.

    `resume_from` is a ckpt.pt to continue (its model shape wins over cfg, as in nanoGPT);
    with `cfg.init_from == 'resume'` it defaults to `out_dir/ckpt.pt`. The trainer works on a
    copy of `cfg`, `trainer.cfg` (with the checkpoint's shape): the caller's stays as it was. `say` receives the
    human-readable lines that are not metrics (parameter count, checkpoint saves, warnings).
    """

    def __init__(self, cfg: TrainConfig, resume_from: Path | None = None,
                 say: Callable[[str], None] = print):
        # a copy: a resumed checkpoint's shape replaces fields below, and the caller's config
        # (a sweep's trial config, a test's) must stay what the caller wrote
        cfg = dataclasses.replace(cfg)
        self.cfg = cfg
        self.say = say
        self.out_dir = Path(cfg.out_dir)
        if resume_from is None and cfg.init_from == "resume":
            resume_from = self.out_dir / "ckpt.pt"
        self.device, self.device_type, resolved = resolve_device(cfg)
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: same as nanoGPT
            torch.backends.cudnn.allow_tf32 = True
        # peak memory is this run's, not the process's (a sweep may run several trials in one)
        reset_peak_memory(self.device_type)
        if not cfg.compile:
            eager_optimizers()  # seconds less at every start (gptcore/eager.py)

        folder = ensure_prepared(cfg.dataset, cfg.data_dir, block_size=cfg.block_size)
        self.iter_num = 0
        self.best_val_loss = float("inf")
        self.t_start: float | None = None  # when run() began, and its seconds in optimizer steps
        self.train_time = 0.0
        ckpt = None
        if resume_from is not None:
            self.say(f"Resuming training from {resume_from}")
            ckpt = load_checkpoint(Path(resume_from), self.device)
            # the checkpoint's shape wins (as in nanoGPT), before the data is checked for its block size
            cfg = self.cfg = dataclasses.replace(cfg, **{k: ckpt["model_args"][k] for k in SHAPE_ARGS})
        self.meta = check_dataset(folder, cfg.block_size, cfg.train_tokens)
        if ckpt is not None:
            vocab = ckpt["model_args"].get("vocab_size")
            if vocab != self.meta["vocab_size"]:
                raise UserError(f"the checkpoint's vocabulary ({vocab}) differs from dataset {cfg.dataset!r} "
                                f"({self.meta['vocab_size']}): resume with the dataset it was trained on")
            self.iter_num = ckpt["iter_num"]
            self.best_val_loss = ckpt["best_val_loss"]
        self.batches = Batches(folder, cfg.block_size, cfg.batch_size, cfg.gradient_accumulation_steps,
                               cfg.seed, self.device, cfg.train_tokens, cfg.eval_batch_size, cfg.eval_seed)
        # auto on a CPU with native bfloat16: a probe of this network (cached) decides; before the
        # model is built, so that the probe's memory is freed first
        choice = choose_dtype(cfg, model_config(cfg, self.meta["vocab_size"]), self.device_type, resolved)
        self.dtype, self.dtype_why = choice.dtype, choice.why
        self.say(f"dtype: {self.dtype} ({self.dtype_why})")
        self.autocast = autocast_context(self.device_type, self.dtype)

        torch.manual_seed(cfg.seed)
        if ckpt is not None:
            self.model = model_from_checkpoint(ckpt, dropout=cfg.dropout)
        else:
            self.say("Initializing a new model from scratch")
            self.model = GPT(model_config(cfg, self.meta["vocab_size"]))
        self.model.to(self.device)
        self.say(f"number of parameters: {self.model.get_num_params() / 1e6:.2f}M")
        self.optimizer = self.model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                                         (cfg.beta1, cfg.beta2), self.device_type)
        for group, kind in zip(self.optimizer.param_groups, ("decayed", "non-decayed")):
            self.say(f"num {kind} parameter tensors: {len(group['params'])}, with "
                     f"{sum(p.numel() for p in group['params']):,} parameters")
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=(self.dtype == "float16"))
        if ckpt is not None and "optimizer" in ckpt:
            self._load_optimizer(ckpt, Path(resume_from))
            if ckpt.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(ckpt["scaler"])
        ckpt = None  # free the loaded tensors before training allocates its own
        self.train_model = self.model
        if cfg.compile:
            self.say("compiling the model... (the first step takes a while)")
            self.train_model = torch.compile(self.model)
        self.tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size
        self.say(f"tokens per iteration will be: {self.tokens_per_iter:,}")

    def _load_optimizer(self, ckpt: dict, path: Path) -> None:
        """The checkpoint's AdamW state, refused (naming `path`) when it belongs to another network."""
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:  # torch's own checks: groups and sizes
            why = " ".join(str(e).split())[:120]
            raise UserError(f"{path} is damaged (its optimizer state does not fit the model: {why}): "
                            f"{CKPT_FIX}") from None
        # torch checks the number of tensors per group, not their shapes: a mismatch would only
        # fail at the first step, mid-run
        for p, state in self.optimizer.state.items():
            for name in ("exp_avg", "exp_avg_sq"):
                t = state.get(name)
                if isinstance(t, torch.Tensor) and t.shape != p.shape:
                    raise UserError(f"{path} is damaged (its optimizer state {name} has shape {tuple(t.shape)} "
                                    f"for a parameter of shape {tuple(p.shape)}): {CKPT_FIX}")

    # ------------------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The state as a nanoGPT checkpoint dict (plus `scaler`, `meta` and `code_version`)."""
        return {
            "model": self.model.state_dict(),  # the unwrapped module: no `_orig_mod.` keys
            "optimizer": self.optimizer.state_dict(),
            "model_args": {k: getattr(self.model.config, k) for k in MODEL_ARGS},
            "iter_num": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "config": self.cfg.as_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "meta": self.meta,  # the vocabulary, so sampling needs no dataset folder
            "code_version": code_version(),
        }

    def save(self, path: Path | str) -> None:
        """Write the checkpoint atomically: a crash, Ctrl-C or full disk mid-save leaves the previous file intact.

        The data goes to `<path>.tmp`, is flushed to the disk, and is renamed over `path`. When
        the write fails the temporary file is removed; a full disk (any OSError) is a UserError.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a file object, not the path: torch's own file writer reports a failed write as a
            # bare RuntimeError ("unexpected pos ..."), Python's file as OSError(ENOSPC)
            with open(tmp, "wb") as f:
                torch.save(self.checkpoint(), f)
                f.flush()
                os.fsync(f.fileno())  # on the disk before the rename makes it the checkpoint
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):  # the write's own error is the one to report
                tmp.unlink(missing_ok=True)
            cause = _underlying(e)
            if isinstance(cause, OSError):
                kept = "the checkpoint of the last save is kept" if path.is_file() else "no checkpoint was saved"
                raise write_error(path, cause, kept) from None
            if cause is not e:
                raise cause from None  # Ctrl-C mid-save: the caller's KeyboardInterrupt, not torch's cleanup
            raise

    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """Mean loss over the fixed evaluation batches of each split."""
        self.model.eval()
        out = {}
        for split in ("train", "val"):
            total, n = torch.zeros((), device=self.device), 0
            for x, y in self.batches.eval_batches(split, self.cfg.eval_iters):
                with self.autocast:
                    _, loss = self.model(x, y)
                total += loss.float()
                n += 1
            out[split] = (total / n).item()
        self.model.train()
        return out

    def _forward_backward(self, x, y):
        with self.autocast:
            _, loss = self.train_model(x, y)
            loss = loss / self.cfg.gradient_accumulation_steps  # the gradient of the mean over micro-batches
        self.scaler.scale(loss).backward()
        return loss.detach()

    def _step_compiled_or_eager(self, x, y):
        try:
            return self._forward_backward(x, y)
        except Exception as e:
            if self.train_model is self.model:
                raise
            # torch.compile fails lazily, at the first call, on machines without a working
            # compiler toolchain: fall back to eager rather than lose the run
            self.say(f"torch.compile failed ({e.__class__.__name__}); continuing without compile")
            self.train_model = self.model
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward(x, y)

    def _evaluate(self, it: int, lr: float, save: bool, t_start: float, train_time_s: float,
                  steps: int) -> dict[str, Any]:
        """Estimate the losses after `it` updates, keep the best, checkpoint; the `eval` event.

        `t_start` is when the run began (time.time()); `steps` is the number of optimizer steps
        this process made in `train_time_s` seconds.
        """
        cfg = self.cfg
        losses = self.estimate_loss()
        improved = losses["val"] < self.best_val_loss
        saved = False
        if improved or cfg.always_save_checkpoint:
            self.best_val_loss = losses["val"] if improved else self.best_val_loss
            if save and it > 0:  # nothing worth keeping at step 0, as in nanoGPT
                self.say(f"saving checkpoint to {cfg.out_dir}")
                self.save(self.out_dir / "ckpt.pt")
                saved = True
        return record.evaluation(it, self.tokens_per_iter, losses["train"], losses["val"], lr, time.time() - t_start,
                                 train_time_s, steps, self.best_val_loss, peak_memory_mb(self.device_type), saved)

    def _gradient_health(self, it: int) -> None:
        """The tutorial's gradient checks (`debug=True`), said as lines, before the update."""
        if self.cfg.grad_clip == 0.0:
            # float16 gradients are scaled: clipping has unscaled them already, else it is done
            # here (scaler.step then skips its own unscale)
            self.scaler.unscale_(self.optimizer)
        for line in diagnostics.gradient_health(self.model, it)[1]:
            self.say(line)

    def run(self, eval_at_start: bool = True, save_best: bool = True) -> Iterator[dict[str, Any]]:
        """Train to `max_iters`, yielding metrics dicts (see the module docstring).

        `save_best=False` leaves checkpointing to the caller (the sweep trainable saves at
        every evaluation itself). `eval_at_start=False` skips the evaluation of the first
        iteration, which a resumed run already reported.
        """
        cfg = self.cfg
        if cfg.debug:
            for line in diagnostics.run_all(self.model, self.batches, self.meta, self.autocast)[1]:
                self.say(line)
        self.t_start = t_start = time.time()
        self.train_time = 0.0  # seconds spent in optimizer steps, excluding evaluations
        running_mfu = -1.0
        local_iter = 0  # optimizer steps made by this call
        first_iter = self.iter_num
        while True:
            it = self.iter_num
            lr = get_lr(it, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and (eval_at_start or it != first_iter):
                yield self._evaluate(it, lr, save_best, t_start, self.train_time, local_iter)
            if it >= cfg.max_iters or cfg.eval_only:  # eval_only: also after a resume (nanoGPT trains on)
                break

            # reseed per step: dropout masks then depend only on (seed, step), so a resumed
            # run continues exactly as an uninterrupted one would
            torch.manual_seed(cfg.seed * 1_000_003 + it)
            t0 = time.time()
            loss_sum = torch.zeros((), device=self.device)
            for x, y in self.batches.train_step(it):
                loss_sum += self._step_compiled_or_eager(x, y)
            if cfg.grad_clip != 0.0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            if cfg.debug and it % 100 == 0:
                self._gradient_health(it)
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                optimizer_step(self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)
            lossf = loss_sum.item()  # a sync point: the step's work is done after this
            dt = time.time() - t0
            self.train_time += dt
            local_iter += 1
            self.iter_num = it + 1
            if not math.isfinite(lossf):
                yield self.end_event(record.DIVERGED, it, loss=lossf)
                return
            if local_iter >= 5:  # the first steps include warm-up costs; let the average settle
                mfu = self.model.estimate_mfu(cfg.batch_size * cfg.gradient_accumulation_steps, dt,
                                              cfg.mfu_peak_flops)
                running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
            if it % cfg.log_interval == 0:
                yield record.step(it, self.tokens_per_iter, lossf, lr, dt, running_mfu * 100)
        yield self.end_event(record.COMPLETED, self.iter_num)

    def end_event(self, status: str, it: int, loss: float | None = None) -> dict[str, Any]:
        """The `end` event of this run (gptcore.record.end), with its clock and peak memory so far."""
        elapsed = time.time() - self.t_start if self.t_start is not None else 0.0
        return record.end(status, it, elapsed, self.train_time, self.best_val_loss, peak_memory_mb(self.device_type),
                          loss=loss)
