"""LSNN (spiking/lsnn.py): the fast scan equals the step-by-step reference in spikes and gradients,
networks never share state, the regulariser, Dale signs and autapses, bad configs, training."""

import dataclasses
import math

import numpy as np
import pytest
import snntorch
import torch
from snntorch import utils as snn_utils

import tasks
from ratenets.checkpoint import build_model, load_checkpoint
from ratenets.rollout import Rollout
from ratenets.training import TrainConfig, train
from spiking.lsnn import LSNN, LSNNConfig, exp_filter
from spiking.rates import mean_rate_hz

SMALL = LSNNConfig(n_lif=6, n_alif=6, n_inputs=3, n_outputs=2, dt_ms=1.0, refractory_steps=2, input_scale=1.0,
                   rec_scale=0.5)  # fmt: skip


def reference_rollout(model, x):
    state = model.initial_state(x.shape[0])
    zs, vs, bs = [], [], []
    for t in range(x.shape[1]):
        state = model.step(state, x[:, t])
        zs.append(state.z), vs.append(state.v), bs.append(state.b)
    z, v, b = torch.stack(zs, 1), torch.stack(vs, 1), torch.stack(bs, 1)
    out = exp_filter(z @ model.w_out.T, model.readout_decay()) + model.b_out
    return Rollout(out, torch.cat([v, b[..., model.cfg.n_lif :]], -1), spikes=z)


@pytest.mark.parametrize("refractory", [0, 2])
@pytest.mark.parametrize("surrogate", ["bellec", "fast_sigmoid"])
def test_scan_matches_step_reference_in_spikes_and_gradients(refractory, surrogate):
    torch.set_default_dtype(torch.float64)
    try:
        model = LSNN(dataclasses.replace(SMALL, refractory_steps=refractory, surrogate=surrogate), seed=3)
        x = torch.randn(4, 40, 3, generator=torch.Generator().manual_seed(0))
        grads = []
        for run in (model, lambda inp: reference_rollout(model, inp)):
            model.zero_grad()
            ro = run(x)
            loss = (ro.outputs**2).mean() + model.regularizer(ro) + ro.states.pow(2).mean()
            loss.backward()
            grads.append([p.grad.clone() for p in model.parameters()])
            if run is model:
                fast = ro
        ref = reference_rollout(model, x)
        assert torch.equal(fast.spikes, ref.spikes) and fast.spikes.sum() > 10
        assert torch.allclose(fast.states, ref.states, atol=1e-12)
        for g_fast, g_ref in zip(*grads):
            assert torch.allclose(g_fast, g_ref, atol=1e-10)
        assert grads[0][0].abs().sum() > 0  # recurrent weights do get a gradient
    finally:
        torch.set_default_dtype(torch.float32)


def test_rollout_shapes_and_rates():
    model = LSNN(SMALL)
    ro = model(torch.randn(2, 30, 3))
    assert ro.outputs.shape == (2, 30, 2)
    assert ro.states.shape == (2, 30, 12 + 6)
    assert ro.spikes.shape == ro.rates.shape == (2, 30, 12)
    assert mean_rate_hz(ro, 1.0) == pytest.approx(float(ro.spikes.detach().mean()) * 1000)
    assert torch.allclose(ro.rates, exp_filter(ro.spikes.detach(), model.readout_decay()), atol=1e-6)


def test_two_networks_side_by_side_never_share_state():
    before = len(snntorch.SpikingNeuron.instances)
    a, b = LSNN(SMALL, seed=0), LSNN(SMALL, seed=0)
    assert len(snntorch.SpikingNeuron.instances) == before
    x = torch.randn(2, 25, 3)
    first = a(x)
    b(torch.randn(2, 25, 3) * 5)  # run the twin on other data in between
    snn_utils.reset(b)  # snntorch's global reset must not reach either network
    again = a(x)
    assert torch.equal(first.spikes, again.spikes) and torch.equal(first.outputs, again.outputs)
    assert a.neurons.threshold.data_ptr() != b.neurons.threshold.data_ptr()


def test_no_autapses_and_dale_signs():
    model = LSNN(dataclasses.replace(SMALL, dale=True, p_inh=0.3), seed=1)
    w = model.w_rec()
    assert torch.count_nonzero(torch.diagonal(w)) == 0
    signs = model.signs
    assert ((w * signs[None, :]) >= 0).all() and (signs < 0).any() and (signs > 0).any()


