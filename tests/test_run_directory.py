"""The run directory never loses work and never lies: kills, forced reruns, stale results, broken files,
bad inputs and two runs at once, each as a user or a broken disk would meet them."""

import errno
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from pipeline.lock import RunLock
from ratenets import RateRNN, load_checkpoint, load_model

TINY = {
    "name": "tiny",
    "device": "cpu",
    "stages": ["rate", "transfer", "lsnn", "fixedpoints"],
    "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40}},
    "rate": {
        "model": {"n_units": 16},
        "train": {"n_steps": 20, "batch_size": 8, "eval_every": 10, "eval_batch_size": 16, "checkpoint_every": 5},
        "eval_trials": 20,
    },
    "transfer": {"scales": [20.0, 40.0], "n_trials": 4, "eval_trials": 4},
    "lsnn": {"model": {"n_lif": 6, "n_alif": 6},
             "train": {"n_steps": 6, "batch_size": 4, "eval_every": 3, "eval_batch_size": 4, "checkpoint_every": 2},
             "eval_trials": 4},
    "fixedpoints": {"n_starts": 32},
}
RATE_ONLY = {**TINY, "stages": ["rate"]}
VOLATILE = ("timings_s", "versions", "seconds", "search_seconds")  # wall-clock figures differ between runs


