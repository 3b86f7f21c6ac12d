"""The pipeline entry as a user meets it: the run directory, resume after SIGKILL, bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from ratenets import RateRNN, load_checkpoint

TINY = {
    "name": "tiny",
    "device": "cpu",
    "stages": ["rate"],
    "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40}},
    "rate": {
        "model": {"n_units": 16},
        "train": {"n_steps": 40, "batch_size": 8, "eval_every": 10, "eval_batch_size": 16, "checkpoint_every": 5},
        "eval_trials": 20,
    },
}


def write_config(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(root, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(root / "transfer" / "run.py"), *map(str, args)],
        capture_output=True, text=True, cwd=root, env=env, timeout=300,
    )


def test_a_run_writes_the_documented_directory_and_skips_finished_stages(tmp_path, capsys):
    # Trained long enough to learn the task: untrained nets score 0.42-0.56 here (chance is 0.5), these 300
    # updates 0.94-1.0 over seeds 0-2.
    learns = {**TINY["rate"]["train"], "n_steps": 300, "lr": 0.02, "batch_size": 16}
    cfg = write_config(tmp_path / "c.yaml", {**TINY, "rate": {**TINY["rate"], "train": learns}})
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "tiny"
    for f in ("config.yaml", "summary.json", "results.h5", "report.md", "checkpoints/rate.pt",
              "figures/rate_training.png", "figures/rate_trials.png"):
        assert (run / f).exists(), f
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"]["rate"]["score"] >= 0.9  # well above chance (0.5)
    assert summary["timings_s"]["rate"] > 0 and summary["task"]["name"] == "flipflop"
    assert load_config(run / "config.yaml") == load_config(cfg)  # the saved config reloads as run
    import h5py

    with h5py.File(run / "results.h5") as f:
        assert f["rate/trajectories"].shape == (20, 40, 16)
        assert f["rate"].attrs["dt_ms"] == 5.0
    capsys.readouterr()
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 0
    assert "rate: done before, skipped" in capsys.readouterr().out


def test_sigkill_mid_training_then_rerun_ends_with_the_uninterrupted_weights(tmp_path, root):
    data = {**TINY, "rate": {**TINY["rate"], "train": {**TINY["rate"]["train"], "n_steps": 300}}}
    cfg = write_config(tmp_path / "c.yaml", data)
    assert run_cli(root, cfg, "--out", tmp_path / "whole").returncode == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(root / "transfer" / "run.py"), str(cfg), "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "tiny" / "checkpoints" / "rate.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and load_checkpoint(ckpt)["step"] >= 20):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)
    assert not killed_at["done"] and 20 <= killed_at["step"] < 300

    again = run_cli(root, cfg, "--out", tmp_path / "killed")
    assert again.returncode == 0, again.stderr
    assert f"resumed from the checkpoint at step {killed_at['step']}" in again.stdout
    whole = load_checkpoint(tmp_path / "whole" / "tiny" / "checkpoints" / "rate.pt")["model_state"]
    resumed = load_checkpoint(ckpt)["model_state"]
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"rate": {"model": {"n_unitz": 5}}}, "config key rate.model.n_unitz is unknown; allowed keys here: n_units"),
        ({"rate": {"train": {"lr": "fast"}}}, "config key rate.train.lr must be a number, got 'fast'"),
        ({"rate": {"model": {"p_rec": 1.5}}}, "config key rate.model: p_rec must be in (0, 1], got 1.5"),
        ({"task": {"name": "flipflop", "params": {"bits": 3}}}, "has no parameter 'bits'"),
        ({"stages": ["rate", "dance"]}, "unknown stage 'dance'"),
    ],
)
def test_bad_configs_stop_before_any_work_with_one_line(tmp_path, edit, message, capsys):
    cfg = write_config(tmp_path / "c.yaml", {**TINY, **edit})
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs" / "tiny").exists()


def test_missing_config_file_and_corrupt_checkpoint_from_the_command_line(tmp_path, root):
    missing = run_cli(root, tmp_path / "nope.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: config file not found: {tmp_path / 'nope.yaml'}"
    cfg = write_config(tmp_path / "c.yaml", TINY)
    ckpt = tmp_path / "runs" / "tiny" / "checkpoints" / "rate.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"half a checkpoint")
    bad = run_cli(root, cfg, "--out", tmp_path / "runs")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith(f"error: checkpoint {ckpt} is corrupt or unreadable")
    assert ckpt.read_bytes() == b"half a checkpoint"  # nothing is overwritten


def test_nan_loss_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", TINY)
    original = RateRNN.forward
    calls = {"n": 0}

    def poisoned(self, inputs, *a, **k):
        out = original(self, inputs, *a, **k)
        calls["n"] += 1
        return out._replace(outputs=out.outputs * float("nan")) if calls["n"] > 12 and self.training else out

    monkeypatch.setattr(RateRNN, "forward", poisoned)
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training loss became nan at step" in err and "last good checkpoint kept" in err
    kept = load_checkpoint(tmp_path / "runs" / "tiny" / "checkpoints" / "rate.pt")
    assert kept["step"] == 10 and not kept["done"]


def test_a_different_config_in_the_same_folder_is_refused(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", TINY)
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 0
    assert main([str(cfg), "--out", str(tmp_path / "runs"), "--seed", "5"]) == 2
    assert "holds a rate stage run with another config (seed: 0 -> 5)" in capsys.readouterr().err


SHRINK = {  # sizes only: every other setting of each config runs as written
    "rate": {"model": {"n_units": 12}, "eval_trials": 2,
             "train": {"n_steps": 2, "batch_size": 2, "eval_batch_size": 2, "eval_every": 1, "checkpoint_every": 1}},
    "transfer": {"n_trials": 2, "eval_trials": 2, "raster_trials": 1},
    "lsnn": {"model": {"n_lif": 4, "n_alif": 4}, "eval_trials": 2,
             "train": {"n_steps": 2, "batch_size": 2, "eval_batch_size": 2, "eval_every": 1, "checkpoint_every": 1}},
    "baselines": {"eval_trials": 2, **{a: {"model": {"n_units": 4}, "train": {
        "n_steps": 2, "batch_size": 2, "eval_batch_size": 2, "eval_every": 1, "checkpoint_every": 1}}
        for a in ("vanilla", "gru", "lstm", "ugrnn")}},
    "force": {"model": {"n_units": 8}, "train_trials": 2, "eval_trials": 2},
    "fixedpoints": {"n_starts": 8},
    "compare": {"n_trials": 2, "meanfield_starts": 4, "perturb_steps": 2},
    "lfads": {"n_trials": 20, "n_neurons": 4, "fp_starts": 8, "synthetic": {"n_conditions": 3, "trials_per_condition": 4, "n_neurons": 5, "n_bins": 12}, "model": {"gen_dim": 6, "fac_dim": 3, "ic_enc_dim": 4, "ci_enc_dim": 4, "con_dim": 4}, "train": {"n_steps": 2, "batch_size": 4, "eval_every": 1, "checkpoint_every": 1}},  # noqa: E501
}


def merged(base: dict, edit: dict) -> dict:
    return {k: merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
            for k, v in {**base, **edit}.items()}


def without(d: dict, keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def test_every_shipped_config_runs_its_own_stages_as_written(root, tmp_path):
    from pipeline.config import from_dict, to_dict
    from pipeline.runner import run_pipeline
    from pipeline.sweep.config import is_sweep_file, load_sweep

    configs = sorted((root / "configs").glob("*.yaml"))
    assert len(configs) >= 10
    sweeps = [path for path in configs if is_sweep_file(path)]
    assert [p.name for p in sweeps] == ["universality.yaml"]
    for path in sweeps:  # a sweep config builds (and so validates) every network's run config
        assert len(load_sweep(path).networks()) == 30
    for path in (p for p in configs if p not in sweeps):
        full = to_dict(load_config(path))
        data = merged(full, {**SHRINK, "device": "cpu"})
        data["transfer"]["scales"] = full["transfer"]["scales"][:2]
        cfg = from_dict(type(load_config(path)), data)
        summary = run_pipeline(cfg, tmp_path / path.stem, log=lambda s: None)
        run = tmp_path / path.stem / full["name"]
        assert list(summary["stages"]) == list(cfg.stages), path.name  # every stage the config names ran
        task = summary["task"]
        assert {k: task[k] for k in full["task"]["params"]} == full["task"]["params"], path.name
        for model in ("rate", "lsnn"):  # each model was built and trained with the config's own settings
            if model in cfg.stages:
                ckpt = load_checkpoint(run / "checkpoints" / f"{model}.pt")
                shrunk = set(SHRINK[model]["model"])
                written = without(full[model]["model"], shrunk)
                assert without(ckpt["model_config"], shrunk) | written == without(ckpt["model_config"], shrunk), (
                    path.name, model)
                trained = without(full[model]["train"], set(SHRINK[model]["train"]))
                assert {k: ckpt["train_config"][k] for k in trained} == trained, (path.name, model)
        if "transfer" in cfg.stages:
            lif = load_checkpoint(run / "checkpoints" / "lif.pt")["model_config"]
            assert lif["params"] == full["transfer"]["lif"], path.name
            assert lif["warmup_ms"] == full["transfer"]["warmup_ms"], path.name
            assert summary["transfer"]["scale"] in full["transfer"]["scales"][:2]


def test_config_errors_name_the_file_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rate: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML at line 1"):
        load_config(bad)


def test_all_stages_fill_the_summary_as_documented(tmp_path):
    from pipeline.config import RunConfig, from_dict
    from pipeline.runner import run_pipeline

    data = {
        **TINY,
        "stages": ["rate", "transfer", "lsnn", "fixedpoints"],
        "transfer": {"scales": [20.0, 40.0], "n_trials": 4, "eval_trials": 4},
        "lsnn": {"model": {"n_lif": 6, "n_alif": 6},
                 "train": {"n_steps": 3, "batch_size": 4, "eval_every": 3, "eval_batch_size": 4}, "eval_trials": 4},
        "fixedpoints": {"n_starts": 32},
    }
    summary = run_pipeline(from_dict(RunConfig, data), tmp_path, log=lambda s: None)
    assert set(summary["models"]) == {"rate", "lif", "lsnn"}
    assert summary["transfer"]["scale"] in (20.0, 40.0) and len(summary["transfer"]["scan"]) == 2
    assert 0 < summary["models"]["lsnn"]["mean_rate_hz"] < 200
    for name in ("rate", "lsnn"):
        fp = summary["fixed_points"][name]
        assert fp["n"] == sum(fp["by_index"].values()) and fp["max_q"] <= 1e-12
    lif = summary["fixed_points"]["lif"]  # not presented as a result of its own
    assert lif["same_map_as"] == "rate" and "n" not in lif and "memory_check" in lif
    assert set(summary["timings_s"]) == {"rate", "transfer", "lsnn", "fixedpoints"}
    run = tmp_path / "tiny"
    import h5py

    with h5py.File(run / "results.h5") as f:
        assert {"rate", "lif", "lsnn"} <= set(f)
        for group in ("rate", "lif", "lsnn"):  # what README's results.h5 row promises for every model
            assert {"trajectories", "outputs", "inputs", "targets", "mask"} <= set(f[group]), group
        assert f["rate/fixed_points/xstar"].shape[1] == 16 and f["lif/spikes"].shape[1] == 3
    for fig in ("transfer_scan", "lif_raster", "lsnn_raster", "fixed_points_rate", "fixed_points_lsnn"):
        assert (run / "figures" / f"{fig}.png").exists(), fig
    report = (run / "report.md").read_text()
    assert "## Rate → LIF transfer" in report and "## Fixed points" in report


def test_the_three_entries_are_the_same_command(root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cfg = write_config(tmp_path / "c.yaml", {**TINY, "rate": {**TINY["rate"], "train": {
        **TINY["rate"]["train"], "n_steps": 2, "eval_every": 1}}})
    entries = ([sys.executable, "-m", "pipeline"], [sys.executable, str(root / "transfer" / "run.py")])
    for i, entry in enumerate(entries):
        done = subprocess.run([*entry, str(cfg), "--out", str(tmp_path / str(i))], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / str(i) / "tiny" / "summary.json").read_text())["models"]["rate"]["score"] >= 0
    script = Path(sys.executable).parent / "ratespike"  # the console script pip installs with the package
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "--stages" in shown.stdout


def test_running_one_stage_again_keeps_the_folder_s_recorded_stages(tmp_path):
    """``--stages fixedpoints --force`` in a finished run folder recomputes that stage; config.yaml still lists
    every stage whose results the folder holds (it listed only the one rerun, and the sweep then refused its own
    network as built with another config)."""
    data = {**TINY, "stages": ["rate", "fixedpoints"], "fixedpoints": {"n_starts": 8}}
    cfg = write_config(tmp_path / "c.yaml", data)
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 0
    assert main([str(cfg), "--out", str(tmp_path / "runs"), "--stages", "fixedpoints", "--force"]) == 0
    run = tmp_path / "runs" / "tiny"
    assert list(load_config(run / "config.yaml").stages) == ["rate", "fixedpoints"]
    assert set(json.loads((run / "summary.json").read_text())["stages"]) == {"rate", "fixedpoints"}
