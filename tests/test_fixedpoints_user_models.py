"""``fixedpoints.find`` on a person's own model: maps whose ``out.sum()`` has no gradient, start noise relative
to the states, a warning when an attractor is missed, modules with their own ``forward(x, h)``, velocity fields
passed as maps, unknown input widths, ``no_grad``/``inference_mode``, the model's dtype, degenerate points,
the LSNN surrogate fed the LSNN's own rollout, and the figures."""

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from scipy.optimize import brentq
from torch import nn

import fixedpoints

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_fixedpoint_nets import load_lsnn  # noqa: E402


def grid(low=-3.0, high=3.0, n=9, dtype=torch.float64):
    g = torch.linspace(low, high, n, dtype=dtype)
    return torch.cartesian_prod(g, g)


# --- the differentiability check uses random probes --------------------------------------------------------------

ZERO_ROW_SUM = torch.tensor([[1.5, -1.5], [-1.5, 1.5]], dtype=torch.float64)  # A·1 = 0: d(sum f)/dx = 0 everywhere


def test_a_smooth_map_whose_sum_has_no_gradient_is_accepted_and_solved():
    """f(x) = tanh(x) A with A's rows summing to zero: ∂(Σ f)/∂x = diag(sech² x) A 1 = 0 at every x, yet the map
    is smooth. Its fixed points: x₂ = -x₁ with x₁ = 3 tanh x₁, i.e. 0 (a saddle, J = A, eigenvalues 3 and 0) and
    ±2.985 (stable)."""
    fps = fixedpoints.find(lambda x, u: torch.tanh(x) @ ZERO_ROW_SUM, grid(), n_starts=81, noise=0.1)
    root = brentq(lambda a: a - 3 * torch.tanh(torch.tensor(a)).item(), 1.0, 4.0)
    assert fps.by_index() == {0: 2, 1: 1}
    expected = torch.tensor([[root, -root], [-root, root], [0.0, 0.0]], dtype=torch.float64)
    found = fps.xstar[torch.argsort(fps.n_unstable * 10 - fps.xstar[:, 0])]  # stable ones by x₁ descending, then 0
    assert torch.allclose(found, expected, atol=1e-8)


def test_a_constant_jacobian_map_with_zero_sum_gradient_is_solved_exactly():
    a = torch.tensor([[0.3, -0.3], [0.2, -0.2]], dtype=torch.float64)  # rows sum to zero
    b = torch.tensor([1.0, -0.5], dtype=torch.float64)
    fps = fixedpoints.find(lambda x, u: x @ a + b, grid(), n_starts=16, noise=0.1)
    expected = torch.linalg.solve((torch.eye(2, dtype=torch.float64) - a).T, b)  # x (I - A) = b
    assert len(fps) == 1 and torch.allclose(fps.xstar[0], expected, atol=1e-10)
    assert torch.allclose(fps.jacobians[0], a.T, atol=1e-12)


# --- start noise relative to the states; attractors found in simulation are not missed ------------------------------


def three_attractor_gru() -> nn.GRU:
    """A stock GRU whose gates are held open (z ≈ 0, r ≈ 1), so h' = tanh(W h + b) exactly in the limit:
    unit 1 is bistable (h₁ = tanh 2h₁), unit 2 is bistable only when h₁ < 0 (h₂ = tanh(2h₂ + 0.8h₁ + 0.5)): three
    attractors, three index-1 saddles and one index-2 saddle."""
    gru = nn.GRU(1, 2, batch_first=True).double()
    w = torch.tensor([[2.0, 0.0], [0.8, 2.0]], dtype=torch.float64)
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
        gru.bias_ih_l0[:2] = 30.0  # r ≈ 1
        gru.bias_ih_l0[2:4] = -30.0  # z ≈ 0
        gru.bias_ih_l0[4:] = torch.tensor([0.0, 0.5], dtype=torch.float64)
        gru.weight_hh_l0[4:] = w
    return gru


def simulated_attractors(gru, states, n_steps=300):
    from fixedpoints.stock import layout, stock_step

    lay, x = layout(gru), states.reshape(-1, 2).clone()
    u = x.new_zeros(x.shape[0], 1)
    with torch.no_grad():
        for _ in range(n_steps):
            x = stock_step(gru, lay, x, u)
    ends = torch.unique(x.round(decimals=4), dim=0)
    return ends