def test_regulariser_is_zero_at_target_and_positive_elsewhere():
    model = LSNN(dataclasses.replace(SMALL, target_rate_hz=100.0, rate_reg=1.0))
    spikes = torch.zeros(2, 10, 12)
    spikes[:, ::10] = 1.0  # one spike per 10 ms: 100 Hz everywhere
    ro = Rollout(torch.zeros(2, 10, 2), torch.zeros(2, 10, 18), spikes=spikes)
    assert float(model.regularizer(ro)) == pytest.approx(0.0)
    assert float(model.regularizer(ro._replace(spikes=spikes * 0))) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "field, value, message",
    [("target_rate_hz", 0.0, "target_rate_hz must be > 0"), ("target_rate_hz", -3.0, "target_rate_hz must be > 0"),
     ("tau_a_ms", 0.0, "tau_a_ms must be > 0"), ("tau_a_ms", -1.0, "tau_a_ms must be > 0"),
     ("surrogate", "nope", "surrogate must be one of"), ("n_inputs", 0, r"n_inputs must be an integer in \[1, ")],
)  # fmt: skip
def test_bad_config_raises_one_value_error(field, value, message):
    with pytest.raises(ValueError, match=message):
        LSNN(dataclasses.replace(SMALL, **{field: value}))


def test_trains_with_the_project_loop_and_checkpoint_rebuilds(tmp_path):
    torch.manual_seed(0)
    task = tasks.make("flipflop", n_bits=1, n_steps_total=60)
    model = LSNN(LSNNConfig(n_lif=20, n_alif=20, n_inputs=1, n_outputs=1, dt_ms=task.dt_ms))
    cfg = TrainConfig(n_steps=30, batch_size=16, eval_every=10, eval_batch_size=32, checkpoint_every=10)
    result = train(model, task, cfg, checkpoint_path=tmp_path / "lsnn.pt")
    losses = result.history["loss"]
    assert sum(losses[-5:]) < sum(losses[:5])
    rebuilt = build_model(load_checkpoint(tmp_path / "lsnn.pt"))
    x = task.sample(4, torch.Generator().manual_seed(1)).inputs
    model.eval(), rebuilt.eval()
    assert torch.equal(model(x).spikes, rebuilt(x).spikes)


def test_plots_write_pngs(tmp_path):
    from spiking.plots import plot_output_vs_target, plot_raster, plot_rate_histogram
    from spiking.rates import unit_rates_hz

    model = LSNN(SMALL)
    with torch.no_grad():
        ro = model(torch.randn(1, 40, 3))
    paths = [tmp_path / "raster.png", tmp_path / "out.png", tmp_path / "rates.png"]
    plot_raster(ro.spikes[0], paths[0], dt_ms=1.0, groups=model.unit_groups())
    plot_output_vs_target(ro.outputs[0], torch.zeros(40, 2), paths[1], dt_ms=1.0)
    plot_rate_histogram(unit_rates_hz(ro.spikes, 1.0), paths[2], target_hz=10.0)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_digits_code_path_accepts_a_real_mnist_file(tmp_path):
    from bench.lsnn_scores import digits_setup  # the repository root is on sys.path (conftest)

    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": np.arange(6) % 10,
        "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "y_test": np.arange(4) % 10,
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    model, task, _ = digits_setup(str(tmp_path / "mnist.npz"))
    batch = task.sample(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ro = model(batch.inputs)
    assert ro.outputs.shape == (2, 784, 10) and 0.0 <= task.score(ro.outputs, batch) <= 1.0


def test_a_float64_lsnn_integrates_with_float64_decays():
    """One step from rest below threshold: v = (1 - α)(W_in u + b_in) with α = exp(-Δt/τm) to float64 precision,
    in the fast scan and in the step reference alike."""
    model = LSNN(dataclasses.replace(SMALL, input_bias=True, input_scale=0.001), seed=0).double()
    u = torch.full((1, 1, 3), 0.5, dtype=torch.float64)
    alpha = math.exp(-SMALL.dt_ms / SMALL.tau_m_ms)
    expected = (1 - alpha) * (model.input_current(u[:, 0]).detach())
    with torch.no_grad():
        rollout = model(u)
        stepped = model.step(model.initial_state(1), u[:, 0])
    assert rollout.spikes.sum() == 0 and rollout.states.dtype == torch.float64
    assert (rollout.states[0, 0, : SMALL.n_units] - expected[0]).abs().max() < 1e-15
    assert (stepped.v - expected).abs().max() < 1e-15