def write_config(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def run(cfg, out, *extra):
    return main([str(cfg), "--out", str(out), *map(str, extra)])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def stable(summary):
    """The summary without wall-clock figures."""
    if isinstance(summary, dict):
        return {k: stable(v) for k, v in summary.items() if k not in VOLATILE}
    if isinstance(summary, list):
        return [stable(v) for v in summary]
    return summary


def h5_contents(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_run(a, b):
    assert stable(json.loads((a / "summary.json").read_text())) == stable(json.loads((b / "summary.json").read_text()))
    for name in ("rate", "lif", "lsnn"):
        wa = load_checkpoint(a / "checkpoints" / f"{name}.pt")["model_state"]
        wb = load_checkpoint(b / "checkpoints" / f"{name}.pt")["model_state"]
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    ha, hb = h5_contents(a / "results.h5"), h5_contents(b / "results.h5")
    assert ha.keys() == hb.keys()
    for k in ha:
        assert np.array_equal(ha[k], hb[k], equal_nan=True), k
    assert sorted(p.name for p in (a / "figures").iterdir()) == sorted(p.name for p in (b / "figures").iterdir())
    assert not list(b.rglob("*.tmp")) and not list(b.rglob("*.pending.pt"))


# A run killed with SIGKILL just before the k-th rename onto a given file name (each write is a temporary
# file renamed into place, so this is the last moment of that write), from a wrapper around the CLI.
KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
target, nth = sys.argv[1], int(sys.argv[2])
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) == target:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from pipeline.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_killed_inside_each_stage_in_turn_then_rerun_gives_the_uninterrupted_run(tmp_path, root):
    cfg = write_config(tmp_path / "c.yaml", TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-c", KILLER.format(root=str(root))]
    whole = subprocess.run([*cli, "-", "0", str(cfg), "--out", str(tmp_path / "whole")], env=env, cwd=root,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    kills = [
        ("rate.pt", 2),  # mid rate training, after the first checkpoint
        ("results.h5", 1),  # the first write of results.h5 (the file does not exist yet)
        ("lif.pt", 1),  # inside the transfer stage
        ("lsnn.pt", 2),  # mid LSNN training
        ("fixed_points_lsnn.png", 1),  # inside the fixed-point stage, between two models
        ("summary.json", 1),  # between a stage and its record
        ("report.md", 1),  # during the report
    ]
    out = tmp_path / "killed"
    for target, nth in kills:
        proc = subprocess.run([*cli, target, str(nth), str(cfg), "--out", str(out)], env=env, cwd=root,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, (target, proc.returncode, proc.stderr[-2000:])
    again = subprocess.run([*cli, "-", "0", str(cfg), "--out", str(out)], env=env, cwd=root,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert_same_run(tmp_path / "whole" / "tiny", out / "tiny")
    for name in ("rate", "lif", "lsnn"):  # every checkpoint of the run rebuilds
        assert isinstance(load_model(out / "tiny" / "checkpoints" / f"{name}.pt"), torch.nn.Module)


def test_force_with_a_device_that_is_not_there_keeps_every_weight(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    assert run(cfg, tmp_path) == 0
    ckpt = tmp_path / "tiny" / "checkpoints" / "rate.pt"
    before = ckpt.read_bytes()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1", "cudaXYZ", "gpu"):
        assert run(cfg, tmp_path, "--force", "--device", device) == 2
        assert device in one_line_error(capsys)
        assert ckpt.read_bytes() == before


def test_a_forced_stage_that_fails_keeps_the_old_weights(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    assert run(cfg, tmp_path) == 0
    ckpt = tmp_path / "tiny" / "checkpoints" / "rate.pt"
    before = ckpt.read_bytes()
    original = RateRNN.forward

    def poisoned(self, inputs, *a, **k):
        out = original(self, inputs, *a, **k)
        return out._replace(outputs=out.outputs * float("nan")) if self.training else out

    monkeypatch.setattr(RateRNN, "forward", poisoned)
    assert run(cfg, tmp_path, "--force") == 2
    assert "training loss became nan" in one_line_error(capsys)
    assert ckpt.read_bytes() == before  # the old weights survive the failed recomputation
    monkeypatch.setattr(RateRNN, "forward", original)
    capsys.readouterr()
    assert run(cfg, tmp_path) == 0  # and the next plain run uses them, without training
    assert "resumed" in capsys.readouterr().out and ckpt.read_bytes() == before


def test_leftover_temporary_files_of_a_killed_write_never_block_a_run(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "results.h5.tmp").write_bytes(b"\x89HDF\r\n half")  # the fixed name older versions used
    (folder / ".results.h5.abc123.tmp").write_bytes(b"\x89HDF\r\n half")
    assert run(cfg, tmp_path) == 0
    assert run(cfg, tmp_path, "--force") == 0
    assert not list(folder.rglob("*.tmp"))
    assert "rate/trajectories" in h5_contents(folder / "results.h5")


def test_rerunning_one_stage_invalidates_what_was_computed_from_it(tmp_path, capsys):
    data = {**TINY, "stages": ["rate", "fixedpoints"]}
    cfg = write_config(tmp_path / "c.yaml", data)
    assert run(cfg, tmp_path) == 0
    run_dir = tmp_path / "tiny"
    old_points = h5_contents(run_dir / "results.h5")["rate/fixed_points/xstar"]

    # Same settings, forced: the same weights come out, so the fixed points still hold and are kept.
    assert run(cfg, tmp_path, "--force", "--stages", "rate") == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "fixedpoints" in summary["stages"] and "rate/fixed_points/xstar" in h5_contents(run_dir / "results.h5")

    # Other training, forced: the old fixed points are of another network and must not be reported.
    longer = {**data, "rate": {**data["rate"], "train": {**data["rate"]["train"], "n_steps": 30}}}
    cfg2 = write_config(tmp_path / "c2.yaml", longer)
    assert run(cfg2, tmp_path, "--force", "--stages", "rate") == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "fixed_points" not in summary and "fixedpoints" not in summary["stages"]
    assert "rate/fixed_points/xstar" not in h5_contents(run_dir / "results.h5")
    assert not (run_dir / "figures" / "fixed_points_rate.png").exists()
    assert "## Fixed points" not in (run_dir / "report.md").read_text()

    # The next run recomputes them from the new network: the same as a fresh run of that config.
    assert run(cfg2, tmp_path) == 0
    assert run(cfg2, tmp_path / "fresh") == 0
    new_points = h5_contents(run_dir / "results.h5")["rate/fixed_points/xstar"]
    fresh = h5_contents(tmp_path / "fresh" / "tiny" / "results.h5")
    assert np.array_equal(new_points, fresh["rate/fixed_points/xstar"])
    assert not np.array_equal(new_points, old_points) or new_points.shape != old_points.shape


def test_a_setting_the_old_config_left_at_its_default_still_counts(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    assert run(cfg, tmp_path) == 0
    summary_before = (tmp_path / "tiny" / "summary.json").read_text()
    edited = {**RATE_ONLY, "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40,
                                                                    "pulse_prob": 0.5}}}
    assert run(write_config(tmp_path / "c.yaml", edited), tmp_path) == 2
    assert "task.pulse_prob: 0.08 -> 0.5" in one_line_error(capsys)
    assert (tmp_path / "tiny" / "summary.json").read_text() == summary_before
    assert "pulse_prob" not in (tmp_path / "tiny" / "config.yaml").read_text()
    # Setting the default explicitly is the same run.
    same = {**RATE_ONLY, "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40,
                                                                  "pulse_prob": 0.08}}}
    assert run(write_config(tmp_path / "c.yaml", same), tmp_path) == 0


def test_files_on_disk_are_checked_not_the_summary(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", {**TINY, "stages": ["rate", "transfer"]})
    assert run(cfg, tmp_path) == 0
    run_dir = tmp_path / "tiny"
    whole = h5_contents(run_dir / "results.h5")
    (run_dir / "results.h5").unlink()
    capsys.readouterr()
    assert run(cfg, tmp_path) == 0
    out = capsys.readouterr().out
    assert "rate: earlier results no longer hold (results.h5 lacks rate)" in out
    assert "resumed from the checkpoint at step 20" in out  # re-evaluated from its weights, not retrained
    again = h5_contents(run_dir / "results.h5")
    assert all(np.array_equal(whole[k], again[k]) for k in whole)

    lif = run_dir / "checkpoints" / "lif.pt"
    lif.write_bytes(lif.read_bytes()[:200])  # truncated
    capsys.readouterr()
    assert run(cfg, tmp_path) == 0
    assert "transfer: earlier results no longer hold (checkpoint" in capsys.readouterr().out
    assert isinstance(load_model(lif), torch.nn.Module)

    (run_dir / "results.h5").write_bytes(b"not an HDF5 file")
    capsys.readouterr()
    assert run(cfg, tmp_path) == 0
    assert "results.h5 is unreadable: kept as results.h5.corrupt-1" in capsys.readouterr().out
    assert (run_dir / "results.h5.corrupt-1").read_bytes() == b"not an HDF5 file"

    summary = json.loads((run_dir / "summary.json").read_text())
    summary["models"]["rate"]["score"] = None  # a null score: redone, and the report never crashes on it
    (run_dir / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert run(cfg, tmp_path) == 0
    assert "rate: earlier results no longer hold (no score for model rate" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["models"]["rate"]["score"] is not None


def test_empty_inputs_are_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    assert run(empty, tmp_path) == 2
    assert "is empty" in one_line_error(capsys)
    assert run(write_config(tmp_path / "c.yaml", {**TINY, "stages": []}), tmp_path) == 2
    assert "config key stages is empty" in one_line_error(capsys)
    assert run(write_config(tmp_path / "c.yaml", TINY), tmp_path, "--stages", " , ") == 2
    assert "config key stages is empty" in one_line_error(capsys)
    assert run(write_config(tmp_path / "c.yaml", {**TINY, "stages": ["fixedpoints"]}), tmp_path) == 2
    assert "no model of this run has results" in one_line_error(capsys)
    assert not (tmp_path / "tiny" / "summary.json").exists() or "fixedpoints" not in json.loads(
        (tmp_path / "tiny" / "summary.json").read_text())["stages"]


def test_a_second_run_in_the_same_folder_is_refused_while_the_first_holds_it(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    with RunLock(tmp_path / "tiny"):
        assert run(cfg, tmp_path) == 2
        err = one_line_error(capsys)
        assert f"is in use by pid {os.getpid()}" in err and str(tmp_path / "tiny" / ".lock") in err
    assert run(cfg, tmp_path) == 0  # released with its holder


def test_two_runs_started_at_once(tmp_path, root):
    # long enough that the first run still trains while the second starts (its imports take seconds)
    data = {**RATE_ONLY, "rate": {**RATE_ONLY["rate"], "train": {**RATE_ONLY["rate"]["train"], "n_steps": 3000}}}
    cfg = write_config(tmp_path / "c.yaml", data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(root / "transfer" / "run.py"), str(cfg), "--out", str(tmp_path)]
    first = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "tiny" / ".lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().startswith("pid")):
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and f"is in use by pid {first.pid}" in second.stderr
    assert json.loads((tmp_path / "tiny" / "summary.json").read_text())["models"]["rate"]["train_steps"] == 3000


def test_folder_and_disk_errors_are_one_line(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    (tmp_path / "tiny").write_text("a file where the run folder should be")
    assert run(cfg, tmp_path) == 2
    assert "a file of that name is in the way" in one_line_error(capsys)
    (tmp_path / "blocked").write_text("a file where the parent folder should be")
    assert run(cfg, tmp_path / "blocked") == 2
    assert "cannot write the run folder" in one_line_error(capsys)

    import ratenets.atomic

    for code, words in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")):
        def full(*a, code=code, words=words, **k):
            raise OSError(code, words)

        monkeypatch.setattr(ratenets.atomic.tempfile, "mkstemp", full)
        assert run(cfg, tmp_path / "disk") == 2
        assert words in one_line_error(capsys)
        monkeypatch.undo()


def test_corrupt_files_are_one_line(tmp_path, capsys):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    assert run(binary, tmp_path) == 2
    assert "not UTF-8" in one_line_error(capsys)
    listed = tmp_path / "list.yaml"
    listed.write_text("- rate\n- transfer\n")
    assert run(listed, tmp_path) == 2
    assert "must hold a mapping" in one_line_error(capsys)

    cfg = write_config(tmp_path / "c.yaml", RATE_ONLY)
    assert run(cfg, tmp_path) == 0
    summary = tmp_path / "tiny" / "summary.json"
    for content in (b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"half": '):
        summary.write_bytes(content)
        assert run(cfg, tmp_path) == 2
        assert "summary.json is corrupt" in one_line_error(capsys)
        assert summary.read_bytes() == content  # nothing overwritten without --force
    assert run(cfg, tmp_path, "--force") == 0  # --force keeps the corrupt summary aside and starts over
    assert (tmp_path / "tiny" / "summary.json.corrupt-1").read_bytes() == b'{"half": '

    transfer_only = write_config(tmp_path / "t.yaml", {**TINY, "stages": ["rate", "transfer"]})
    ckpt = tmp_path / "tiny" / "checkpoints" / "rate.pt"
    payload = load_checkpoint(ckpt)
    del payload["model_class"]
    torch.save(payload, ckpt)
    assert run(transfer_only, tmp_path) == 2
    assert "model_class" in one_line_error(capsys)


@pytest.mark.parametrize("edit, message", [
    ({"transfer": {"scales": [20.0, float("nan")]}}, "transfer.scales[1] must be a finite number"),
    ({"transfer": {"scales": [float("inf")]}}, "transfer.scales[0] must be a finite number"),
    ({"fixedpoints": {"noise": float("nan")}}, "fixedpoints.noise must be a finite number"),
    ({"task": {"name": "flipflop", "params": {"n_bits": 2.5}}}, "config key task.params: n_bits must be an integer"),
    ({"task": {"name": "flipflop", "params": {"n_bits": True}}}, "config key task.params: n_bits must be an integer"),
    ({"task": {"name": "flipflop", "params": {"dt_ms": float("inf")}}}, "config key task.params: dt_ms"),
    ({"task": {"name": "flipflop", "params": {"n_steps_total": 40, "settle_steps": 39}}}, "settle_steps"),
    ({"rate": {"model": {"n_units": 2_000_000}}}, "config key rate.model: n_units"),
    ({"seed": -1}, "config key seed must be in [0, 4294967295]"),
    ({"seed": 2**40}, "config key seed must be in [0, 4294967295]"),
    ({"transfer": {"warmup_ms": 7.0}}, "config key transfer: warmup_ms 7.0 is not a whole number"),
])
def test_bad_values_stop_before_any_work(tmp_path, capsys, edit, message):
    cfg = write_config(tmp_path / "c.yaml", {**TINY, **edit})
    assert run(cfg, tmp_path) == 2
    err = one_line_error(capsys)
    assert message in err and "rate.model: config key" not in err and err.count("config key") == 1, err
    assert not (tmp_path / "tiny").exists()


def test_a_number_yaml_reads_as_text_is_taken_as_the_number_meant(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(RATE_ONLY).replace("eval_every: 10", "eval_every: 10\n    lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text() and load_config(path).rate.train.lr == 0.001
    with pytest.raises(ConfigError, match="must be a number, got 'fast'"):
        load_config(write_config(path, {**RATE_ONLY, "rate": {"train": {"lr": "fast"}}}))


def test_removing_a_group_with_its_own_subgroup_listed_too(tmp_path):
    """A stage that wrote ``a`` and ``a/b`` is removed in one call: deleting ``a`` takes ``a/b`` with it, and the
    second name must not fail (it did: KeyError, the run stopped with a traceback)."""
    import h5py
    import numpy as np

    from pipeline.outputs import RunWriter

    w = RunWriter(tmp_path)
    w.h5_group("a", {"x": np.zeros(3)})
    w.h5_group("a/b", {"y": np.ones(2)})
    w.h5_group("c", {"z": np.arange(4)})
    w.remove_h5_groups(["a", "a/b"])
    with h5py.File(tmp_path / "results.h5") as f:
        assert list(f) == ["c"] and np.array_equal(f["c/z"][()], np.arange(4))
