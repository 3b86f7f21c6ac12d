"""The GRU-family baselines (vanilla RNN, GRU, LSTM, UGRNN): the model contract, step == forward, the LSTM's
[h, c] state, checkpoints, learning a flip-flop, and their pipeline stage with fixed points for each model."""

import json

import h5py
import pytest
import torch
import yaml

import tasks
from baselines import ARCHITECTURES, BaselineRNN, BaselineRNNConfig
from pipeline.config import ConfigError, load_config
from pipeline.runner import run_pipeline
from ratenets import TrainConfig, load_model, save_checkpoint, seeds, train


def tiny(arch: str, seed: int = 1) -> BaselineRNN:
    """A small net whose weights are moved off their init (biases too), so every parameter matters."""
    model = BaselineRNN(BaselineRNNConfig(architecture=arch, n_units=6, n_inputs=2, n_outputs=3, gate_bias=0.5),
                        seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def run_steps(model, x0, inputs):
    x, states = x0, []
    for t in range(inputs.shape[1]):
        x = model.step(x, inputs[:, t])
        states.append(x)
    return torch.stack(states, dim=1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_is_the_step_map_run_over_time(arch):
    model = tiny(arch)
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 25, 2, generator=g)
    x0 = 0.5 * torch.randn(4, model.n_state, generator=g)
    with torch.no_grad():
        out = model(inputs, x0)
        stepped = run_steps(model, x0, inputs)
        from_zero = model(inputs)
    assert out.outputs.shape == (4, 25, 3) and out.states.shape == (4, 25, model.n_state)
    assert torch.allclose(out.states, stepped, atol=1e-6, rtol=0)
    assert torch.allclose(out.outputs, model.readout(stepped), atol=1e-6, rtol=0)
    assert torch.allclose(from_zero.states, run_steps(model, torch.zeros_like(x0), inputs), atol=1e-6, rtol=0)
    assert not torch.allclose(out.states[:, 0], from_zero.states[:, 0])  # x0 is used


def test_lstm_state_is_h_then_c_as_the_stock_module_keeps_them():
    model = tiny("lstm")
    n = model.cfg.n_units
    inputs = torch.randn(3, 10, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(inputs)
        hs, (h_n, c_n) = model.core(inputs)  # the stock nn.LSTM's own h per step and last (h, c)
    assert model.n_state == 2 * n and out.states.shape[-1] == 2 * n
    assert torch.allclose(out.states[..., :n], hs, atol=1e-6, rtol=0)
    assert torch.allclose(out.states[:, -1], torch.cat([h_n[0], c_n[0]], dim=-1), atol=1e-6, rtol=0)
    assert torch.allclose(out.outputs, model.readout(out.states[..., :n]), atol=1e-6, rtol=0)  # readout reads h


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_checkpoint_rebuilds_the_same_network(arch, tmp_path):
    model = tiny(arch)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")  # torch.load(weights_only=True) inside
    assert type(loaded) is BaselineRNN and loaded.cfg == model.cfg
    inputs = torch.randn(2, 12, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(inputs), loaded.eval()(inputs)
    assert torch.equal(a.outputs, b.outputs) and torch.equal(a.states, b.states)


def test_construction_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    nets = [BaselineRNN(BaselineRNNConfig(architecture=a, n_units=5), seed=3) for a in ARCHITECTURES for _ in (0, 1)]
    assert torch.equal(state, torch.get_rng_state())
    for first, again in zip(nets[::2], nets[1::2]):
        assert all(torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"architecture": "transformer"}, "architecture must be one of vanilla, gru, lstm, ugrnn, got 'transformer'"),
        ({"n_units": 0}, "n_units must be an integer in [1, 20000], got 0"),
        ({"recurrent_init": "eye"}, "recurrent_init must be one of normal, orthogonal, uniform, got 'eye'"),
        ({"dt_ms": 0.0}, "dt_ms must be > 0, got 0.0"),
    ],
)
def test_bad_model_settings_are_one_line_naming_the_field(kwargs, message):
    with pytest.raises(ValueError) as e:
        BaselineRNNConfig(**kwargs)
    assert str(e.value) == message


