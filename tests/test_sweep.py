"""Sweeps (pipeline.sweep): every network an ordinary run folder, validated before any work, resumable after a
SIGKILL of the driver with the same aggregate, failures retried then recorded, other sweeps' folders refused,
the aggregate's arithmetic and graph classes against hand-made answers."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from fixedpoints.compare import describe_graph, graph_class, saddle_graph
from pipeline.errors import ConfigError, RunError
from pipeline.sweep import InlineExecutor, LocalExecutor, load_sweep, run_sweep, sweep_from_dict
from pipeline.sweep.aggregate import within_between
from pipeline.sweep.driver import aggregate_folder
from pipeline.sweep.executors import Outcome

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "sweep_tiny.yaml"


def tiny_data(**changes) -> dict:
    data = yaml.safe_load(TINY.read_text())
    data.update(changes)
    return data


def comparable(summary: dict) -> dict:
    """A sweep summary without what differs between equal sweeps (wall time, attempts)."""
    s = json.loads(json.dumps(summary))
    s.pop("aggregate_seconds", None)
    for row in s["networks"].values():
        row.pop("attempts", None)
    return s


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny sweep run without interruption, one network after another in this process."""
    out = tmp_path_factory.mktemp("reference")
    lines = []
    run_sweep(load_sweep(TINY), out, InlineExecutor(), log=lines.append)
    return out / "tiny_sweep", lines


def test_every_network_is_an_ordinary_run_folder_and_the_aggregate_is_written(reference):
    folder, lines = reference
    state = json.loads((folder / "sweep_state.json").read_text())
    assert sorted(state["networks"]) == ["gru-s0", "gru-s1", "vanilla-s0", "vanilla-s1"]
    assert all(e["status"] == "done" for e in state["networks"].values())
    for name, entry in state["networks"].items():
        run = json.loads((folder / name / "summary.json").read_text())
        assert set(run["stages"]) == {"baselines", "fixedpoints"}
        assert run["models"][entry["architecture"]]["score"] == entry["score"]  # the run folder is the record
    summary = json.loads((folder / "sweep_summary.json").read_text())
    d = np.array(summary["geometry"]["flipflop"]["svcca"]["matrix"])
    assert d.shape == (4, 4) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
    assert ((d >= 0) & (d <= 1)).all()
    assert (folder / "figures" / "mds_svcca.png").stat().st_size > 0
    assert "## Geometry" in (folder / "sweep_report.md").read_text()
    assert sum("score" in x for x in lines) == 4  # one line per finished network


