"""A sweep in MLflow: one parent run per sweep holding its verdicts and report, one child run per trial.

    --tracker mlflow                      # sqlite:///<results>/<exp>/mlflow.db, beside the sweep
    --tracker mlflow=http://host:5000     # a tracking server
    --tracker mlflow=sqlite:///path/runs.db

The MLflow experiment is named like the sweep's experiment (`exp1`). A trial's run is named by its
run and seed (`baseline s1337`), a child of the sweep's parent run, tagged `experiment`, `run`,
`seed`, `stage`, `sweep` and `trial_id`, with its config as parameters, its losses by step
(`train_loss`, `val_loss`, ...: base.METRICS) and its ending (tag `status`; FINISHED for a trial
that completed or was stopped early, FAILED for one that diverged or errored, KILLED for one the
sweep cut short). The parent holds each verdict as `verdict.<check>` (its outcome) with
`verdict.<check>.effect`, `.stderr`, `.p_value`, `.interval_low`, `.interval_high` and
`.seeds`, and report.md, the tables and plots/ as artifacts. With a SQLite store the artifacts go
to `mlartifacts/` beside the database. MLflow no longer takes a plain folder as its store: such a
URI is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from gptcore.errors import UserError
from gptcore.tracking import require
from sweeps.results.trial import INTERRUPTED, NOT_STARTED
from sweeps.storage.local import blocked_by, driver_file, is_remote, local_path
from sweeps.trackers.base import OK_ENDINGS, Tracker, TrackerSpec, TrialInfo, verdict_fields, verdict_key

MLFLOW_EXTRA = "pip install -e '.[mlflow]'"
DB_NAME = "mlflow.db"
CHECK_TIMEOUT_S = 5  # a server that does not answer within this is refused before the sweep


def default_uri(exp_path: str, make: bool = False) -> str:
    """`sqlite:///<results>/<exp>/mlflow.db` (for a sweep in a bucket: in the driver's cache); `make` makes its
    folder (only once the sweep's folder is known to be free: an existing sweep is never written into)."""
    if make or is_remote(exp_path):
        path = driver_file(exp_path, DB_NAME, "mlflow")
    else:
        path = Path(local_path(exp_path)).expanduser().absolute() / DB_NAME
    return f"sqlite:///{path}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (None for an in-memory one or another scheme)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?")[0]
    return Path(rest) if rest and rest != ":memory:" else None


@contextlib.contextmanager
def _short_timeouts():
    """MLflow's HTTP client with a short timeout and no retries: a server that does not answer is said at once."""
    keys = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_TIMEOUT_S), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _quiet_mlflow() -> None:
    """MLflow's and Alembic's notes (creating the database's tables, ...) off the sweep's screen."""
    import mlflow  # noqa: F401  (it sets its loggers up when imported: after that, quiet them)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")


