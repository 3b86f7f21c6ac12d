"""The chaos exercises of the FORCE seed: the Benettin/QR Lyapunov exponents against a linear map's known
spectrum, chaos onset with the gain, suppression by a sinusoidal drive, and the figures."""

import math

import pytest
import torch

from baselines.chaos import (
    SuppressionMap,
    chaos_trajectories,
    lyapunov_exponents,
    lyapunov_vs_gain,
    plot_chaos_trajectories,
    plot_lyapunov_vs_gain,
    plot_suppression_map,
    random_coupling,
    rate_map,
    rate_tangent_map,
    suppression_map,
)

# At N = 200, g = 1.5 sits near the edge of chaos: many draws of J settle on a limit cycle or a fixed point
# (seeds 1-12: 3 of 12 have a positive exponent over 200 τ). Seed 6's draw is chaotic (λ = 0.031/τ over 400 τ).
CHAOTIC_SEED = 6


def linear_map(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    return a, (lambda x, k: x @ a.T)


def test_largest_exponent_of_a_linear_map_is_log_of_its_spectral_radius():
    a, step = linear_map()
    expected = math.log(float(torch.linalg.eigvals(a).abs().max()))
    x0 = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lam = lyapunov_exponents(step, x0, 400, n_transient=100)
    assert lam.shape == (2, 1)
    assert torch.allclose(lam, torch.full_like(lam, expected), atol=1e-3)
    # the same with a tangent map written out, and per unit time with dt
    tangent = lambda x, q, k: (x @ a.T, a @ q)  # noqa: E731
    lam2 = lyapunov_exponents(None, x0, 400, n_transient=100, tangent_step=tangent, dt=0.5)
    assert torch.allclose(lam2, 2 * lam, atol=1e-9)


def test_full_spectrum_of_a_linear_map_sums_to_log_det():
    a, step = linear_map(seed=3)
    x0 = torch.zeros(1, 6, dtype=torch.float64)
    lam = lyapunov_exponents(step, x0, 300, n_exponents=6, n_transient=50)
    assert abs(float(lam.sum()) - math.log(abs(float(torch.linalg.det(a))))) < 1e-9
    moduli = torch.linalg.eigvals(a).abs().log().sort(descending=True).values
    assert torch.allclose(lam[0], moduli, atol=2e-2)
    assert (lam[0, :-1] >= lam[0, 1:]).all()


def test_written_out_tangent_map_equals_forward_mode_differentiation():
    coupling = random_coupling(30, torch.Generator().manual_seed(0))
    gains = torch.tensor([1.5, 0.7], dtype=torch.float64)
    drive = lambda t: 0.3 * math.cos(0.5 * t)  # noqa: E731
    step, tangent = rate_map(coupling, gains, 0.1, drive), rate_tangent_map(coupling, gains, 0.1, drive)
    x = torch.rand(2, 30, dtype=torch.float64)
    q = torch.randn(2, 30, 3, dtype=torch.float64)
    for j in range(3):
        x_next, jv = torch.func.jvp(lambda y: step(y, 7), (x,), (q[..., j],))
        x2, jq = tangent(x, q, 7)
        assert torch.allclose(x_next, x2, atol=1e-14) and torch.allclose(jv, jq[..., j], atol=1e-12)


def test_chaos_onset_with_gain():
    scan = lyapunov_vs_gain([0.5, 1.5], 200, seed=CHAOTIC_SEED, t_transient=20.0, t_average=50.0)
    low, high = scan.exponents[:, 0].tolist()
    assert low < -0.3  # quiet: x decays to 0 at rate ~ 1 - g·Re λ_max(J) ≈ 0.5
    assert high > 0.005
    assert 0.5 < scan.crossing() < 1.5


def test_a_slow_strong_drive_suppresses_chaos():
    result = suppression_map([0.0, 1.0], [0.2], 200, seed=CHAOTIC_SEED, t_transient=20.0, t_average=60.0)
    free, driven = result.exponents[:, 0].tolist()
    assert free > 0 > driven
    assert 0 < float(result.boundary()[0]) < 1


def test_boundary_interpolates_the_zero_crossing():
    lam = torch.tensor([[0.2, 0.1], [0.1, 0.1], [-0.1, 0.05]], dtype=torch.float64)
    m = SuppressionMap(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.1, 1.0]), lam, 1.5)
    b = m.boundary()
    assert abs(float(b[0]) - 1.5) < 1e-12 and math.isnan(float(b[1]))


def test_bad_inputs_are_one_line():
    _, step = linear_map()
    with pytest.raises(ValueError, match="x0 must be"):
        lyapunov_exponents(step, torch.zeros(6), 10)
    with pytest.raises(ValueError, match="n_exponents"):
        lyapunov_exponents(step, torch.zeros(1, 6, dtype=torch.float64), 10, n_exponents=7)
    with pytest.raises(ValueError, match="exactly one"):
        lyapunov_exponents(None, torch.zeros(1, 6, dtype=torch.float64), 10)
    blow_up = lambda x, k: torch.exp(50 * x) + x  # noqa: E731
    with pytest.raises(ValueError, match="finite"):
        lyapunov_exponents(blow_up, torch.ones(1, 2, dtype=torch.float64), 20)


def test_figures_are_figures_and_leave_pyplot_alone(tmp_path):
    import matplotlib

    t, x = chaos_trajectories((0.5, 1.5), n_units=20, t_max=2.0)
    assert x.shape == (2, 21, 20) and torch.allclose(x[0, 0], x[1, 0])
    figs = [plot_chaos_trajectories(t, x, (0.5, 1.5), path=tmp_path / "traj.png"),
            plot_lyapunov_vs_gain(lyapunov_vs_gain([0.5, 1.5], 10, n_networks=2, t_transient=1.0, t_average=2.0)),
            plot_suppression_map(suppression_map([0.0, 1.0], [0.5, 1.0], 10, t_transient=1.0, t_average=2.0))]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    assert (tmp_path / "traj.png").stat().st_size > 0
    assert "matplotlib.pyplot" not in __import__("sys").modules or not __import__("matplotlib.pyplot").get_fignums()
