"""cluster.yaml and cluster-onprem.yaml against Ray's own schema and checks, with no cloud call.

`ray up` runs prepare_config (merges ray/autoscaler/<provider>/defaults.yaml), then
validate_config (the JSON schema plus a few cross-field checks), and only then talks to the
cloud. Both steps are run here. For AWS they only read the bundled defaults.yaml: the
`no_cloud` fixture makes boto3/botocore unimportable and any socket connection fail, so a
test that reached for the network would fail instead of silently calling AWS.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cluster.yaml", "cluster-onprem.yaml"]
SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture
def no_cloud(monkeypatch):
    """Make boto3 unimportable and every outgoing connection an error."""
    for mod in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, mod, None)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def ray_validate(cfg: dict) -> dict:
    """What `ray up` does before touching the provider; returns the prepared config."""
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def start_commands(prepared: dict) -> list[str]:
    return prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"]


def setup_commands(prepared: dict) -> list[str]:
    # prepare_config prepends setup_commands to head_/worker_setup_commands
    return prepared["head_setup_commands"] + prepared["worker_setup_commands"]


# --- both files are valid --------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_valid_against_ray_json_schema(name):
    jsonschema.validate(load(name), SCHEMA)


@pytest.mark.parametrize("name", CONFIGS)
def test_valid_for_ray_up_checks_without_cloud(name, no_cloud):
    prepared = ray_validate(load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]
    assert "boto3" not in sys.modules or sys.modules["boto3"] is None


# --- mistakes are rejected -------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("typo", ["max_worker", "setup_comands", "idle_timeout_minute"])
def test_mistyped_top_level_key_fails(name, typo, no_cloud):
    cfg = load(name)
    cfg[typo] = 3 if typo != "setup_comands" else ["echo hi"]
    with pytest.raises(jsonschema.ValidationError, match=typo):
        jsonschema.validate(cfg, SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match=typo):
        ray_validate(cfg)


def test_mistyped_node_type_key_fails(no_cloud):
    cfg = load("cluster.yaml")
    cfg["available_node_types"]["ray.worker.gpu"]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        ray_validate(cfg)


@pytest.mark.parametrize("node_type", ["ray.head.default", "ray.worker.gpu"])
def test_fractional_node_resources_fail(node_type, no_cloud):
    cfg = load("cluster.yaml")
    cfg["available_node_types"][node_type]["resources"]["CPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="0.5"):
        ray_validate(cfg)


def test_onprem_rejects_node_types(no_cloud):
    # The local provider makes its own node type; Ray aborts if the file declares one.
    cfg = load("cluster-onprem.yaml")
    cfg["available_node_types"] = {"x": {"resources": {}, "node_config": {}}}
    with pytest.raises(click.ClickException, match="available_node_types"):
        ray_validate(cfg)


# --- the shape we promise --------------------------------------------------------------------

def test_aws_head_runs_no_trials_and_workers_are_spot_gpus(no_cloud):
    prepared = ray_validate(load("cluster.yaml"))
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert head["max_workers"] == 0
    workers = {k: v for k, v in types.items() if k != prepared["head_node_type"]}
    assert workers
    for worker in workers.values():
        assert worker["min_workers"] == 0 < worker["max_workers"] <= prepared["max_workers"]
        assert worker["resources"]["GPU"] >= 1 and worker["resources"]["CPU"] >= 1
        assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert prepared["idle_timeout_minutes"] > 0
    # terminate, don't stop: a stopped node keeps billing for its disk
    assert prepared["provider"]["cache_stopped_nodes"] is False


def test_onprem_head_runs_no_trials(no_cloud):
    prepared = ray_validate(load("cluster-onprem.yaml"))
    assert prepared["provider"]["type"] == "local"
    head_start = [c for c in prepared["head_start_ray_commands"] if "ray start" in c]
    assert len(head_start) == 1
    args = shlex.split(head_start[0].split(";")[-1])
    assert "--num-cpus=0" in args and "--num-gpus=0" in args
    assert {"ssh_user", "ssh_private_key"} <= set(prepared["auth"])


@pytest.mark.parametrize("name", CONFIGS)
def test_dashboard_stays_on_loopback(name, no_cloud):
    # checked after merging Ray's defaults: the AWS defaults use --dashboard-host=0.0.0.0
    prepared = ray_validate(load(name))
    for cmd in start_commands(prepared):
        for host in re.findall(r"--dashboard-host[= ](\S+)", cmd):
            assert host in ("127.0.0.1", "localhost"), cmd
    assert "ray start --head" in " ".join(prepared["head_start_ray_commands"])


def test_ray_aws_defaults_would_expose_the_dashboard(no_cloud):
    # Why cluster.yaml must keep its own head_start_ray_commands: without them the merged
    # AWS defaults start the head with --dashboard-host=0.0.0.0.
    cfg = load("cluster.yaml")
    del cfg["head_start_ray_commands"]
    merged = " ".join(ray_validate(cfg)["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" in merged


@pytest.mark.parametrize("name", CONFIGS)
def test_token_auth_on_every_node(name, no_cloud):
    prepared = ray_validate(load(name))
    for cmd in start_commands(prepared):
        if "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd, cmd
    assert prepared["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", CONFIGS)
def test_ray_version_matches_installed(name, no_cloud):
    prepared = ray_validate(load(name))
    text = "\n".join(setup_commands(prepared))
    pins = re.findall(r"ray\[[^\]]*\]==([0-9][^\s\"']*)", text)
    image = prepared.get("docker", {}).get("image", "")
    if image:
        pins += re.findall(r"^rayproject/ray(?:-ml)?:([0-9][0-9.]*[0-9])", image)
    assert pins, "no pinned Ray version found"
    assert set(pins) == {ray.__version__}
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f"ray[tune,default]=={ray.__version__}" in pyproject


@pytest.mark.parametrize("name", CONFIGS)
def test_project_synced_and_installed_after_torch(name, no_cloud):
    prepared = ray_validate(load(name))
    assert prepared["file_mounts"]["~/gptsweep"] == "."
    for commands in (prepared["head_setup_commands"], prepared["worker_setup_commands"]):
        torch_at = next(i for i, c in enumerate(commands) if re.search(r"pip install .*torch", c))
        project_at = next(i for i, c in enumerate(commands) if "install -q -e ~/gptsweep" in c)
        assert torch_at < project_at


@pytest.mark.parametrize("name", CONFIGS)
def test_rsync_exclude_lists_results_and_venv(name):
    excludes = load(name)["rsync_exclude"]
    for folder in (".venv", "results", "data", ".git"):
        assert any(e.strip("/") == folder for e in excludes), folder
    assert "*.pt" in excludes


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
@pytest.mark.parametrize("name", CONFIGS)
def test_rsync_exclude_keeps_files_off_the_sync(name, tmp_path):
    # A dry run of rsync with the file's patterns over a fake repository, the way Ray calls it
    # for file_mounts (a directory source gets a trailing "/").
    src = tmp_path / "repo"
    files = ["pyproject.toml", "gptcore/data.py", "gptcore/configs/a.py", "sweeps/run.py",
             "search_spaces/data/keep.yaml", ".venv/bin/python", "results/exp5/x.json",
             "data/shakespeare_char/train.bin", ".git/HEAD", "out/ckpt.pt",
             "sweeps/__pycache__/run.cpython-311.pyc", "gptsweep.egg-info/PKG-INFO"]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text("x")
    cmd = ["rsync", "-a", "--dry-run", "--out-format=%n"]
    for pattern in load(name)["rsync_exclude"]:
        cmd += ["--exclude", pattern]
    out = subprocess.run(cmd + [f"{src}/", str(tmp_path / "dst") + "/"], check=True,
                         capture_output=True, text=True).stdout.split()
    synced = {f for f in out if not f.endswith("/")}
    assert synced == {"pyproject.toml", "gptcore/data.py", "gptcore/configs/a.py",
                      "sweeps/run.py", "search_spaces/data/keep.yaml"}

