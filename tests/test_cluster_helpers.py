"""sweeps/cluster.py: address, storage and runtime_env helpers, with fake mounts and node lists."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from gptcore.errors import UserError
from sweeps.tune import cluster
from sweeps.tune.cluster import check_storage, is_network_path, resolve_address, runtime_env_for_cluster

MOUNTS = "\n".join([
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
    "/dev/sda1 / ext4 rw,relatime 0 0",
    "fileserver:/export/sweeps /mnt/shared nfs4 rw,relatime,vers=4.2 0 0",
    "tmpfs /mnt/shared/scratch tmpfs rw 0 0",
    "//nas/lab /mnt/nas\\040box cifs rw 0 0",
    "10.0.0.5@tcp:/lfs /lustre lustre rw 0 0",
    "/dev/sdb1 /data ext4 rw 0 0",
    "",
])


def node(ip: str, alive: bool = True, **resources) -> dict:
    n = {"NodeID": f"id-{ip}", "Alive": alive, "NodeManagerAddress": ip}
    if resources:
        n["Resources"] = resources
    return n


TWO_MACHINES = [node("10.0.0.1", CPU=4.0), node("10.0.0.2", CPU=4.0, GPU=1.0)]


# --- resolve_address -------------------------------------------------------------------------

def test_address_option_wins(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert resolve_address("auto") == "auto"


def test_address_from_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert resolve_address(None) == "10.0.0.1:6379"
    assert resolve_address("") == "10.0.0.1:6379"


def test_no_address_means_local_mode(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "  ")
    assert resolve_address(None) is None


# --- is_network_path -------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("/mnt/shared", True),
    ("/mnt/shared/gptsweep/exp5", True),          # need not exist
    ("/mnt/shared/scratch/x", False),             # a longer, local mount inside the NFS one
    ("/mnt/sharedother/x", False),                # a prefix of the name is not the mount
    ("/mnt/nas box/runs", True),                  # \040 in /proc/mounts is a space
    ("/lustre/project/sweeps", True),
    ("/data/results", False),
    ("/home/me/results", False),
    ("/mnt/shared/../../home/me", False),         # normalised before matching
])
def test_network_path_from_mounts(path, expected):
    assert is_network_path(path, MOUNTS) is expected


def test_relative_path_resolves_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_network_path("results", MOUNTS) is False
    mounts = MOUNTS + f"srv:/x {tmp_path} nfs rw 0 0\n"
    assert is_network_path("results", mounts) is True


def test_symlink_into_nfs_counts(tmp_path):
    (tmp_path / "link").symlink_to("/mnt/shared/sweeps")
    assert is_network_path(tmp_path / "link" / "exp5", MOUNTS) is True


def test_last_mount_on_the_same_point_wins():
    local_then_nfs = "/dev/sdb /r ext4 rw 0 0\nsrv:/x /r nfs rw 0 0\n"
    nfs_then_local = "srv:/x /r nfs rw 0 0\n/dev/sdb /r ext4 rw 0 0\n"
    assert is_network_path("/r/a", local_then_nfs) is True
    assert is_network_path("/r/a", nfs_then_local) is False


def test_garbage_lines_and_empty_mounts():
    assert is_network_path("/mnt/shared/x", "junk\n\n" + MOUNTS) is True
    assert is_network_path("/anything", "") is False


def test_reads_this_system_or_says_false(monkeypatch):
    assert isinstance(is_network_path("/"), bool)
    monkeypatch.setattr(cluster, "_read_mounts", lambda: None)  # not Linux
    assert is_network_path("/mnt/shared/x") is False


# --- check_storage ---------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["s3://bucket/sweeps", "gs://b/p", "abfs://c@acct/p",
                                     "hdfs://nn:8020/p", "S3://Bucket/x"])
def test_cloud_storage_is_fine_on_many_machines(storage):
    check_storage(storage, TWO_MACHINES, mounts_text=MOUNTS)


def test_local_path_on_many_machines_is_refused():
    with pytest.raises(UserError) as err:
        check_storage("results", TWO_MACHINES, mounts_text=MOUNTS)
    msg = str(err.value)
    assert "\n" not in msg
    assert "--storage s3://bucket/prefix" in msg and "NFS" in msg
    assert "2 machines" in msg


def test_file_uri_is_a_local_path():
    with pytest.raises(UserError):
        check_storage("file:///home/me/results", TWO_MACHINES, mounts_text=MOUNTS)


def test_nfs_path_on_many_machines_is_fine():
    check_storage("/mnt/shared/sweeps", TWO_MACHINES, mounts_text=MOUNTS)
    check_storage("file:///mnt/shared/sweeps", TWO_MACHINES, mounts_text=MOUNTS)


@pytest.mark.parametrize("nodes", [
    [],                                                            # not connected yet
    [node("127.0.0.1", CPU=2.0)],                                  # local mode
    [node("127.0.0.1", CPU=1.0), node("127.0.0.1", CPU=1.0)],      # simulated cluster, one machine
    [node("10.0.0.1", CPU=4.0), node("10.0.0.2", alive=False, CPU=4.0)],  # the other is dead
    [node("10.0.0.1")],                                            # resources not reported
])
def test_local_path_on_one_machine_is_fine(nodes):
    check_storage("results", nodes, mounts_text=MOUNTS)


def test_lone_head_without_cpus_means_autoscaled_workers():
    # cluster.yaml's head has CPU 0: before any worker is up, ray.nodes() lists only the head
    head = node("10.0.0.1", memory=8e9, object_store_memory=2e9)
    with pytest.raises(UserError, match="autoscaled workers"):
        check_storage("/home/ubuntu/results", [head], mounts_text=MOUNTS)
    check_storage("s3://bucket/sweeps", [head], mounts_text=MOUNTS)
    check_storage("/mnt/shared/sweeps", [head], mounts_text=MOUNTS)


def test_lone_gpu_only_node_runs_trials():
    check_storage("results", [node("10.0.0.1", GPU=1.0)], mounts_text=MOUNTS)


# --- runtime_env_for_cluster -----------------------------------------------------------------

def test_runtime_env_ships_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    env = runtime_env_for_cluster(Path("."))
    assert env["working_dir"] == str(tmp_path.resolve())
    assert Path(env["working_dir"]).is_absolute()
    assert set(env) == {"working_dir", "excludes"}
    for pattern in ("/.venv/", "/results/", "/data/", "/.git/", "*.pt"):
        assert pattern in env["excludes"]


def test_runtime_env_is_accepted_by_ray(tmp_path, monkeypatch):
    from ray.runtime_env import RuntimeEnv

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    env = runtime_env_for_cluster(tmp_path)
    parsed = RuntimeEnv(**env)
    assert parsed.working_dir() == env["working_dir"]


def test_runtime_env_upload_leaves_out_the_excludes(tmp_path, monkeypatch):
    # Ray's own packer (the one that builds the working_dir upload) over a fake repository.
    from ray._private.runtime_env.packaging import _zip_files

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    repo = tmp_path / "repo"
    keep = ["pyproject.toml", "gptcore/__init__.py", "gptcore/data.py", "gptcore/configs/c.py",
            "sweeps/run.py", "sweeps/cluster.py", "search_spaces/exp5.yaml"]
    drop = [".venv/bin/python", "results/exp5/tuner.pkl", "data/shakespeare_char/train.bin",
            ".git/HEAD", "out/ckpt.pt", "gptcore/__pycache__/model.cpython-311.pyc",
            "gptsweep.egg-info/PKG-INFO"]
    for f in keep + drop:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("x")
    env = runtime_env_for_cluster(repo)
    out = tmp_path / "pkg.zip"
    _zip_files(env["working_dir"], env["excludes"], str(out), include_gitignore=False)
    shipped = {n for n in zipfile.ZipFile(out).namelist() if not n.endswith("/")}
    assert shipped == set(keep)


def test_runtime_env_inside_a_ray_job_is_empty(tmp_path, monkeypatch):
    # `ray job submit --working-dir .` already ships the code; a second working_dir conflicts
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"working_dir": "x"}}')
    assert runtime_env_for_cluster(tmp_path) == {}



# --- S3 settings for the trials on a cluster ---------------------------------------------------

S3_ENV = {"AWS_ENDPOINT_URL": "http://minio.lab:9000", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
          "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret", "AWS_SESSION_TOKEN": "tok",
          "AWS_PROFILE": "lab"}


@pytest.fixture
def aws_env(monkeypatch):
    for var in (*cluster.S3_LOCATION_VARS, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(var, raising=False)
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


def test_s3_storage_sends_where_the_bucket_is_and_no_credentials(tmp_path, aws_env):
    env = runtime_env_for_cluster(tmp_path, "s3://lab-bucket/sweeps")
    assert env["env_vars"] == {"AWS_ENDPOINT_URL": "http://minio.lab:9000", "AWS_DEFAULT_REGION": "eu-west-1",
                               "AWS_REGION": "eu-west-1"}
    assert not {"very-secret", "AKIAEXAMPLE", "tok", "lab"} & set(env["env_vars"].values())
    assert env["working_dir"] == str(tmp_path.resolve())
    from ray.runtime_env import RuntimeEnv

    assert RuntimeEnv(**env).env_vars() == env["env_vars"]  # Ray takes it as it is
    # the trials get nothing of the kind when the results are not in S3, or when nothing is set
    for storage in (None, "results", "/mnt/shared/sweeps", "gs://bucket/sweeps"):
        assert "env_vars" not in runtime_env_for_cluster(tmp_path, storage), storage
    for var in cluster.S3_LOCATION_VARS:
        aws_env.delenv(var, raising=False)
    assert "env_vars" not in runtime_env_for_cluster(tmp_path, "s3://lab-bucket/sweeps")


def test_inside_a_job_only_what_the_job_does_not_set_and_ray_merges_it(tmp_path, aws_env):
    import json

    from ray.runtime_env.runtime_env import _merge_runtime_env

    job = {"working_dir": "gcs://_ray_pkg_x.zip", "env_vars": {"AWS_REGION": "eu-west-1", "HF_HOME": "/cache"}}
    aws_env.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": job}))
    env = runtime_env_for_cluster(tmp_path, "s3://lab-bucket/sweeps")
    assert env == {"env_vars": {"AWS_ENDPOINT_URL": "http://minio.lab:9000", "AWS_DEFAULT_REGION": "eu-west-1"}}
    # what ray.init does inside a job: a variable set twice, or a second working_dir, would be refused (None)
    merged = _merge_runtime_env(job, env)
    assert merged is not None and merged["working_dir"] == job["working_dir"]
    assert merged["env_vars"]["AWS_ENDPOINT_URL"] == "http://minio.lab:9000"
    assert runtime_env_for_cluster(tmp_path, "results") == {}
    aws_env.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "not json")
    assert runtime_env_for_cluster(tmp_path, "s3://lab-bucket/sweeps")["env_vars"]["AWS_REGION"] == "eu-west-1"


def test_the_credentials_note_names_what_stays_here(aws_env):
    note = cluster.credentials_note("s3://lab-bucket/sweeps")
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE is not sent" in note
    assert "very-secret" not in note
    assert cluster.credentials_note("results") is None
    aws_env.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # in a job the job's env_vars decide what trials get
    assert cluster.credentials_note("s3://lab-bucket/sweeps") is None
    aws_env.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        aws_env.delenv(var)
    assert cluster.credentials_note("s3://lab-bucket/sweeps") is None  # an instance profile: nothing to say


# --- a sweep submitted as a Ray job ------------------------------------------------------------

@pytest.mark.parametrize("storage", ["results", "./sweeps-out", "file://results"])
def test_a_job_refuses_a_relative_storage(monkeypatch, storage):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    cluster.check_job_storage(storage)  # outside a job: relative to where the command runs, fine
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip"}}')
    with pytest.raises(UserError, match=f"--storage {storage} is a relative path.*temporary copy"):
        cluster.check_job_storage(storage)
    for fine in ("/srv/sweeps", "s3://bucket/sweeps", "file:///srv/sweeps", "~/sweeps"):
        cluster.check_job_storage(fine)