def test_a_tiny_gru_learns_a_one_bit_flip_flop():
    # Chance is 0.5 (a random sign). Untrained nets score 0.17, 0.57, 0.77 over seeds 0-2 (a sign held through the
    # trial matches whatever share of the steps has it); 200 updates reach 1.0 for each.
    task = tasks.make("flipflop", n_bits=1, n_steps_total=40)
    model = BaselineRNN(BaselineRNNConfig(architecture="gru", n_units=8, n_inputs=1, n_outputs=1), seed=0)
    batch = task.held_out().sample(200, seeds.stream(0, seeds.HELD_OUT))

    def score():
        with torch.no_grad():
            return task.score(model.eval()(batch.inputs).outputs, batch)

    before = score()
    train(model, task, TrainConfig(n_steps=200, batch_size=16, lr=0.01, eval_every=50, eval_batch_size=32), seed=0)
    assert before < 0.6 and score() >= 0.95


TINY = {
    "name": "tiny",
    "device": "cpu",
    "stages": ["baselines", "fixedpoints"],
    "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40}},
    "baselines": {
        "architectures": ["gru", "lstm"],
        "gru": {"model": {"n_units": 8}, "train": {"n_steps": 4, "batch_size": 4, "eval_every": 2,
                                                   "eval_batch_size": 4}},
        "lstm": {"model": {"n_units": 5}, "train": {"n_steps": 4, "batch_size": 4, "eval_every": 2,
                                                    "eval_batch_size": 4}},
        "eval_trials": 8,
    },
    "fixedpoints": {"n_starts": 16},
}


def test_the_stage_trains_scores_saves_each_architecture_and_fixedpoints_analyses_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY))
    logs = []
    summary = run_pipeline(load_config(path), tmp_path / "runs", log=logs.append)
    run = tmp_path / "runs" / "tiny"
    assert set(summary["models"]) == {"gru", "lstm"}  # only the listed architectures
    for name, n_units, n_state in (("gru", 8, 8), ("lstm", 5, 10)):
        entry = summary["models"][name]
        assert 0 <= entry["score"] <= 1 and entry["n_trials"] == 8 and entry["train_steps"] == 4
        assert entry["n_units"] == n_units and entry["n_state"] == n_state
        model = load_model(run / "checkpoints" / f"{name}.pt")
        assert model.cfg.architecture == name and model.cfg.n_inputs == 2 and model.cfg.dt_ms == 5.0
        fp = summary["fixed_points"][name]  # analysed like every model, through its own step map
        assert fp["analysed"] == "the model itself" and fp["n"] == sum(fp["by_index"].values())
        for fig in (f"{name}_training", f"{name}_trials", f"fixed_points_{name}"):
            assert (run / "figures" / f"{fig}.png").exists(), fig
    with h5py.File(run / "results.h5") as f:
        assert f["gru/trajectories"].shape == (8, 40, 8) and f["lstm/trajectories"].shape == (8, 40, 10)
        assert f["lstm/fixed_points/xstar"].shape[1] == 10
    assert "## Baselines" in (run / "report.md").read_text()
    logs.clear()
    run_pipeline(load_config(path), tmp_path / "runs", log=logs.append)  # a finished stage is not recomputed
    assert "baselines: done before, skipped (use --force to recompute)" in logs
    assert "fixedpoints: done before, skipped (use --force to recompute)" in logs
    assert json.loads((run / "summary.json").read_text())["models"].keys() == {"gru", "lstm"}
    # Retrained baselines invalidate the fixed points computed from the old weights.
    longer = {**TINY, "stages": ["baselines"], "baselines": {
        **TINY["baselines"], "gru": {**TINY["baselines"]["gru"], "train": {**TINY["baselines"]["gru"]["train"],
                                                                             "n_steps": 6}}}}
    path.write_text(yaml.safe_dump(longer))
    summary = run_pipeline(load_config(path), tmp_path / "runs", force=True, log=logs.append)
    assert summary["models"]["gru"]["train_steps"] == 6 and "fixed_points" not in summary
    assert not (run / "figures" / "fixed_points_gru.png").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"architectures": ["gru", "grux"]},
         "config key baselines: architectures: unknown architecture 'grux'; known: vanilla, gru, lstm, ugrnn"),
        ({"lstm": {"model": {"n_units": -3}}}, "config key baselines.lstm.model: n_units must be an integer"),
        ({"gru": {"model": {"n_inputs": 4}}}, "config key baselines.gru.model.n_inputs is set from the task"),
    ],
)
def test_bad_baselines_settings_stop_the_config_with_one_line(tmp_path, edit, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**TINY, "baselines": {**TINY["baselines"], **edit}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
