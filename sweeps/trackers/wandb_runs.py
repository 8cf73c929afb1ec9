"""A sweep in Weights & Biases: one W&B run per trial, in one group per sweep, and a run that holds its verdicts.

    --tracker wandb                 # project `gptsweep` (or $WANDB_PROJECT)
    --tracker wandb=PROJECT
    WANDB_MODE=offline ... --tracker wandb      # no account: runs under <results>/<exp>/wandb/

A trial's run is named by its run and seed (`baseline s1337`); its group is the sweep
(`exp1-20261206-172030`) and its job type the run (`baseline`), so that W&B's "group by job type"
shows each run's seeds as a mean with a band; its tags say `experiment=`, `run=`, `seed=`,
`stage=` and `sweep=`; its config is the trial's, with `trial_id`; it logs the losses by step
(`iter`), and its summary says how it ended (`status`; exit code 0 for a trial that completed or
was stopped early). The sweep's own run (job type `sweep`, in the same group) holds every verdict
in its summary (`verdict.<check>` and its figures) and as a table, and the report with its plots
as an artifact. A trial's run id is fixed by the sweep and the trial, so `--resume` continues it;
the steps it already holds are kept in `wandb/gptsweep-steps.json` beside the runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from gptcore.tracking import check_wandb, wandb_mode
from sweeps.results.trial import INTERRUPTED
from sweeps.storage.local import driver_file
from sweeps.trackers.base import OK_ENDINGS, Tracker, TrackerSpec, TrialInfo, verdict_fields, verdict_key

DEFAULT_PROJECT = "gptsweep"
STEPS_FILE = "gptsweep-steps.json"
TABLE = ("check", "outcome", "effect", "stderr", "interval_low", "interval_high", "p_value", "step", "seeds",
         "expectation")


def run_id(*parts: str) -> str:
    """A W&B run id (letters, digits, - and _; at most 64) made of the sweep's tag and a trial id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))[:64]


class WandbTracker(Tracker):
    """The sweep's trials and verdicts as W&B runs (module docstring)."""

    kind = "wandb"

    def __init__(self, spec: TrackerSpec, exp: str, exp_path: str):
        super().__init__(spec, exp, exp_path)
        self.project = spec.target or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.dir: Path | None = None
        self._steps: dict[str, int] = {}
        self._sweep_run = None

    def check(self, dry_run: bool = False) -> None:
        check_wandb(f"--tracker {self.spec}")

    def where(self) -> str:
        if wandb_mode() in ("offline", "dryrun"):
            runs = self.dir / "wandb" if self.dir else "wandb/"
            return f"{runs} (offline: `wandb sync` uploads them)"
        return f"W&B project {self.project}"

    # -- the runs ------------------------------------------------------------------------

    def _open(self) -> None:
        import wandb  # noqa: F401  (imported here: seconds, and only when asked for)

        # the runs beside the sweep (its folder, or the driver's cache for a sweep in a bucket)
        self.dir = driver_file(self.exp_path, "wandb", "wandb").parent
        (self.dir / "wandb").mkdir(parents=True, exist_ok=True)
        try:
            self._steps = {str(k): int(v) for k, v in json.loads((self.dir / "wandb" / STEPS_FILE).read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._steps = {}

    def _settings(self):
        import wandb

        # the driver's own console and machine are not the trial's: W&B leaves both alone
        quiet = dict(silent=True, console="off", x_disable_stats=True, disable_git=True, x_save_requirements=False,
                     save_code=False)
        try:
            return wandb.Settings(**quiet)
        except (TypeError, ValueError):  # another version of wandb without some of these
            return wandb.Settings(silent=True, console="off")

    def _init(self, rid: str, **kw: Any):
        import wandb

        return wandb.init(project=self.project, id=rid, resume="allow", dir=str(self.dir), reinit="create_new",
                          settings=self._settings(), **kw)

    def _start(self, info: TrialInfo) -> tuple[Any, int]:
        sweep = self.sweep
        tags = [f"{k}={v}"[:64] for k, v in info.tags(sweep).items() if k != "trial_id" and v != ""]
        run = self._init(run_id(sweep.tag, info.trial_id), name=info.label, group=sweep.tag, job_type=info.name,
                         tags=tags, config={**info.params, "trial_id": info.trial_id, "sweep": sweep.tag})
        last = self._steps.get(info.trial_id, -1)
        if getattr(run, "resumed", False):  # online: W&B knows where the run stands
            last = max(last, int(getattr(run, "step", 0) or 0) - 1)
        return (run, info.trial_id), last

    def _log(self, handle: Any, step: int, metrics: dict[str, float]) -> None:
        run, trial_id = handle
        run.log({**metrics, "iter": step}, step=step)
        self._steps[trial_id] = step
        self._save_steps()

    def _save_steps(self) -> None:
        path = self.dir / "wandb" / STEPS_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self._steps, indent=1) + "\n")
        tmp.replace(path)

    def _end(self, handle: Any, status: str) -> None:
        run, _ = handle
        run.summary["status"] = status
        run.finish(exit_code=0 if status in OK_ENDINGS else 1)

    def _verdicts(self, verdicts: list[dict[str, Any]], files: list[Path], folder: Path) -> None:
        import wandb

        sweep = self.sweep
        run = self._init(run_id(sweep.tag, "sweep"), name=f"{sweep.tag} verdicts", group=sweep.tag, job_type="sweep",
                         tags=[f"experiment={sweep.exp}"[:64], f"sweep={sweep.tag}"[:64], "verdicts"],
                         config=sweep.info())
        taken: set[str] = set()
        rows = []
        for v in verdicts:
            key = verdict_key(v, taken)
            text, nums = verdict_fields(v)
            run.summary[f"verdict.{key}"] = text["outcome"]
            for k, x in nums.items():
                run.summary[f"verdict.{key}.{k}"] = x
            run.summary[f"verdict.{key}.seeds"] = text["seeds"]
            rows.append([key, text["outcome"], *(nums.get(k) for k in TABLE[2:8]), text["seeds"], text["expectation"]])
        run.summary["verdicts"] = len(verdicts)
        run.log({"verdicts": wandb.Table(columns=list(TABLE), data=rows)})
        if files:
            art = wandb.Artifact(run_id(sweep.tag, "report"), type="report")
            for f in files:
                art.add_file(str(f), name=f"plots/{f.name}" if f.parent.name == "plots" else f.name)
            run.log_artifact(art)
        run.finish(exit_code=0)

    def _close(self, open_runs: list[Any], interrupted: bool) -> None:
        for run in open_runs:
            self._end(run, INTERRUPTED)
