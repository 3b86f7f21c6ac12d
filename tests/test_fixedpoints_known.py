"""Fixed points of small systems with known answers, and the FixedPoints container."""

import math

import pytest
import torch
from scipy.optimize import brentq

import fixedpoints
from ratenets import DiscreteRNN, DiscreteRNNConfig, RateRNN, RateRNNConfig

torch.set_num_threads(1)


def grid_states(low=-1.5, high=1.5, n=9):
    g = torch.linspace(low, high, n, dtype=torch.float64)
    return torch.cartesian_prod(g, g)


def test_linear_map_has_one_saddle_at_the_analytic_point():
    a = torch.tensor([[0.5, 0.2], [0.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    fps = fixedpoints.find(lambda x, u: x @ a.T + b, grid_states(-3, 3), n_starts=64, noise=0.1)
    expected = torch.linalg.solve(torch.eye(2, dtype=torch.float64) - a, b)
    assert len(fps) == 1
    assert torch.allclose(fps.xstar[0], expected, atol=1e-6)
    assert int(fps.n_unstable[0]) == 1 and not bool(fps.stable[0])
    assert torch.allclose(fps.eigvals[0], torch.tensor([2.0, 0.5], dtype=torch.complex128), atol=1e-9)
    assert torch.allclose(fps.jacobians[0], a, atol=1e-9)


class Bistable:
    """ẋ = x − x³, ẏ = −y: stable nodes at (±1, 0), a saddle at the origin."""

    dt = 0.1

    def velocity(self, x, u):
        return torch.stack([x[:, 0] - x[:, 0] ** 3, -x[:, 1]], dim=1)


def test_continuous_bistable_system():
    fps = fixedpoints.find(Bistable(), grid_states(), n_starts=81, noise=0.05)
    assert fps.continuous and len(fps) == 3
    order = torch.argsort(fps.xstar[:, 0])
    xs, idx = fps.xstar[order], fps.n_unstable[order]
    expected = torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(xs, expected, atol=1e-6)
    assert idx.tolist() == [0, 1, 0]
    saddle = fps[fps.n_unstable == 1]
    assert torch.allclose(saddle.eigvals[0].real, torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-9)
    topo = fixedpoints.topology(Bistable(), fps)
    saddle_index = int((fps.n_unstable == 1).nonzero()[0, 0])
    stable_indices = sorted(fps.stable.nonzero()[:, 0].tolist())
    assert topo.graph() == {saddle_index: stable_indices}


def tanh_fixed_point(w: float) -> float:
    return brentq(lambda h: math.tanh(w * h) - h, 0.1, 1.0, xtol=1e-15)


def test_hand_checked_tanh_map_through_a_step_model():
    net = DiscreteRNN(DiscreteRNNConfig(n_units=2, n_inputs=1, n_outputs=1))
    with torch.no_grad():
        net.w_rec.copy_(torch.diag(torch.tensor([2.0, 0.5])))
    h_star = tanh_fixed_point(2.0)
    fps = fixedpoints.find(net, grid_states().float(), n_starts=81, noise=0.05)
    assert len(fps) == 3
    order = torch.argsort(fps.xstar[:, 0])
    expected = torch.tensor([[-h_star, 0.0], [0.0, 0.0], [h_star, 0.0]], dtype=torch.float64)
    assert torch.allclose(fps.xstar[order].double(), expected, atol=1e-6)
    assert fps.n_unstable[order].tolist() == [0, 1, 0]
    slope = 2.0 * (1 - h_star**2)  # d tanh(2h)/dh at h*
    stable = fps[fps.stable]
    expected_spectrum = torch.tensor([[0.5, slope]] * 2, dtype=torch.float64)  # sorted, largest |λ| first
    assert torch.allclose(stable.eigvals.abs(), expected_spectrum, atol=1e-6)
    assert fps.input_jacobians.shape == (3, 2, 1)


def test_matrix_free_gauss_newton_path_matches_the_dense_one():
    h_star = tanh_fixed_point(2.0)
    w = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    step = lambda x, u: torch.tanh(x @ w.T)  # noqa: E731
    matrix_free = fixedpoints.SolverConfig(dense_max_dim=1)  # every state is "large": CG on J_rᵀJ_r products
    fps = fixedpoints.find(step, grid_states(), n_starts=81, noise=0.05, solver=matrix_free)
    order = torch.argsort(fps.xstar[:, 0])
    expected = torch.tensor([[-h_star, 0.0], [0.0, 0.0], [h_star, 0.0]], dtype=torch.float64)
    assert torch.allclose(fps.xstar[order], expected, atol=1e-6)
    assert fps.n_unstable[order].tolist() == [0, 1, 0]


def test_coupled_tanh_map_callable():
    w = torch.tensor([[1.5, 0.8], [-0.8, 1.5]], dtype=torch.float64)  # rotation-like: origin is a spiral source
    fps = fixedpoints.find(lambda x, u: torch.tanh(x @ w.T), grid_states(-1, 1), n_starts=81, noise=0.0)
    origin = fps[fps.xstar.norm(dim=1) < 1e-6]
    assert len(origin) == 1 and int(origin.n_unstable[0]) == 2
    assert torch.allclose(origin.eigvals[0].abs(), torch.full((2,), math.hypot(1.5, 0.8), dtype=torch.float64))


def test_rate_rnn_discrete_and_continuous_agree():
    net = RateRNN(RateRNNConfig(n_units=8, n_inputs=1, gain=0.5, dale=False), seed=0)
    states = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    discrete = fixedpoints.find(net, states, n_starts=32, noise=0.1)
    continuous = fixedpoints.find(net, states, n_starts=32, noise=0.1, continuous=True)
    assert len(discrete) == len(continuous) == 1
    assert torch.allclose(discrete.xstar, continuous.xstar, atol=1e-8)
    # an Euler step of dt maps λ_c to λ_d = 1 + dt·λ_c
    mapped = 1 + net.cfg.dt_ms * continuous.eigvals[0]
    assert torch.allclose(torch.sort(mapped.real).values, torch.sort(discrete.eigvals[0].real).values, atol=1e-8)
    assert bool(discrete.stable[0]) and bool(continuous.stable[0])
    bound = fixedpoints.find(net.velocity, states, n_starts=32, noise=0.1)  # a bound method works too
    assert bound.continuous and torch.allclose(bound.xstar, continuous.xstar, atol=1e-8)
    assert all(p.requires_grad == (name != "w_in") for name, p in net.named_parameters() if name != "tau_gate")


def test_dedup_keeps_lowest_q_like_the_greedy_loop():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(300, 3, generator=g, dtype=torch.float64) * 0.01
    q = torch.rand(300, generator=g, dtype=torch.float64)
    tol = 0.01
    kept = fixedpoints.unique_lowest_q(points, q, tol).tolist()
    greedy = []
    for i in torch.argsort(q).tolist():
        if all(float((points[i] - points[j]).norm()) > tol for j in greedy):
            greedy.append(i)
    assert kept == greedy


def test_container_indexing_concat_save_load_summary_pca(tmp_path):
    fps = fixedpoints.find(Bistable(), grid_states(), n_starts=81, noise=0.05)
    assert len(fps[0]) == 1 and len(fps[fps.stable]) == 2 and len(fps[[0, 2]]) == 2
    both = fixedpoints.FixedPoints.concatenate([fps, fps[:1]])
    assert len(both) == 4
    path = tmp_path / "fps.h5"
    fps.save(path)
    back = fixedpoints.FixedPoints.load(path)
    assert torch.equal(back.xstar, fps.xstar) and torch.equal(back.eigvals, fps.eigvals) and back.continuous
    assert not (tmp_path / "fps.h5.tmp").exists()
    summary = fixedpoints.summarize(fps)
    assert summary == {"n": 3, "by_index": {"0": 2, "1": 1}, "max_q": pytest.approx(float(fps.q.max())),
                       "n_degenerate": 0}
    z = fps.project(n_components=2)
    assert z.shape == (3, 2)


def test_continuation_marks_the_saddle_node():
    """h' = tanh(2h + u): as u grows the lower stable branch meets the middle saddle and both vanish."""
    states = torch.linspace(-1, 1, 21, dtype=torch.float64)[:, None]
    step = lambda x, u: torch.tanh(2 * x + u)  # noqa: E731
    fps = fixedpoints.find(step, states, torch.zeros(1, dtype=torch.float64), n_starts=None, noise=0.0)
    assert fps.by_index() == {0: 2, 1: 1}
    path = torch.linspace(0, 0.6, 31, dtype=torch.float64)[:, None]
    branches = fixedpoints.continuation(step, fps, path)
    lost = {c["branch"] for c in branches.changes if c["to_index"] == -1}
    upper = int(torch.argmax(fps.xstar[:, 0]))
    assert len(lost) == 2 and upper not in lost
    assert torch.isfinite(branches.xstar[-1, upper]).all()


def test_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    fps = fixedpoints.find(Bistable(), grid_states(), n_starts=81, noise=0.05)
    traj = grid_states()[:, None, :].repeat(1, 5, 1)
    ax = fixedpoints.plot_fixed_points(fps, traj)
    ax.figure.savefig(tmp_path / "fp2.png")
    ax = fixedpoints.plot_eigenvalues(fps)
    ax.figure.savefig(tmp_path / "eig.png")
    assert (tmp_path / "fp2.png").stat().st_size > 0
