"""The rate network against hand-written equations, and its initialisation."""

import pytest
import torch

from ratenets import DiscreteRNN, DiscreteRNNConfig, RateRNN, RateRNNConfig


def tiny(**kw):
    cfg = RateRNNConfig(n_units=3, n_inputs=2, n_outputs=1, dt_ms=5.0, p_rec=1.0, **kw)
    return RateRNN(cfg, seed=1).eval()


def test_euler_step_matches_the_equation_by_hand():
    net = tiny()
    W = net.w_rec().detach().double()
    tau = net.taus_ms().detach().double()
    w_in, w_out, b_out = net.w_in.double(), net.w_out.double(), net.b_out.double()
    u = torch.tensor([[[1.0, -0.5], [0.0, 2.0], [0.3, 0.3]]], dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64)
    expected = []
    for t in range(3):  # x_t = (1 - dt/τ) x + dt/τ (W σ(x) + W_in u_t)
        a = 5.0 / tau
        x = (1 - a) * x + a * (W @ torch.sigmoid(x) + w_in @ u[0, t])
        expected.append((w_out @ torch.sigmoid(x) + b_out).item())
    net = net.double()
    got = net(u).outputs[0, :, 0]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    x0 = torch.randn(1, 3, dtype=torch.float64)
    assert torch.allclose(net.step(x0, u[:, 0]), x0 + 5.0 * net.velocity(x0, u[:, 0]))


def test_taus_stay_in_range_and_can_be_fixed():
    net = RateRNN(RateRNNConfig(n_units=50, tau_min_ms=20, tau_max_ms=100))
    with torch.no_grad():
        net.tau_gate.mul_(100)
    taus = net.taus_ms()
    assert taus.min() >= 20 and taus.max() <= 100
    fixed = RateRNN(RateRNNConfig(n_units=5, tau_min_ms=25, tau_max_ms=25))
    assert torch.equal(fixed.taus_ms(), torch.full((5,), 25.0))


def test_dale_signs_hold_for_any_raw_weights():
    net = RateRNN(RateRNNConfig(n_units=40, p_inh=0.2))
    with torch.no_grad():
        net.w_rec_raw.normal_()  # training can push raw weights negative
    W = net.w_rec()
    exc, inh = net.signs > 0, net.signs < 0
    assert (W[:, exc] >= 0).all() and (W[:, inh] <= 0).all()
    assert 0.05 < inh.float().mean() < 0.4


def test_balanced_init_removes_the_outlier_eigenvalue():
    balanced = RateRNN(RateRNNConfig(n_units=200, gain=1.5))
    reference = RateRNN(RateRNNConfig(n_units=200, gain=1.5, balanced_init=False))
    radius = torch.linalg.eigvals(balanced.w_rec().detach()).abs().max()
    assert radius == pytest.approx(1.5, rel=0.1)
    assert balanced.w_rec().sum(dim=1).abs().max() < 1e-4  # each row: E input = I input
    eig_ref = torch.linalg.eigvals(reference.w_rec().detach()).abs().sort(descending=True).values
    assert eig_ref[0] > 2 * eig_ref[1]  # the reference init has one outlier far outside the bulk


def test_noise_only_in_training_mode():
    net = RateRNN(RateRNNConfig(n_units=10, n_inputs=1, noise_std=0.1))
    u = torch.zeros(2, 5, 1)
    net.eval()
    assert torch.equal(net(u).states, net(u).states)
    net.train()
    torch.manual_seed(0)
    a = net(u).states
    assert not torch.equal(a, net(u).states)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="activation"):
        RateRNN(RateRNNConfig(activation="elu"))
    with pytest.raises(ValueError, match="tau_min_ms"):
        RateRNN(RateRNNConfig(tau_min_ms=50, tau_max_ms=20))


def test_discrete_rnn_step_matches_forward():
    net = DiscreteRNN(DiscreteRNNConfig(n_units=8, n_inputs=2, n_outputs=2))
    u = torch.randn(3, 4, 2)
    states = net(u).states
    h = torch.zeros(3, 8)
    for t in range(4):
        h = net.step(h, u[:, t])
    assert torch.allclose(h, states[:, -1], atol=1e-6)


def test_tiny_sparse_networks_are_finite():
    for seed in range(20):
        net = RateRNN(RateRNNConfig(n_units=3, p_rec=0.2), seed=seed)
        assert torch.isfinite(net.w_rec()).all()


def test_noise_from_a_generator_is_what_the_global_rng_seeded_alike_gives():
    """Passing ``generator`` changes where the noise comes from, not what it is (train() relies on it)."""
    net = RateRNN(RateRNNConfig(n_units=10, n_inputs=1, noise_std=0.1, init_state_std=0.05)).train()
    u = torch.randn(3, 6, 1, generator=torch.Generator().manual_seed(1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        expected = net(u).states
        global_state = torch.random.get_rng_state()
        got = net(u, generator=torch.Generator().manual_seed(42)).states
        assert torch.equal(torch.random.get_rng_state(), global_state)  # the generator's draws leave it alone
    assert torch.equal(got, expected)
    assert not torch.equal(net(u, generator=torch.Generator().manual_seed(43)).states, expected)


def test_model_configs_are_checked_on_construction():
    with pytest.raises(ValueError, match=r"^p_rec must be in \(0, 1\], got 1.5$"):
        RateRNNConfig(p_rec=1.5)
    with pytest.raises(ValueError, match=r"^gain must be a finite number, got nan$"):
        DiscreteRNNConfig(gain=float("nan"))
