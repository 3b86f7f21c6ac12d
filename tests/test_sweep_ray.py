"""The Ray executor against a real local Ray cluster (a head and 2 worker nodes of one CPU each, on loopback):
the same per-network results as the local executor, a worker killed mid-sweep retried, an unreachable or
silent address refused with one line within its timeout. Needs the cluster extra (``pip install
'ratespike[cluster]'``); skipped, saying so, where Ray is not installed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: these tests need the cluster extra "
                                        "(pip install 'ratespike[cluster]')")

from pipeline.sweep import InlineExecutor, load_sweep, run_sweep  # noqa: E402

# Under pytest-xdist (the default run) every test here goes to one worker, so the module's cluster starts once
# and no two Ray clusters share the machine.
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "sweep_tiny.yaml"
# Keep every Ray process on loopback: with this set Ray takes 127.0.0.1 as this node's address (otherwise it
# takes the address of the interface that leads outward, and a driver on 127.0.0.1 would not find its node).
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in LOOPBACK}
    os.environ.update(LOOPBACK)
    c = Cluster(initialize_head=True, head_node_args={"node_ip_address": "127.0.0.1", "num_cpus": 0,
                                                      "object_store_memory": 80 * 2**20, "include_dashboard": False})
    try:
        for _ in range(2):
            c.add_node(node_ip_address="127.0.0.1", num_cpus=1, object_store_memory=80 * 2**20)
        c.wait_for_nodes()
        yield c.address
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sweep_cli(out, *extra, timeout=300):
    env = {**os.environ, **LOOPBACK, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(TINY), "--out", str(out), *extra]
    return cmd, env


def per_network(folder: Path) -> dict:
    """What each network's run folder records: every model's score, the fixed points, the checkpoints' weights."""
    out = {}
    for name in ("gru-s0", "gru-s1", "vanilla-s0", "vanilla-s1"):
        s = json.loads((folder / name / "summary.json").read_text())
        out[name] = {"scores": {m: v["score"] for m, v in s["models"].items()},
                     "fixed_points": {m: (v["n"], v["by_index"]) for m, v in s["fixed_points"].items()},
                     "weights": s["stages"]["baselines"]["fingerprint"]}
    return out


def test_a_ray_cluster_gives_the_same_per_network_results_as_the_local_executor(cluster, tmp_path):
    run_sweep(load_sweep(TINY), tmp_path / "local", InlineExecutor(), log=lambda _: None, aggregate=False)
    cmd, env = sweep_cli(tmp_path / "ray", "--ray-address", cluster, "--no-aggregate")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "on the ray executor" in r.stdout and "4 done, 0 failed" in r.stdout
    assert per_network(tmp_path / "ray" / "tiny_sweep") == per_network(tmp_path / "local" / "tiny_sweep")


def _ray_task_pids(function: str = "run_network") -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes().startswith(f"ray::{function}".encode()):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def test_a_worker_killed_mid_sweep_is_retried_and_the_sweep_completes(cluster, tmp_path):
    cmd, env = sweep_cli(tmp_path, "--ray-address", cluster, "--no-aggregate")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    try:
        deadline = time.time() + 120
        while killed is None and time.time() < deadline and proc.poll() is None:
            pids = _ray_task_pids()
            if pids:
                time.sleep(0.5)  # into the network's work
                if pids[0] in _ray_task_pids():
                    os.kill(pids[0], signal.SIGKILL)
                    killed = pids[0]
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed is not None, "no Ray worker was seen running a network"
    assert proc.returncode == 0, out[-2000:]
    assert "retrying" in out and "4 done, 0 failed" in out
    state = json.loads((tmp_path / "tiny_sweep" / "sweep_state.json").read_text())
    attempts = sorted(e["attempts"] for e in state["networks"].values())
    assert attempts == [1, 1, 1, 2] and all(e["status"] == "done" for e in state["networks"].values())


def test_an_unreachable_or_silent_ray_address_is_one_line_within_the_timeout(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cmd, env = sweep_cli(tmp_path, "--ray-address", f"127.0.0.1:{port}", "--ray-timeout", "5")
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in r.stderr
    assert time.time() - t0 < 60
    with socket.socket() as silent:  # listens, never answers: the connection waits for the timeout
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        cmd, env = sweep_cli(tmp_path, "--ray-address", f"127.0.0.1:{silent.getsockname()[1]}", "--ray-timeout", "5")
        t0 = time.time()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "within 5 s" in r.stderr or "cannot connect to a Ray cluster" in r.stderr
    assert time.time() - t0 < 60
    assert not (tmp_path / "tiny_sweep").exists()
