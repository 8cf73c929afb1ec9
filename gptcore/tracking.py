"""Weights & Biases for the trainer, as nanoGPT does it: `wandb_log=True` sends each evaluation to W&B.

    python -m gptcore train config/train_shakespeare_char.py --wandb_log=True
    WANDB_MODE=offline python -m gptcore train ... --wandb_log=True   # no account: a run under ./wandb

nanoGPT's contract, kept here: `wandb.init(project=wandb_project, name=wandb_run_name, config=...)`
once, then at every evaluation `iter`, `train/loss`, `val/loss`, `lr` and `mfu` (percent; nanoGPT's
-100 before any step was measured). W&B is an optional package (`pip install -e '.[wandb]'`): it is
imported only when asked for, and its absence, or W&B online without a key, is one line before
any training. The checks are shared with the sweeps' W&B tracker (sweeps/trackers/).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any
from urllib.parse import urlparse

from . import record
from .config import TrainConfig
from .errors import UserError, first_line

WANDB_EXTRA = "pip install -e '.[wandb]'"
OFFLINE_MODES = ("offline", "dryrun", "disabled")  # WANDB_MODE values that need no account
DEFAULT_WANDB_HOST = "https://api.wandb.ai"  # where W&B sends runs unless WANDB_BASE_URL says otherwise


def require(module: str, extra: str, who: str) -> None:
    """Refuse, in one line naming the extra to install, an optional package that is not installed.

    Checked without importing it (a tracker's import takes seconds), so the refusal comes at once."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{who} needs the {module} package, which is not installed: {extra}")


def wandb_mode() -> str:
    """W&B's mode as its environment sets it: online (the default), offline, dryrun or disabled."""
    return (os.environ.get("WANDB_MODE") or "online").strip().lower()


def _stored_key(host: str) -> bool:
    """Whether `wandb login` stored a key for `host` (W&B keeps it in the user's netrc file)."""
    try:  # W&B's own reader knows where its netrc is (NETRC, ~/.netrc, ~/_netrc)
        from wandb.sdk.lib.wbauth.wbnetrc import read_netrc_auth

        return bool(read_netrc_auth(host=host))
    except Exception:  # another version of wandb: read the default netrc the same way
        import netrc

        try:
            found = netrc.netrc(os.environ.get("NETRC") or None).authenticators(urlparse(host).hostname or host)
        except (OSError, netrc.NetrcParseError):
            return False
        return bool(found and found[2])


def check_wandb(who: str) -> None:
    """Refuse, in one line, what would make W&B fail or hang later: the package missing, or W&B online
    with no key (it would ask for one on the terminal, or fail in a job). Offline mode needs no account."""
    require("wandb", WANDB_EXTRA, who)
    mode = wandb_mode()
    if mode in OFFLINE_MODES:
        return
    if mode != "online":
        raise UserError(f"WANDB_MODE={mode} is not a mode of W&B: use online, offline or disabled")
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    if not _stored_key(os.environ.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST):
        raise UserError(f"{who} logs to W&B online, but no W&B key is set here: run `wandb login` (or set "
                        "WANDB_API_KEY), or log without an account with WANDB_MODE=offline")


class WandbSink:
    """A run sink (gptcore.run.Sink) that logs what nanoGPT logs to W&B (module docstring).

    The W&B run starts when the sink is made and ends at `close`, with exit code 0 for a run that
    completed, 1 otherwise (diverged, interrupted).
    """

    def __init__(self, cfg: TrainConfig, config: dict[str, Any] | None = None):
        check_wandb("wandb_log=True")
        import wandb

        try:
            self.run = wandb.init(project=cfg.wandb_project, name=cfg.wandb_run_name,
                                  config=config if config is not None else cfg.as_dict())
        except Exception as e:  # W&B's own errors (a refused key, no network): one line, like any setting
            why = first_line(e)
            raise UserError(f"wandb_log=True: W&B could not start the run ({why}): check `wandb login`, or log "
                            "offline with WANDB_MODE=offline") from None
        self.mfu = -100.0  # nanoGPT's running_mfu starts at -1.0 and is logged times 100
        self.status: str | None = None

    def log(self, m: dict[str, Any]) -> None:
        kind = m.get("event")
        if kind == record.STEP:
            self.mfu = float(m["mfu"])
        elif kind == record.EVAL:
            self.run.log({"iter": m["iter"], "train/loss": m["train_loss"], "val/loss": m["val_loss"],
                          "lr": m["lr"], "mfu": self.mfu})
        elif kind == record.END:
            self.status = m["status"]

    def close(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.summary["status"] = self.status or record.INTERRUPTED
            run.finish(exit_code=0 if self.status == record.COMPLETED else 1)