def test_sigkill_of_the_driver_then_restart_skips_finished_networks_and_gives_the_same_aggregate(reference, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pipeline", "sweep", str(TINY), "--out", str(tmp_path), "--processes", "1"]
    state_file = tmp_path / "tiny_sweep" / "sweep_state.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        done = 0
        while time.time() < deadline and proc.poll() is None:
            try:
                state = json.loads(state_file.read_text())
                done = sum(e["status"] == "done" for e in state["networks"].values())
            except (OSError, ValueError):
                done = 0
            if done >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None and done >= 2, "the sweep finished or stalled before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its network process dies with it (PR_SET_PDEATHSIG)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads(state_file.read_text())["progress"]["done"] < 4  # killed halfway
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{done} of 4 networks done before, skipped" in again.stdout
    assert again.stdout.count("(attempt") == 4 - done  # only the rest ran
    got = json.loads((tmp_path / "tiny_sweep" / "sweep_summary.json").read_text())
    want = json.loads((reference[0] / "sweep_summary.json").read_text())
    assert comparable(got) == comparable(want)


def test_an_invalid_axis_value_names_the_network_it_would_build_before_any_work(tmp_path):
    bad = tiny_data(axes={"architectures": ["gru", "rate_lif"], "seeds": [0], "activations": ["cubic"]})
    with pytest.raises(ConfigError, match=r"network gru-cubic-s0 \(architecture gru, seed 0, activation 'cubic'\)"):
        sweep_from_dict(bad).networks()
    bad = tiny_data(axes={"architectures": ["rate_lif"], "seeds": [0, 1], "activations": ["cubic"]})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    r = subprocess.run([sys.executable, "-m", "pipeline", "sweep", str(path), "--out", str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "network rate_lif-cubic-s0" in r.stderr and "activation" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing was started
    with pytest.raises(ConfigError, match="unknown architecture 'transformer'"):
        sweep_from_dict(tiny_data(axes={"architectures": ["transformer"], "seeds": [0]}))


def test_a_folder_holding_another_sweeps_networks_is_refused(reference, tmp_path):
    shutil.copytree(reference[0], tmp_path / "tiny_sweep")
    longer = tiny_data()
    longer["base"]["baselines"]["gru"]["train"]["n_steps"] = 31
    with pytest.raises(RunError, match=r"holds network gru-s0 built with another config "
                                       r"\(baselines\.gru\.train\.n_steps: 30 -> 31\)"):
        run_sweep(sweep_from_dict(longer), tmp_path, InlineExecutor())
    (tmp_path / "plain").mkdir()
    shutil.copytree(reference[0] / "gru-s0", tmp_path / "plain" / "tiny_sweep" / "gru-s0")
    with pytest.raises(RunError, match="holds run folders that no sweep made"):
        run_sweep(load_sweep(TINY), tmp_path / "plain", InlineExecutor())


class ScriptedExecutor:
    """Outcomes scripted per network and attempt (no training): tests the driver's retry bookkeeping alone."""

    name, slots = "scripted", 2

    def __init__(self, failures: dict):
        self.failures, self.calls, self.pending, self.n = failures, [], [], 0

    def submit(self, job):
        self.calls.append(job["name"])
        self.n += 1
        left = self.failures.get(job["name"], 0)
        if left:
            self.failures[job["name"]] = left - 1
            self.pending.append(Outcome(self.n, False, error="RuntimeError: boom"))
        else:
            self.pending.append(Outcome(self.n, True, {"score": 1.0, "scores": {}, "seconds": 0.0}))
        return self.n

    def wait(self, timeout=None):
        out, self.pending = self.pending, []
        return out

    def close(self):
        pass


def test_a_failed_network_is_retried_then_recorded_failed_and_the_sweep_goes_on(tmp_path):
    sweep = sweep_from_dict(tiny_data(retries=2))
    ex = ScriptedExecutor({"gru-s0": 1, "vanilla-s1": 10})
    lines = []
    state = run_sweep(sweep, tmp_path, ex, log=lines.append, aggregate=False)
    nets = state["networks"]
    assert nets["gru-s0"]["status"] == "done" and nets["gru-s0"]["attempts"] == 2
    assert nets["vanilla-s1"] == {**nets["vanilla-s1"], "status": "failed", "attempts": 3,
                                  "error": "RuntimeError: boom"}
    assert nets["gru-s1"]["attempts"] == 1 and nets["vanilla-s0"]["status"] == "done"
    assert ex.calls.count("vanilla-s1") == 3  # 1 + retries
    assert any("vanilla-s1: FAILED after 3 attempts: RuntimeError: boom" in x for x in lines)
    saved = json.loads((tmp_path / "tiny_sweep" / "sweep_state.json").read_text())
    assert saved["networks"]["vanilla-s1"]["status"] == "failed"


def test_a_killed_local_worker_is_a_failed_attempt_of_exactly_its_network(tmp_path):
    sweep = load_sweep(TINY)
    net = sweep.networks()[0]
    ex = LocalExecutor(1)
    from pipeline.config import to_dict

    key = ex.submit({"name": net.name, "config": to_dict(net.config), "out": str(tmp_path), "model": net.model})
    time.sleep(1.0)
    os.kill(ex.pids[0], signal.SIGKILL)
    outcomes = []
    deadline = time.time() + 60
    while not outcomes and time.time() < deadline:
        outcomes = ex.wait(1.0)
    ex.close()
    assert outcomes == [Outcome(key, False, error="worker process died (exit code -9)")]


def test_aggregating_again_reuses_every_cached_network_and_pair(reference, tmp_path):
    shutil.copytree(reference[0], tmp_path / "tiny_sweep")
    lines = []
    summary = aggregate_folder(tmp_path / "tiny_sweep", load_sweep(TINY), log=lines.append)
    assert not [x for x in lines if "states [" in x or "new pairwise" in x]  # nothing recomputed
    want = json.loads((reference[0] / "sweep_summary.json").read_text())
    assert comparable(json.loads(json.dumps(summary))) == comparable(want)


def test_within_and_between_architecture_distances_against_a_hand_made_matrix():
    d = np.array([[0, 1, 4, 5], [1, 0, 6, 7], [4, 6, 0, 3], [5, 7, 3, 0]], dtype=float)
    r = within_between(d, ["a", "a", "b", "b"])
    assert r["within"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert r["between"] == {"mean": 5.5, "std": pytest.approx(np.std([4, 5, 6, 7])), "n": 4}
    assert r["nearest_neighbour_same_architecture"] == 1.0
    r = within_between(d, ["a", "b", "a", "b"])  # now every nearest neighbour is of the other architecture
    assert r["nearest_neighbour_same_architecture"] == 0.0


class _Points:
    def __init__(self, n_unstable):
        self.n_unstable = torch.tensor(n_unstable)

    def __len__(self):
        return len(self.n_unstable)


def test_graph_classes_are_invariant_to_relabelling_and_tell_other_graphs_apart():
    # Two attractors joined by one saddle (the 1-bit flip-flop), points listed in two different orders.
    a = graph_class(_Points([0, 0, 1]), SimpleNamespace(edges=[(2, 0, 1, 0), (2, 0, -1, 1)]))
    b = graph_class(_Points([1, 0, 0]), SimpleNamespace(edges=[(0, 0, 1, 2), (0, 0, -1, 1)]))
    assert a == b
    # The saddle's both directions reach the same attractor: another graph.
    c = graph_class(_Points([0, 0, 1]), SimpleNamespace(edges=[(2, 0, 1, 0), (2, 0, -1, 0)]))
    assert c != a
    # A chain of 3 attractors through 2 saddles differs from 2 saddles both between the same 2 attractors.
    chain = graph_class(_Points([0, 0, 0, 1, 1]), SimpleNamespace(edges=[(3, 0, 1, 0), (3, 0, -1, 1),
                                                                         (4, 0, 1, 1), (4, 0, -1, 2)]))
    double = graph_class(_Points([0, 0, 0, 1, 1]), SimpleNamespace(edges=[(3, 0, 1, 0), (3, 0, -1, 1),
                                                                          (4, 0, 1, 0), (4, 0, -1, 1)]))
    assert chain != double
    # An index-2 saddle (its many directions land wherever their eigenvector signs point) does not count.
    more = graph_class(_Points([0, 0, 0, 1, 1, 2]), SimpleNamespace(edges=[
        (3, 0, 1, 0), (3, 0, -1, 1), (4, 0, 1, 1), (4, 0, -1, 2), (5, 0, 1, 0), (5, 1, -1, 2)]))
    assert more == chain
    g = saddle_graph(_Points([0, 0, 0, 1, 1]), SimpleNamespace(edges=[(3, 0, 1, 0), (3, 0, -1, 1), (4, 0, 1, 1),
                                                                      (4, 0, -1, 2)]))
    assert describe_graph(g) == "3 attractors, 2 saddles, attractor degrees [2x1, 1x2]"
