"""Spiking models reach the fixed-point finder only through their smooth surrogate: checked on the real models,
a LIF network made by ``transfer.rate_to_lif`` from a tiny ``RateRNN`` and an input-bias ``LSNN``, not on stand-ins."""

import pytest
import torch

import fixedpoints
from ratenets import RateRNN, RateRNNConfig
from ratenets.checkpoint import build_model, load_checkpoint, save_checkpoint
from spiking import LSNN, LIFNetwork, LSNNConfig
from spiking.alif import ALIFState
from spiking.lsnn_surrogate import LSNNSurrogate
from transfer import rate_to_lif

torch.set_num_threads(1)


def transferred(scale_factor=40.0):
    rate_net = RateRNN(RateRNNConfig(n_units=10, n_inputs=1, n_outputs=1, noise_std=0.0), seed=0).eval()
    return rate_net, rate_to_lif(rate_net, scale_factor)


def test_a_transferred_lif_network_is_analysed_through_the_rate_network_its_weights_came_from():
    rate_net, lif = transferred()
    assert isinstance(lif, LIFNetwork)
    with pytest.raises(TypeError, match="smooth surrogate"):
        fixedpoints.find(lif, torch.randn(8, 10))
    surrogate = fixedpoints.surrogate_for(lif)
    assert surrogate is rate_net
    # the surrogate is the network the LIF weights are: W/λ, W_in, w_out/λ, τd = τ
    assert torch.allclose(lif.w_rec * lif.scale_factor, rate_net.w_rec().detach())
    assert torch.equal(lif.w_in, rate_net.w_in.detach())
    assert torch.allclose(lif.w_out * lif.scale_factor, rate_net.w_out.detach())
    assert torch.equal(lif.tau_d_ms, rate_net.taus_ms().detach())
    # its fixed points are fixed points of the rate network's own step
    with torch.no_grad():
        states = rate_net(torch.zeros(4, 60, 1), noise=False).states
    fps = fixedpoints.find(surrogate, states, n_starts=32, noise=0.1)
    assert len(fps) >= 1 and float(fps.q.max()) < 1e-10
    with torch.no_grad():
        x = fps.xstar.to(torch.float32)
        residual = rate_net.step(x, torch.zeros(len(fps), 1)) - x
    assert float(residual.abs().max()) < 1e-4


def test_a_lif_network_rebuilt_without_its_rate_network_has_no_surrogate(tmp_path):
    _, lif = transferred()
    save_checkpoint(tmp_path / "lif.pt", lif)
    rebuilt = build_model(load_checkpoint(tmp_path / "lif.pt"))
    assert isinstance(rebuilt, LIFNetwork) and rebuilt.rate_net is None
    with pytest.raises(TypeError, match="has no smooth surrogate"):
        fixedpoints.surrogate_for(rebuilt)
    with pytest.raises(TypeError, match="spiking model"):  # refused, not differentiated through its spikes
        fixedpoints.find(rebuilt, torch.randn(8, 10))


def test_an_input_bias_lsnn_is_analysed_through_its_expected_spike_map():
    net = LSNN(LSNNConfig(n_lif=4, n_alif=4, n_inputs=1, n_outputs=1, input_bias=True, input_scale=1.0), seed=0)
    with pytest.raises(TypeError, match="smooth surrogate"):
        fixedpoints.find(net, torch.randn(8, 24))
    surrogate = fixedpoints.surrogate_for(net)
    assert isinstance(surrogate, LSNNSurrogate) and surrogate.lsnn is net and surrogate.n_state == 24
    u = torch.full((1,), 0.5)
    x = torch.zeros(16, 24)
    x[:, 16:] = torch.rand(16, 8, generator=torch.Generator().manual_seed(0))
    trajectory = []
    with torch.no_grad():
        for _ in range(100):
            x = surrogate.step(x, u.expand(16, 1))
            trajectory.append(x)
    fps = fixedpoints.find(surrogate, torch.stack(trajectory), u, n_starts=32, noise=0.01)
    assert len(fps) >= 1 and float(fps.q.max()) < 1e-10
    # a fixed point of the LSNN itself once its spikes are replaced by the expected spikes ẑ* there
    net = net.double()
    v, b, z = surrogate.split(fps.xstar.to(torch.float64))
    with torch.no_grad():
        own = net.step(ALIFState(v, b, z, torch.zeros_like(v, dtype=torch.int32)), u.double().expand(len(fps), 1))
    assert float((own.v - v).abs().max()) < 1e-6 and float((own.b - b).abs().max()) < 1e-6
