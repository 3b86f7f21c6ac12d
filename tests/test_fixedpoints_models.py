"""Fixed points of trained flip-flop networks, an integrator line attractor, stock modules, the user's model
left unchanged, spiking models through their surrogate, and bad inputs."""

import copy
import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fixedpoints

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_fixedpoint_nets import load  # noqa: E402


@functools.cache
def flipflop_points(name: str, n_starts: int, noise: float):
    """The saved network, its payload and its fixed points (found once per test session)."""
    rnn, payload = load(name)
    return rnn, payload, fixedpoints.find(rnn, payload["states"], n_starts=n_starts, noise=noise, tol_q=1e-12)


@pytest.mark.parametrize("name, n_starts, noise", [("rnn32", 1024, 1.0), ("gru16", 512, 0.5)])
def test_flipflop_has_8_attractors_and_the_saddles(name, n_starts, noise):
    _, _, fps = flipflop_points(name, n_starts, noise)
    by_index = fps.by_index()
    assert by_index.get(0, 0) == 8
    assert by_index.get(1, 0) >= 12
    assert float(fps.q.max()) <= 1e-10


def readout_bits(payload, x: torch.Tensor) -> torch.Tensor:
    """The bits the trained readout reports at states ``x`` (its sign per output)."""
    weight, bias = payload["readout"]["weight"].double(), payload["readout"]["bias"].double()
    return (x.double() @ weight.T + bias) > 0


@pytest.mark.parametrize("name, n_starts, noise", [("rnn32", 1024, 1.0), ("gru16", 512, 0.5)])
def test_flipflop_saddles_join_memories_one_bit_apart(name, n_starts, noise):
    """The 3-bit flip-flop's memories are the 8 corners of a cube; each index-1 saddle sits on an edge:
    its unstable mode leads one way to one memory and the other way to a memory that differs in exactly one
    bit (Sussillo & Barak 2013), and the saddles cover all 12 edges."""
    rnn, payload, fps = flipflop_points(name, n_starts, noise)
    # shuffled, so that point indices are not sorted by stability: the edges must name the right points
    fps = fps[torch.randperm(len(fps), generator=torch.Generator().manual_seed(0))]
    topo = fixedpoints.topology(rnn, fps)
    bits = readout_bits(payload, fps.xstar)
    stable = fps.stable.nonzero()[:, 0].tolist()
    corners = {tuple(bits[k].tolist()) for k in stable}
    assert len(stable) == 8 and len(corners) == 8  # 8 memories, each a different 3-bit word
    saddles = (fps.n_unstable == 1).nonzero()[:, 0].tolist()
    assert len(saddles) >= 12
    pairs = set()
    for saddle in saddles:
        ends = {direction: attractor for s, mode, direction, attractor in topo.edges if s == saddle and mode == 0}
        assert set(ends) == {1, -1}, f"saddle {saddle}: both ways of its unstable mode must be followed"
        first, second = ends[1], ends[-1]
        assert first in stable and second in stable, f"saddle {saddle} leads to {first}, {second}: not memories"
        assert first != second, f"saddle {saddle}: both ways end at memory {first}"
        assert int((bits[first] != bits[second]).sum()) == 1, f"saddle {saddle} joins memories {first}, {second}"
        pairs.add(frozenset((first, second)))
    assert len(pairs) == 12  # every edge of the cube has its saddle