def test_a_gru_with_three_attractors_has_all_three_found_at_the_defaults():
    """The GRU's trajectories from random small states settle in three attractors; ``find`` at its defaults
    returns exactly those three stable points and the four saddles, without a warning."""
    gru = three_attractor_gru()
    x0 = torch.randn(48, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3
    states = fixedpoints.state_trajectories(gru, torch.zeros(48, 30, 1, dtype=torch.float64), x0=x0)
    truth = simulated_attractors(gru, states)
    assert len(truth) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fps = fixedpoints.find(gru, states)
    stable = fps[fps.stable]
    assert len(stable) == 3
    assert torch.cdist(truth, stable.xstar.double()).min(dim=1).values.max() < 1e-3
    assert fps.by_index() == {0: 3, 1: 3, 2: 1}


def test_no_point_found_is_said_in_one_warning_not_silently():
    with pytest.warns(RuntimeWarning, match="no fixed point found from 16 starts") as record:
        fps = fixedpoints.find(lambda x, u: x + 1.0, grid(), n_starts=16)  # a translation has no fixed point
    assert len(fps) == 0 and fps.info["gap"] == "no point found"
    assert len([w for w in record if "no fixed point" in str(w.message)]) == 1


# --- modules with their own argument order; velocity fields; unknown input width; dt -----------------------------


class InputFirst(nn.Module):
    """A user's cell in PyTorch's order, ``forward(x, h)`` with x the input: h' = tanh(W h + U x)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64))
        self.u = nn.Parameter(torch.tensor([[1.0], [1.0]], dtype=torch.float64))

    def forward(self, x, h):
        return torch.tanh(h @ self.w.T + x @ self.u.T)


def test_a_module_whose_forward_takes_the_input_first_is_called_that_way():
    """h₁ = tanh(2h₁ + 0.1) has three roots, h₂ = tanh(0.5h₂ + 0.1) one: 2 stable points and a saddle."""
    u = torch.tensor([0.1], dtype=torch.float64)
    fps = fixedpoints.find(InputFirst(), grid(-1.5, 1.5), u, n_starts=81, noise=0.05)
    h1 = sorted(brentq(lambda h: h - torch.tanh(torch.tensor(2 * h + 0.1)).item(), lo, hi)
                for lo, hi in ((-1.5, -0.5), (-0.5, 0.2), (0.5, 1.5)))
    h2 = brentq(lambda h: h - torch.tanh(torch.tensor(0.5 * h + 0.1)).item(), -1, 1)
    assert fps.by_index() == {0: 2, 1: 1}
    assert torch.allclose(torch.sort(fps.xstar[:, 0]).values, torch.tensor(h1, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(fps.xstar[:, 1], torch.full((3,), h2, dtype=torch.float64), atol=1e-8)
    assert "input, state" in fps.info["model"]


class Ambiguous(nn.Module):
    def forward(self, a, b):
        return torch.tanh(0.5 * a + b)


def test_a_module_whose_argument_order_cannot_be_told_gets_one_clear_line():
    with pytest.raises(ValueError, match="state_first=True or False"):
        fixedpoints.find(Ambiguous(), grid(), torch.zeros(2, dtype=torch.float64), n_starts=8)
    fps = fixedpoints.find(Ambiguous(), grid(), torch.zeros(2, dtype=torch.float64), n_starts=8, state_first=True)
    assert len(fps) == 1 and float(fps.xstar.abs().max()) < 1e-8  # x = tanh(x / 2) only at 0


def flow_states(velocity, n_steps=100, dt=0.05):
    """States a flow visits: Euler trajectories from a grid, ``[31, n_steps, 1]``."""
    x = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)[:, None]
    out = []
    for _ in range(n_steps):
        x = x + dt * velocity(x, None)
        out.append(x)
    return torch.stack(out, dim=1)


def test_a_velocity_field_passed_without_continuous_gets_one_clear_line():
    velocity = lambda x, u: x - x**3  # noqa: E731  (ẋ = x - x³: roots -1, 0, 1)
    states = flow_states(velocity)
    with pytest.raises(ValueError, match="looks like a velocity field.*continuous=True"):
        fixedpoints.find(velocity, states, n_starts=31, noise=0.0)
    fps = fixedpoints.find(velocity, states, n_starts=None, noise=0.0, continuous=True)
    assert torch.allclose(torch.sort(fps.xstar[:, 0]).values, torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
    # a map is not mistaken for a velocity, on the states it visits
    step = lambda x, u: torch.tanh(2 * x)  # noqa: E731
    visited = fixedpoints.state_trajectories(step, torch.zeros(31, 50, 0, dtype=torch.float64),
                                             x0=torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)[:, None])
    assert fixedpoints.find(step, visited, n_starts=None, noise=0.0).by_index() == {0: 2, 1: 1}


def test_inputs_none_with_an_unknown_input_width_is_a_clear_error():
    b = torch.tensor([[1.0], [0.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match="inputs=None and the input width.*pass inputs"):
        fixedpoints.find(lambda x, u: torch.tanh(x + u @ b.T), grid(), n_starts=8)
    fps = fixedpoints.find(lambda x, u: torch.tanh(0.5 * x + u @ b.T), grid(), torch.zeros(1, dtype=torch.float64),
                           n_starts=8)
    assert len(fps) == 1


class BistableFlow(nn.Module):
    """ẋ = x - x³ per unit, with an attribute named ``dt`` that is not a simulation step."""

    dt = 5.0  # e.g. the sampling interval of the user's data; an Euler step this long would diverge

    def velocity(self, x, u):
        return x - x**3


def test_topology_of_a_continuous_model_takes_dt_as_an_argument_not_from_attributes():
    fps = fixedpoints.find(BistableFlow(), torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)[:, None],
                           n_starts=31, noise=0.0)
    saddle = int((fps.n_unstable == 1).nonzero()[0, 0])
    ends = {int(fps.xstar[a, 0].round()) for s, _, _, a in fixedpoints.topology(BistableFlow(), fps).edges
            if s == saddle}
    assert ends == {-1, 1}  # the default step (0.1 / max |λ|) integrates; dt = 5 would have diverged
    explicit = fixedpoints.topology(BistableFlow(), fps, dt=0.05)
    assert {int(fps.xstar[a, 0].round()) for _, _, _, a in explicit.edges} == {-1, 1}
    with pytest.raises(ValueError, match="give dt"):
        fixedpoints.state_trajectories(BistableFlow(), torch.zeros(2, 5, 1), x0=torch.ones(2, 1))


# --- no_grad / inference_mode; the model's dtype ---------------------------------------------------------------------


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_find_works_inside_no_grad_and_inference_mode(context):
    cell = nn.RNNCell(1, 2, nonlinearity="tanh")
    with torch.no_grad():
        cell.weight_hh.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))
        cell.weight_ih.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    with context():
        states = grid(-1.5, 1.5, dtype=torch.float32)  # made under the context too
        fps = fixedpoints.find(cell, states, n_starts=81, noise=0.05)
    root = brentq(lambda h: h - torch.tanh(torch.tensor(2 * h, dtype=torch.float64)).item(), 0.5, 1.5)
    assert fps.by_index() == {0: 2, 1: 1}
    assert torch.allclose(torch.sort(fps.xstar[:, 0].double()).values,
                          torch.tensor([-root, 0.0, root], dtype=torch.float64), atol=1e-6)


def test_float32_model_gives_float32_points_polished_in_float64():
    cell = nn.GRUCell(1, 3)
    readout = nn.Linear(3, 1)
    states = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * 0.3
    fps = fixedpoints.find(cell, states, n_starts=64)
    assert fps.xstar.dtype == torch.float32 and fps.inputs.dtype == torch.float32
    assert fps.q.dtype == torch.float64 and float(fps.q.max()) <= 1e-12  # the polish ran in float64
    assert readout(fps.xstar).shape == (len(fps), 1)  # usable with the model's own layers as returned


# --- degenerate points ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("continuous", [False, True])
def test_points_with_an_eigenvalue_on_the_stability_boundary_are_flagged(continuous):
    """One linear system per case, its only eigenvalues known: 0.5 (or -0.5) and a slow one 3e-6 inside the
    boundary (degenerate) or 0.1 inside (not)."""
    for gap, degenerate in ((3e-6, True), (0.1, False)):
        diag = torch.tensor([-0.5, -gap] if continuous else [0.5, 1 - gap], dtype=torch.float64)
        shift = torch.tensor([1.0, gap], dtype=torch.float64)  # fixed point (2, 1) of the map, (2, 1) of the flow
        fn = lambda x, u, d=diag, b=shift: x * d + b  # noqa: E731
        fps = fixedpoints.find(fn, grid(0, 3), n_starts=16, noise=0.1, continuous=continuous)
        assert len(fps) == 1 and bool(fps.degenerate[0]) == degenerate
        assert fixedpoints.summarize(fps)["n_degenerate"] == int(degenerate)
        assert ("degenerate" in repr(fps)) == degenerate


# --- the LSNN surrogate takes the LSNN's own rollout --------------------------------------------------------------


def test_the_lsnn_surrogate_accepts_the_lsnns_rollout_states_or_says_what_to_pass():
    from spiking import LSNN, LSNNConfig

    net = LSNN(LSNNConfig(n_lif=4, n_alif=2, n_inputs=1, n_outputs=1), seed=0).eval()
    surrogate = fixedpoints.surrogate_for(net)
    with torch.no_grad():
        rollout = net(torch.zeros(2, 30, 1))
    assert rollout.states.shape[-1] == 8  # v of 6 units, b of 2 ALIF units; the surrogate's state is 18 wide
    mapped = surrogate.states_from_rollout(rollout.states)
    v, b, z = surrogate.split(mapped)
    assert torch.equal(v, rollout.states[..., :6]) and torch.equal(b[..., 4:], rollout.states[..., 6:])
    thr = net.neurons.threshold + net.neurons.beta * b
    assert torch.allclose(z, torch.sigmoid((v - thr) / (thr * surrogate.temperature)))
    assert torch.allclose(b[..., :4], z[..., :4])
    with pytest.raises(ValueError, match="rollout states.*pass lsnn"):
        fixedpoints.find(surrogate, torch.zeros(5, 7))


@pytest.fixture(scope="module")
def default_lsnn():
    import tasks

    net, payload = load_lsnn()
    task = tasks.make("flipflop", **payload["task"]["params"])
    batch = task.held_out().sample(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        rollout = net(batch.inputs)
    return net, payload, batch, rollout


def memories(surrogate, fps) -> set:
    """The 3-bit words the readout reports at the stable points."""
    with torch.no_grad():
        bits = surrogate.readout(fps[fps.stable].xstar) > 0
    return {tuple(row.tolist()) for row in bits}


def test_the_default_flipflop_lsnn_has_its_8_memories_from_its_own_rollout(default_lsnn):
    """The default run's LSNN (tests/data/make_fixedpoint_nets.py lsnn: configs/flipflop.yaml's task and lsnn
    sections, seed 0), its rollout passed as it is: 8 stable points, one per 3-bit memory its readout reports.
    Default noise and checks; 64 starts to keep it short (the defaults' 1024: the slow test below)."""
    net, payload, batch, rollout = default_lsnn
    assert payload["held_out_score"] >= 0.95
    surrogate = fixedpoints.surrogate_for(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no gap warning either
        fps = fixedpoints.find(surrogate, rollout.states, n_starts=64)
    assert fps.by_index() == {0: 8} and float(fps.q.max()) <= 1e-12
    assert len(memories(surrogate, fps)) == 8


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RATESPIKE_SLOW") != "1", reason="1024 starts on a 300-wide map: RATESPIKE_SLOW=1")
def test_the_default_flipflop_lsnn_has_its_8_memories_at_the_defaults(default_lsnn):
    net, _, _, rollout = default_lsnn
    surrogate = fixedpoints.surrogate_for(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fps = fixedpoints.find(surrogate, rollout.states)
    stable = fps[fps.stable]
    assert len(stable) == 8 and float(stable.q.max()) <= 1e-12 and len(memories(surrogate, fps)) == 8


# --- figures ---------------------------------------------------------------------------------------------------------


def test_figures_take_ax_and_path_and_return_the_figure(tmp_path):
    """Trajectories coloured by a per-trial label, the spectrum zoomed to where it lies (not the unit circle),
    both saved where asked and returned as Figures."""
    step = lambda x, u: torch.tanh(x @ torch.tensor([[2.0, 0.3], [0.0, 0.6]], dtype=torch.float64))  # noqa: E731
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0[0] = 0.0  # one trial sits on the saddle at the origin
    traj = fixedpoints.state_trajectories(step, torch.zeros(6, 40, 0, dtype=torch.float64), x0=x0)
    fps = fixedpoints.find(step, traj, n_starts=64)
    labels = (traj[:, -1, 0] > 0).long()  # the memory each trial ends in
    fig = fixedpoints.plot_fixed_points(fps, traj, labels=labels, path=tmp_path / "points.png")
    assert isinstance(fig, Figure) and (tmp_path / "points.png").stat().st_size > 0
    colours = {line.get_color() for line in fig.axes[0].lines if line.get_color() not in ("r",)}
    assert len(colours) == 2  # two memories, two colours
    own = Figure()
    ax = own.subplots()
    assert fixedpoints.plot_eigenvalues(fps, ax=ax, path=tmp_path / "eig.png") is own
    low, high = ax.get_xlim()
    spectrum = fps.eigvals.abs()
    assert low > -0.5 and high < 2.5  # framed on the spectrum (0.02..2 here), not on the whole circle [-1, 1]
    assert spectrum.max() > 1  # the saddle's unstable eigenvalue is in the frame, drawn as a cross
    assert any(c.get_label() == "unstable direction" for c in ax.collections)
