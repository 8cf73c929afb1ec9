"""sweeps/resources.py: a trial that no node can hold is refused before any trial starts.

In process over plain `ray.nodes()` dicts and node types, plus one subprocess per case against a
real local Ray (the sweep command, which used to wait forever for a node that never comes).
"""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import assert_user_error
from sweep_helpers import env_for, sweep_args

from gptcore.errors import UserError
from sweeps.tune.resources import NodeType, check_trial_fits, fits, node_types_from_config


def node(cpu: float = 0, gpu: float = 0, alive: bool = True, ip: str = "10.0.0.1", head: bool = False) -> dict:
    resources = {"CPU": cpu, "memory": 8e9, f"node:{ip}": 1.0}
    if gpu:
        resources["GPU"] = gpu  # Ray leaves GPU out where there is none
    if head:
        resources["node:__internal_head__"] = 1.0
    return {"NodeID": ip, "Alive": alive, "NodeManagerAddress": ip, "Resources": resources}


GPU_WORKER = NodeType("ray.worker.gpu", {"CPU": 4.0, "GPU": 1.0}, 4)
CPU_HEAD = NodeType("ray.head.default", {"CPU": 0.0}, 0)


@pytest.mark.parametrize("resources, cpus, gpus, expected", [
    ({"CPU": 2}, 2, 0, True),
    ({"CPU": 2}, 2.5, 0, False),
    ({"CPU": 4}, 1, 1, False),
    ({"CPU": 4, "GPU": 1}, 4, 1, True),
    ({"CPU": 1, "GPU": 1}, 0.5, 1 / 3, True),  # 1/3 of a GPU: compared with slack
    ({"CPU": 1, "GPU": 0.25}, 1, 0.5, False),
])
def test_fits(resources, cpus, gpus, expected):
    assert fits(resources, cpus, gpus) is expected


def test_a_node_that_holds_a_trial_is_enough():
    assert check_trial_fits(1, 0, [node(2)]) is None
    assert check_trial_fits(4, 1, [node(0, head=True), node(4, 1, ip="10.0.0.2")], address="auto") is None


def test_local_mode_names_what_was_asked_what_there_is_and_the_option():
    with pytest.raises(UserError) as e:
        check_trial_fits(4, 0, [node(2, head=True)])
    assert str(e.value) == ("each trial asks for 4 CPUs and 0 GPUs, but this machine's Ray has 2 CPUs and 0 GPUs: "
                            "lower --cpus-per-trial to 2 or less (or raise --num-cpus)")
    with pytest.raises(UserError) as e:
        check_trial_fits(4, 1, [node(2, head=True)])
    assert str(e.value) == ("each trial asks for 4 CPUs and 1 GPU, but this machine's Ray has 2 CPUs and 0 GPUs: "
                            "lower --cpus-per-trial to 2 or less (or raise --num-cpus) and drop --gpus-per-trial "
                            "(or declare logical GPUs with --num-gpus N)")
    with pytest.raises(UserError, match=r"lower --gpus-per-trial to 1 or less$"):
        check_trial_fits(1, 2, [node(8, 1, head=True)])


def test_a_dead_node_holds_nothing():
    with pytest.raises(UserError, match="no alive node"):
        check_trial_fits(1, 0, [node(8, alive=False)], address="10.0.0.1:6379", node_types=[])


def test_a_cluster_that_can_grow_a_large_enough_node_waits_and_says_so():
    note = check_trial_fits(4, 1, [node(0, head=True)], address="auto", node_types=[CPU_HEAD, GPU_WORKER])
    assert note == ("no node of the Ray cluster at auto holds a trial now (each trial asks for 4 CPUs and 1 GPU; it "
                    "has 1 node of 0 CPUs and 0 GPUs): the trials wait for its autoscaler to start a ray.worker.gpu "
                    "node (4 CPUs and 1 GPU)")
    unlimited = NodeType("cpu", {"CPU": 16.0}, -1)  # a node group without a limit (max_count -1)
    assert "start a cpu node" in check_trial_fits(8, 0, [node(2)], address="auto", node_types=[unlimited])


@pytest.mark.parametrize("types, says", [
    (None, "no autoscaler was found to add a larger one"),
    ([], "its autoscaler names no node types"),
    ([CPU_HEAD, GPU_WORKER], "its autoscaler cannot start one (node types: ray.head.default 0 CPUs and 0 GPUs "
                             "(max 0), ray.worker.gpu 4 CPUs and 1 GPU)"),
    ([NodeType("gpu", {"CPU": 8.0, "GPU": 1.0}, 0)], "gpu 8 CPUs and 1 GPU (max 0)"),  # may start none
    ([NodeType("auto", None, 4)], "auto of unstated size"),  # its size unknown: not counted on
])
def test_a_cluster_that_cannot_grow_one_is_refused_in_one_line(types, says):
    nodes = [node(0, head=True), node(4, 1, ip="10.0.0.2"), node(4, 1, ip="10.0.0.3")]
    with pytest.raises(UserError) as e:
        check_trial_fits(8, 1, nodes, address="10.0.0.1:6379", node_types=types)
    msg = str(e.value)
    assert msg.startswith("each trial asks for 8 CPUs and 1 GPU, but no node of the Ray cluster at 10.0.0.1:6379 "
                          "has that (it has 1 node of 0 CPUs and 0 GPUs, 2 nodes of 4 CPUs and 1 GPU) and "), msg
    assert says in msg and msg.endswith("lower --cpus-per-trial / --gpus-per-trial to what one node has, or add a "
                                        "node that large") and "\n" not in msg


def test_node_types_from_an_autoscaler_config_as_ray_fills_it_out():
    config = {"max_workers": 4, "head_node_type": "head",
              "available_node_types": {"head": {"resources": {"CPU": 0}},
                                       "gpu": {"min_workers": 0, "max_workers": 8, "resources": {"CPU": 4, "GPU": 1}},
                                       "cpu": {"resources": {"CPU": 16}},
                                       "auto": {"node_config": {"InstanceType": "m5.large"}}}}
    assert node_types_from_config(config) == [
        NodeType("head", {"CPU": 0.0}, 0),  # the head's type starts no workers unless it says so
        NodeType("gpu", {"CPU": 4.0, "GPU": 1.0}, 4),  # capped by the cluster's max_workers
        NodeType("cpu", {"CPU": 16.0}, 4),  # up to the cluster's max_workers
        NodeType("auto", None, 4),
    ]
    assert node_types_from_config({}) == [] and node_types_from_config({"available_node_types": []}) == []


# --- against a real local Ray: one line and exit 2, where the trials used to wait forever ------

@pytest.mark.parametrize("args, needles", [
    (["--cpus-per-trial", "4"], ["each trial asks for 4 CPUs and 0 GPUs", "has 2 CPUs and 0 GPUs",
                                 "--cpus-per-trial"]),
    (["--gpus-per-trial", "1", "--num-gpus", "0"], ["each trial asks for 1 CPU and 1 GPU", "has 2 CPUs and 0 GPUs",
                                                    "drop --gpus-per-trial"]),
])
def test_a_trial_no_node_can_hold_is_refused_against_a_real_ray(tmp_path, args, needles):
    t0 = time.monotonic()
    r = subprocess.run(sweep_args(tmp_path, "exp1", "--profile", "smoke", *args), env=env_for(tmp_path),
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # sweep_args: --num-cpus 2
    took = time.monotonic() - t0
    assert_user_error(r, *needles)
    assert took < 60, took
    assert not (tmp_path / "results" / "exp1").exists()  # no trial folder, no sweep record