def line_attractor_net(n_units=16, seed=0):
    """h' = tanh(W h): W = v vᵀ + 0.3·(a random orthogonal map on v's complement). Along v the map is
    s' ≈ tanh(s): slope 1 − s² ≈ 1, a line of slow points; the other directions contract by ≈ 0.3."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n_units, generator=g, dtype=torch.float64)
    v /= v.norm()
    q, _ = torch.linalg.qr(torch.randn(n_units, n_units, generator=g, dtype=torch.float64))
    proj = torch.eye(n_units, dtype=torch.float64) - torch.outer(v, v)
    w = torch.outer(v, v) + 0.3 * proj @ q @ proj
    return (lambda h, u: torch.tanh(h @ w.T)), v


def test_integrator_line_attractor_from_slow_points():
    step, v = line_attractor_net()
    s = torch.linspace(-0.12, 0.12, 64, dtype=torch.float64)
    states = s[:, None] * v[None, :]
    fps = fixedpoints.find_slow_points(step, states, q_max=1e-7, n_starts=None, tol_unique=2e-3)
    assert len(fps) >= 20
    top = fps.eigvals.abs()[:, 0]
    assert ((top - 1).abs() <= 0.02).all()
    assert (fps.eigvals.abs()[:, 1:] < 1).all()
    pca = fps.pca(2)
    assert float(pca.explained_variance_ratio[0]) > 0.99  # the points lie along one curve


def test_stock_lstm_multilayer_state_is_h_then_c():
    torch.manual_seed(0)
    lstm = nn.LSTM(2, 5, num_layers=2, batch_first=True)
    inputs = torch.zeros(8, 30, 2)
    states = fixedpoints.state_trajectories(lstm, inputs, x0=torch.randn(8, 20) * 0.5)
    fps = fixedpoints.find(lstm, states, n_starts=64, noise=0.1)
    assert len(fps) >= 1 and fps.n_state == 20
    # check against the stock module itself: one step from (h, c) returns (h, c)
    x = fps.xstar[:1].float()
    h0 = x[:, :10].reshape(1, 2, 5).transpose(0, 1).contiguous()
    c0 = x[:, 10:].reshape(1, 2, 5).transpose(0, 1).contiguous()
    _, (h1, c1) = lstm(torch.zeros(1, 1, 2), (h0, c0))
    assert torch.allclose(fixedpoints.stock.stock_states(lstm, h1, c1), x, atol=1e-6)


def test_stock_gru_cell_and_wrong_width_message():
    torch.manual_seed(1)
    cell = nn.GRUCell(3, 6)
    states = torch.randn(32, 6)
    fps = fixedpoints.find(cell, states, n_starts=32, noise=0.1)
    assert len(fps) >= 1
    h = fps.xstar[:1].float()
    assert torch.allclose(cell(torch.zeros(1, 3), h), h, atol=1e-6)
    with pytest.raises(ValueError, match="width 5 but stock GRUCell"):
        fixedpoints.find(cell, torch.randn(10, 5))


def test_users_model_is_left_unchanged():
    torch.manual_seed(2)
    gru = nn.GRU(3, 8, num_layers=2, dropout=0.1)
    gru.train()
    gru.weight_hh_l1.requires_grad_(False)
    before = copy.deepcopy(gru.state_dict())
    flags = {n: p.requires_grad for n, p in gru.named_parameters()}
    fixedpoints.find(gru, torch.randn(16, 16), n_starts=16, noise=0.1)
    assert gru.training
    assert {n: p.requires_grad for n, p in gru.named_parameters()} == flags
    assert all(torch.equal(before[k], v) for k, v in gru.state_dict().items())
    assert all(p.grad is None for p in gru.parameters())


class FakeLIF(nn.Module):
    def __init__(self, rate_net):
        super().__init__()
        self.rate_net = rate_net


def test_spiking_models_go_through_their_surrogate():
    cell = nn.RNNCell(1, 4)
    lif = FakeLIF(cell)
    with pytest.raises(TypeError, match="smooth surrogate"):
        fixedpoints.find(lif, torch.randn(4, 4))
    assert fixedpoints.surrogate_for(lif) is cell
    with pytest.raises(TypeError, match="spiking models are analysed through their smooth surrogate"):
        fixedpoints.surrogate_for(object())


def test_bad_inputs_give_one_clear_error():
    step = lambda x, u: torch.tanh(x)  # noqa: E731
    with pytest.raises(ValueError, match="NaN"):
        fixedpoints.find(step, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="returned shape"):
        fixedpoints.find(lambda x, u: x[:, :1], torch.randn(4, 3))
    with pytest.raises(TypeError, match="not differentiable"):
        fixedpoints.find(lambda x, u: torch.tanh(x).detach(), torch.randn(4, 3))
    with pytest.raises(TypeError, match="not differentiable"):
        fixedpoints.find(lambda x, u: torch.sign(x), torch.randn(4, 3))
    with pytest.raises(TypeError, match="not differentiable"):
        fixedpoints.find(lambda x, u: torch.from_numpy(np.tanh(x.detach().numpy())), torch.randn(4, 3))
    with pytest.raises(ValueError, match="failed on states"):
        w = torch.randn(5, 5)
        fixedpoints.find(lambda x, u: x @ w, torch.randn(4, 3))
    with pytest.raises(ValueError, match="inputs have width"):
        fixedpoints.find(nn.GRUCell(2, 3), torch.randn(4, 3), torch.zeros(5))