class MlflowTracker(Tracker):
    """The sweep's trials and verdicts as MLflow runs (module docstring)."""

    kind = "mlflow"

    def __init__(self, spec: TrackerSpec, exp: str, exp_path: str):
        super().__init__(spec, exp, exp_path)
        self.default = spec.target is None
        self.uri = spec.target or default_uri(exp_path)
        self.client = None
        self.experiment_id: str | None = None
        self.parent: str | None = None
        self._parent_over = False

    def where(self) -> str:
        return self.uri

    # -- before the sweep ----------------------------------------------------------------

    def check(self, dry_run: bool = False) -> None:
        who = f"--tracker {self.spec}"
        require("mlflow", MLFLOW_EXTRA, who)
        scheme = self.uri.split("://", 1)[0].lower() if "://" in self.uri else ""
        if scheme in ("", "file"):
            raise UserError(f"{who}: MLflow no longer takes a folder as its store: give a database, e.g. "
                            f"mlflow=sqlite:///{Path(self.uri.removeprefix('file://') or '.').absolute() / DB_NAME}, "
                            "or a tracking server's http(s) URL (or leave out =URI for a database beside the results)")
        if scheme.startswith("sqlite"):
            for module in ("sqlalchemy", "alembic"):  # MLflow's SQL store (mlflow-skinny leaves them out)
                require(module, MLFLOW_EXTRA, f"{who} (a SQLite store)")
            db = sqlite_file(self.uri)
            if db is not None:
                self._check_file(db, who)
            return  # a local file: opened when the first trial starts, with nothing to wait for
        self._probe(who, write=not dry_run)

    def _check_file(self, db: Path, who: str) -> None:
        db = db.expanduser().absolute()
        if db.is_dir():
            raise UserError(f"{who}: {db} is a folder, not a database file: name a file, e.g. {db / DB_NAME}")
        why = blocked_by(db.parent)
        if why is not None:
            fix = ": choose another path" if why.endswith("not a folder") else ""
            raise UserError(f"{who}: cannot write {db}: {why}{fix}")
        if db.exists() and not os.access(db, os.W_OK):
            raise UserError(f"{who}: cannot write {db}: the file is not writable by this user")

    def _probe(self, who: str, write: bool) -> None:
        """A server (or database) must answer within seconds and, for a sweep, take a write."""
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        with _short_timeouts():
            client = MlflowClient(tracking_uri=self.uri)
            try:
                found = client.get_experiment_by_name(self.exp)
            except Exception as e:  # MLflow raises its own and the HTTP library's errors
                raise UserError(f"{who}: it does not answer ({_first_line(e)}): start the tracking server, or "
                                "check the URI") from None
            if not write:
                return
            try:
                exp_id = found.experiment_id if found is not None else client.create_experiment(self.exp)
                client.set_experiment_tag(exp_id, "gptsweep.checked", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            except Exception as e:
                raise UserError(f"{who}: it answers but cannot be written ({_first_line(e)}): check the "
                                "server's permissions, or choose another URI") from None

    # -- the runs ------------------------------------------------------------------------

    def _open(self) -> None:
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        if self.default:
            self.uri = default_uri(self.exp_path, make=True)
        self.client = c = MlflowClient(tracking_uri=self.uri)
        found = c.get_experiment_by_name(self.exp)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            db = sqlite_file(self.uri)
            # MLflow's default for a database is ./mlruns under wherever the command runs: keep them together
            where = (db.expanduser().absolute().parent / "mlartifacts").as_uri() if db is not None else None
            self.experiment_id = c.create_experiment(self.exp, artifact_location=where)
        sweep = self.sweep
        found = self._find(f"tags.sweep = '{_q(sweep.tag)}' and tags.kind = 'sweep'")
        if found is not None:
            self.parent = found.info.run_id
            if found.info.status != "RUNNING":
                c.update_run(self.parent, status="RUNNING")
        else:
            self.parent = c.create_run(self.experiment_id, run_name=sweep.tag,
                                       tags={**sweep.info(), "kind": "sweep"}).info.run_id

    def _find(self, where: str):
        runs = self.client.search_runs([self.experiment_id], filter_string=where, max_results=1)
        return runs[0] if runs else None

    def _start(self, info: TrialInfo) -> tuple[str, int]:
        from mlflow.entities import Param

        c, sweep = self.client, self.sweep
        found = self._find(f"tags.sweep = '{_q(sweep.tag)}' and tags.trial_id = '{_q(info.trial_id)}'")
        if found is not None:  # a resumed sweep: go on with the trial's run, after the steps it holds
            run_id = found.info.run_id
            if found.info.status != "RUNNING":
                c.update_run(run_id, status="RUNNING")
            steps = [m.step for key in ("val_loss", "train_loss") for m in c.get_metric_history(run_id, key)]
            return run_id, max(steps, default=-1)
        tags = {**info.tags(sweep), "kind": "trial", "mlflow.parentRunId": self.parent}
        run_id = c.create_run(self.experiment_id, run_name=info.label, tags=tags).info.run_id
        params = [Param(str(k), str(v)) for k, v in sorted(info.params.items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            c.log_batch(run_id, params=params[i:i + 100])
        return run_id, -1

    def _log(self, handle: str, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(handle, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def _end(self, handle: str, status: str) -> None:
        self.client.set_tag(handle, "status", status)
        state = "FINISHED" if status in OK_ENDINGS else "KILLED" if status in (INTERRUPTED, NOT_STARTED) else "FAILED"
        self.client.set_terminated(handle, status=state)

    def _verdicts(self, verdicts: list[dict[str, Any]], files: list[Path], folder: Path) -> None:
        from mlflow.entities import Metric, RunTag

        c, now, taken = self.client, int(time.time() * 1000), set()
        tags, metrics = [RunTag("verdicts", str(len(verdicts)))], []
        for v in verdicts:
            key = verdict_key(v, taken)
            text, nums = verdict_fields(v)
            tags.append(RunTag(f"verdict.{key}", text["outcome"]))
            tags += [RunTag(f"verdict.{key}.{k}", t) for k, t in text.items() if k != "outcome" and t]
            metrics += [Metric(f"verdict.{key}.{k}", x, now, 0) for k, x in nums.items()]
        for i in range(0, max(len(tags), len(metrics)), 100):
            c.log_batch(self.parent, metrics=metrics[i:i + 100], tags=tags[i:i + 100])
        for f in files:
            c.log_artifact(self.parent, str(f), "plots" if f.parent.name == "plots" else None)
        c.set_terminated(self.parent, status="FINISHED")
        self._parent_over = True

    def _close(self, open_runs: list[Any], interrupted: bool) -> None:
        for run_id in open_runs:
            self._end(run_id, INTERRUPTED)
        if not self._parent_over and self.parent is not None:
            self.client.set_terminated(self.parent, status="KILLED" if interrupted else "FINISHED")
            self._parent_over = True


def _q(text: str) -> str:
    """A value inside an MLflow search filter's quotes."""
    return str(text).replace("'", "")
