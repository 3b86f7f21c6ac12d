"""The chaos exercises of the FORCE seed (Abbott's MIT tutorial, ``seeds/001_*``) as functions with figures.

The network (Sompolinsky, Crisanti & Sommers 1988), time in units of τ:

    dx/dt = -x + g J tanh(x) + I(t),   J_ij ~ N(0, 1/N)

* ``chaos_trajectories``: x(t) for several gains g from one start (the seed's first cell: quiet at g = 0.5,
  slow decay near g = 1, irregular activity at g = 1.5).
* ``lyapunov_exponents``: the Benettin/QR method for any step map ``x_{k+1} = F(x_k, k)`` in torch: tangent
  vectors are pushed through the Jacobian of F (forward-mode ``torch.func.jvp``, no Jacobian matrix is
  formed), re-orthonormalised by QR each step, and the logs of the diagonal of R are averaged.
* ``lyapunov_vs_gain``: the largest exponent against g (it crosses 0 near g = 1).
* ``suppression_map``: the largest exponent at g = 1.5 under a sinusoidal drive ``I_i(t) = A cos(ω t + θ_i)``
  with random phases θ_i, on a grid of amplitudes and frequencies (Rajan, Abbott & Sompolinsky 2010: a strong
  enough drive makes the network's response non-chaotic; the critical amplitude depends on ω).

Every network of a scan (each gain, each amplitude and frequency) is one row of one batched simulation with the
same J and the same start, integrated by classical Runge-Kutta (``rk4_step``); exponents are per unit τ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure

from ratenets.arrays import to_numpy
from ratenets.plots import finish_figure
from ratenets.seeds import stream

StepMap = Callable[[torch.Tensor, int], torch.Tensor]
TangentMap = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def random_coupling(n_units: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """``J [N,N]`` with i.i.d. entries N(0, 1/N) (the seed's ``normal(0, sqrt(1/N), (N, N))``)."""
    if isinstance(n_units, bool) or not isinstance(n_units, int) or n_units < 1:
        raise ValueError(f"n_units must be an integer >= 1, got {n_units!r}")
    return torch.randn(n_units, n_units, generator=generator, dtype=dtype) / math.sqrt(n_units)


def _couple(coupling: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``J y`` for rows ``y [B,N]`` (or tangents ``[B,N,K]``): one ``J [N,N]`` for every row, or ``R`` couplings
    ``[R,N,N]`` with the rows in network-major order (row ``r·M + m`` belongs to network ``r``, ``B = R·M``)."""
    if coupling.dim() == 2:
        return y @ coupling.T if y.dim() == 2 else coupling @ y
    n_net, n = coupling.shape[0], coupling.shape[-1]
    if y.dim() == 2:
        return (y.reshape(n_net, -1, n) @ coupling.transpose(-1, -2)).reshape(y.shape)
    k = y.shape[-1]
    cols = y.reshape(n_net, -1, n, k).transpose(1, 2).reshape(n_net, n, -1)  # [R, N, M·K]
    return (coupling @ cols).reshape(n_net, n, -1, k).transpose(1, 2).reshape(y.shape)


def rate_velocity(x: torch.Tensor, t: float, coupling: torch.Tensor, gain: torch.Tensor,
                  drive: Callable[[float], torch.Tensor] | None = None) -> torch.Tensor:
    """``dx/dt = -x + g J tanh(x) + I(t)`` for a batch ``x [B,N]``; ``gain [B,1]`` (one g per row), ``coupling``
    ``[N,N]`` or ``[B,N,N]``, ``drive(t)`` broadcastable to ``[B,N]``."""
    v = -x + gain * _couple(coupling, torch.tanh(x))
    return v if drive is None else v + drive(t)


def rk4_step(x: torch.Tensor, t: float, dt: float, velocity: Callable[[torch.Tensor, float], torch.Tensor]):
    """One classical Runge-Kutta step of ``dx/dt = velocity(x, t)``."""
    k1 = velocity(x, t)
    k2 = velocity(x + 0.5 * dt * k1, t + 0.5 * dt)
    k3 = velocity(x + 0.5 * dt * k2, t + 0.5 * dt)
    k4 = velocity(x + dt * k3, t + dt)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_steps(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def rate_map(coupling: torch.Tensor, gains: torch.Tensor, dt: float,
             drive: Callable[[float], torch.Tensor] | None = None) -> StepMap:
    """The step map ``F(x, k)``: one RK4 step of ``dt`` from time ``k·dt`` for rows ``x [B,N]`` with gains ``[B]``."""
    gain = gains.reshape(-1, 1).to(coupling)

    def step(x: torch.Tensor, k: int) -> torch.Tensor:
        return rk4_step(x, k * dt, dt, lambda y, t: rate_velocity(y, t, coupling, gain, drive))

    return step


def rate_tangent_map(coupling: torch.Tensor, gains: torch.Tensor, dt: float,
                     drive: Callable[[float], torch.Tensor] | None = None) -> TangentMap:
    """``(x, q [B,N,K], k) -> (F(x), J_F(x) q)`` for the map of ``rate_map``, written out: RK4 of the state
    together with its variational equation ``dq/dt = -q + g J (sech²(x) ⊙ q)`` at the same stage points, which is
    exactly the Jacobian of the RK4 map (the same numbers ``torch.func.jvp`` gives, ~60x faster)."""
    gain = gains.reshape(-1, 1).to(coupling)
    gain3 = gain.unsqueeze(-1)

    def velocity(x, q, t):
        r = torch.tanh(x)
        vx = -x + gain * _couple(coupling, r)
        if drive is not None:
            vx = vx + drive(t)
        vq = -q + gain3 * _couple(coupling, (1.0 - r * r).unsqueeze(-1) * q)
        return vx, vq

    def step(x: torch.Tensor, q: torch.Tensor, k: int):
        t, h = k * dt, dt
        k1x, k1q = velocity(x, q, t)
        k2x, k2q = velocity(x + 0.5 * h * k1x, q + 0.5 * h * k1q, t + 0.5 * h)
        k3x, k3q = velocity(x + 0.5 * h * k2x, q + 0.5 * h * k2q, t + 0.5 * h)
        k4x, k4q = velocity(x + h * k3x, q + h * k3q, t + h)
        return (x + (h / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x),
                q + (h / 6.0) * (k1q + 2.0 * k2q + 2.0 * k3q + k4q))

    return step


def chaos_trajectories(gains: Sequence[float] = (0.5, 1.0, 1.5), n_units: int = 1000, t_max: float = 50.0,
                       dt: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's first exercise: ``(t [T+1], x [G,T+1,N])`` for each gain, one J and one start
    ``x0 ~ U(-0.5, 0.5)`` shared by all."""
    dt, t_max = _check_positive("dt", dt), _check_positive("t_max", t_max)
    gen = stream(seed, 0)
    coupling = random_coupling(n_units, gen)
    x = (torch.rand(n_units, generator=gen, dtype=torch.float64) - 0.5).expand(len(gains), -1).clone()
    step = rate_map(coupling, torch.tensor(gains, dtype=torch.float64), dt)
    n_steps = round(t_max / dt)
    out = [x]
    for k in range(n_steps):
        x = step(x, k)
        out.append(x)
    return torch.arange(n_steps + 1, dtype=torch.float64) * dt, torch.stack(out, dim=1)


def lyapunov_exponents(step: StepMap | None, x0: torch.Tensor, n_steps: int, *, dt: float = 1.0,
                       n_exponents: int = 1, n_transient: int = 0, tangent_step: TangentMap | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``n_exponents`` largest Lyapunov exponents of the map ``x_{k+1} = step(x_k, k)`` (Benettin et al. 1980,
    QR form), per unit of time (a step lasts ``dt``), for every row of ``x0 [B,D]``: ``[B, n_exponents]``, largest
    first.

    Tangents ``q [B,D,K]`` are pushed through the Jacobian of the map each step and re-orthonormalised by QR; the
    logs of |diag R| are averaged. The Jacobian-vector products come from ``tangent_step(x, q, k) -> (F(x), J q)``
    when given, else from ``step`` by forward-mode differentiation (``torch.func.jvp``; ``step`` must then be
    made of torch operations). ``n_transient`` steps are run first and not averaged, so the tangents align with
    the growing directions. Tangents start from Gaussian vectors drawn from ``generator`` (a fixed stream when
    None)."""
    if not torch.is_tensor(x0) or x0.dim() != 2:
        raise ValueError(f"x0 must be a [B,D] tensor, got {getattr(x0, 'shape', type(x0).__name__)}")
    if (step is None) == (tangent_step is None):
        raise ValueError("give exactly one of step (differentiated by torch.func.jvp) and tangent_step")
    n_steps, n_transient = _check_steps("n_steps", n_steps), _check_steps("n_transient", n_transient, 0)
    dt = _check_positive("dt", dt)
    batch, dim = x0.shape
    n_exponents = _check_steps("n_exponents", n_exponents)
    if n_exponents > dim:
        raise ValueError(f"n_exponents must be <= the state dimension {dim}, got {n_exponents}")
    push = tangent_step if tangent_step is not None else (lambda x, q, k: _jvp_tangents(step, x, q, k))
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    q = torch.randn(batch, dim, n_exponents, generator=gen, dtype=x0.dtype).to(x0.device)
    q = torch.linalg.qr(q).Q
    log_growth = torch.zeros(batch, n_exponents, dtype=x0.dtype, device=x0.device)
    x = x0
    for k in range(n_transient + n_steps):
        x, jq = push(x, q, k)
        if n_exponents == 1:  # QR of one column is its normalisation
            norm = jq.norm(dim=1)
            q, growth = jq / norm.unsqueeze(1), norm
        else:
            q, r = torch.linalg.qr(jq)
            growth = torch.diagonal(r, dim1=-2, dim2=-1).abs()
        if k >= n_transient:
            log_growth += torch.log(growth)
    if not torch.isfinite(log_growth).all() or not torch.isfinite(x).all():
        raise ValueError("the trajectory or its tangents stopped being finite (or collapsed to zero); "
                         "no exponent can be measured from this start")
    exps = log_growth / (n_steps * dt)
    return exps.sort(dim=-1, descending=True).values


def _jvp_tangents(step: StepMap, x: torch.Tensor, q: torch.Tensor, k: int):
    """``(F(x), J_F(x) q)`` for tangents ``q [B,D,K]`` by forward-mode differentiation (one pass per tangent)."""
    fn = lambda y: step(y, k)  # noqa: E731
    cols = []
    x_next = None
    for j in range(q.shape[-1]):
        x_next, jv = torch.func.jvp(fn, (x,), (q[..., j].contiguous(),))
        cols.append(jv)
    return x_next, torch.stack(cols, dim=-1)


def _networks(n_units: int, n_networks: int, seed: int):
    """``n_networks`` couplings ``[R,N,N]`` and starts ``[R,N]`` ~ U(-0.5, 0.5), from the seed's stream."""
    _check_steps("n_networks", n_networks)
    gen = stream(seed, 0)
    coupling = torch.stack([random_coupling(n_units, gen) for _ in range(n_networks)])
    x0 = torch.rand(n_networks, n_units, generator=gen, dtype=torch.float64) - 0.5
    return coupling, x0, gen


class GainScan(NamedTuple):
    gains: torch.Tensor  # [G]
    exponents: torch.Tensor  # [G,R], largest exponent per unit τ of each of R networks

    def mean(self) -> torch.Tensor:
        """``[G]``: the exponent averaged over the networks."""
        return self.exponents.mean(dim=1)

    def crossing(self) -> float:
        """The gain where the mean exponent first turns positive (linear interpolation), nan if it never does."""
        g, lam = self.gains.double(), self.mean().double()
        pos = torch.nonzero(lam > 0).flatten()
        if len(pos) == 0:
            return float("nan")
        i = int(pos[0])
        if i == 0:
            return float(g[0])
        return float(g[i - 1] + (g[i] - g[i - 1]) * (-lam[i - 1]) / (lam[i] - lam[i - 1]))


def lyapunov_vs_gain(gains: Sequence[float], n_units: int = 200, *, n_networks: int = 1, dt: float = 0.1,
                     t_transient: float = 50.0, t_average: float = 200.0, seed: int = 0) -> GainScan:
    """The largest exponent of ``dx/dt = -x + g J tanh(x)`` for each gain and each of ``n_networks`` draws of J
    (every gain sees the same draws and starts): one batch of ``G·R`` rows.

    At N = 200 some draws settle on a fixed point even at g = 1.5 (a finite-size effect: seed 0's first draw
    does, its exponent is -0.09 there), so averaging a few draws gives the typical curve."""
    coupling, x0, gen = _networks(n_units, n_networks, seed)
    g = torch.tensor([float(v) for v in gains], dtype=torch.float64)
    n_g = len(g)
    dt = _check_positive("dt", dt)
    # row r·G + i: network r, gain i (network-major, see _couple)
    tangent = rate_tangent_map(coupling[0] if n_networks == 1 else coupling, g.repeat(n_networks), dt)
    exps = lyapunov_exponents(None, x0.repeat_interleave(n_g, dim=0), max(1, round(t_average / dt)), dt=dt,
                              n_transient=round(t_transient / dt), tangent_step=tangent, generator=gen)
    return GainScan(g, exps[:, 0].reshape(n_networks, n_g).T)


class SuppressionMap(NamedTuple):
    amplitudes: torch.Tensor  # [A]
    frequencies: torch.Tensor  # [F], angular frequency ω in rad per τ
    exponents: torch.Tensor  # [A,F], largest exponent per unit τ (mean over the networks)
    gain: float

    def boundary(self) -> torch.Tensor:
        """``[F]``: for each frequency the amplitude where the exponent first turns negative (linear interpolation
        between grid amplitudes), nan where it never does on the grid."""
        out = torch.full((len(self.frequencies),), float("nan"), dtype=torch.float64)
        a, lam = self.amplitudes.double(), self.exponents.double()
        for f in range(lam.shape[1]):
            neg = torch.nonzero(lam[:, f] < 0).flatten()
            if len(neg) == 0:
                continue
            i = int(neg[0])
            if i == 0:
                out[f] = a[0]
                continue
            lo, hi = lam[i - 1, f], lam[i, f]
            out[f] = a[i - 1] + (a[i] - a[i - 1]) * lo / (lo - hi)
        return out


def suppression_map(amplitudes: Sequence[float], frequencies: Sequence[float], n_units: int = 200, *,
                    gain: float = 1.5, n_networks: int = 1, dt: float = 0.1, t_transient: float = 50.0,
                    t_average: float = 200.0, seed: int = 0) -> SuppressionMap:
    """Largest exponent under the drive ``I_i(t) = A cos(ω t + θ_i)``, θ_i ~ U(0, 2π), for every (A, ω) of the
    grid and each of ``n_networks`` draws of J (mean over draws): one batch of ``A·F·R`` rows. ``t_average``
    should cover a few periods 2π/ω of the slowest drive."""
    coupling, x0, gen = _networks(n_units, n_networks, seed)
    phases = 2 * math.pi * torch.rand(n_networks, n_units, generator=gen, dtype=torch.float64)
    amp = torch.tensor([float(a) for a in amplitudes], dtype=torch.float64)
    omega = torch.tensor([float(w) for w in frequencies], dtype=torch.float64)
    n_a, n_f, n_r = len(amp), len(omega), n_networks
    # row r·(A·F) + i·F + f: network r, amplitude i, frequency f (network-major, see _couple)
    rows_a = amp.repeat_interleave(n_f).repeat(n_r).reshape(-1, 1)
    rows_w = omega.repeat(n_a * n_r).reshape(-1, 1)
    rows_phase = phases.repeat_interleave(n_a * n_f, dim=0)

    def drive(t: float) -> torch.Tensor:
        return rows_a * torch.cos(rows_w * t + rows_phase)

    dt = _check_positive("dt", dt)
    gains = torch.full((n_a * n_f * n_r,), float(gain), dtype=torch.float64)
    tangent = rate_tangent_map(coupling[0] if n_r == 1 else coupling, gains, dt, drive)
    exps = lyapunov_exponents(None, x0.repeat_interleave(n_a * n_f, dim=0), max(1, round(t_average / dt)), dt=dt,
                              n_transient=round(t_transient / dt), tangent_step=tangent, generator=gen)
    return SuppressionMap(amp, omega, exps[:, 0].reshape(n_r, n_a, n_f).mean(dim=0), float(gain))


# --- figures --------------------------------------------------------------------------------------------


def plot_chaos_trajectories(t, x, gains: Sequence[float], n_show: int = 10, path=None) -> Figure:
    """A few units' ``x(t)`` per gain (``x [G,T,N]`` from ``chaos_trajectories``)."""
    t, x = to_numpy(t), to_numpy(x)
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, len(gains), sharey=True, squeeze=False)[0]
    units = np.linspace(0, x.shape[2] - 1, min(n_show, x.shape[2])).astype(int)
    for ax, g, xs in zip(axes, gains, x):
        ax.plot(t, xs[:, units], lw=0.8)
        ax.set(title=f"g = {g:g}", xlabel="time (τ)")
    axes[0].set_ylabel("x")
    return finish_figure(fig, path)


def plot_lyapunov_vs_gain(scan: GainScan, path=None) -> Figure:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    gains, lam = to_numpy(scan.gains), to_numpy(scan.exponents)
    if lam.shape[1] > 1:
        ax.plot(gains, lam, ".", color="0.6", ms=3)
    ax.plot(gains, lam.mean(axis=1), "o-", ms=4, color="C0")
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(1, color="0.6", lw=0.8, ls="--")
    ax.set(xlabel="gain g", ylabel="largest Lyapunov exponent (1/τ)", title="chaos onset")
    ax.grid(alpha=0.3)
    return finish_figure(fig, path)


def plot_suppression_map(result: SuppressionMap, path=None) -> Figure:
    """The exponent over (ω, A) with its zero contour: chaotic above 0 (red), suppressed below (blue)."""
    lam = to_numpy(result.exponents)
    amp, omega = to_numpy(result.amplitudes), to_numpy(result.frequencies)
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    lim = max(float(np.abs(lam).max()), 1e-6)
    mesh = ax.pcolormesh(np.arange(len(omega) + 1) - 0.5, np.arange(len(amp) + 1) - 0.5, lam, cmap="RdBu_r",
                         vmin=-lim, vmax=lim, shading="flat")
    if (lam > 0).any() and (lam < 0).any():
        ax.contour(np.arange(len(omega)), np.arange(len(amp)), lam, levels=[0.0], colors="k", linewidths=1.2)
    ax.set_xticks(range(len(omega)), [f"{w:g}" for w in omega])
    ax.set_yticks(range(len(amp)), [f"{a:g}" for a in amp])
    ax.set(xlabel="drive frequency ω (rad/τ)", ylabel="drive amplitude A",
           title=f"largest exponent, g = {result.gain:g} (black: 0)")
    fig.colorbar(mesh, ax=ax, label="1/τ")
    return finish_figure(fig, path)
