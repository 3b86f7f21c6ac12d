"""The transferred LIF network's own smooth map (mean field), and the check that picks the LSNN surrogate's
temperature; both validated against simulated spiking states.

**LIF mean field.** In ``spiking.lif`` every unit obeys ``τm dv/dt = −v + μ + noise`` with the mean input

    μ_i(r, u) = (W/λ · r)_i + (W_in u)_i + bias          (mV; r in spikes/s)

because the double-exponential synaptic kernel integrates to one over seconds (κ = 1000/(τr τd)). The voltage
noise adds ``ξ ~ N(0, σn²)`` each LIF step ``dt``: in Brunel's (2000) form ``τm dv/dt = −v + μ + σ√τm η(t)``
that is ``σ = σn·sqrt(τm / dt)`` (1.41 mV for the defaults; the free membrane std is ``σ/√2`` = 1 mV). The
firing rate of a LIF neuron with white-noise input (Siegert 1951; Ricciardi 1977; Brunel 2000, eq. 21) is

    Φ(μ, σ) = 1 / ( t_ref + τm √π ∫_{(V_r − μ)/σ}^{(θ − μ)/σ} e^{x²} (1 + erf x) dx ),

with ``e^{x²}(1 + erf x) = erfcx(−x)`` (scaled complementary error function, stable where e^{x²} overflows)
integrated by Gauss–Legendre quadrature. A self-consistent state has ``r = Φ(μ(r, u), σ)``; the map is
analysed in continuous time as ``τd dr/dt = −r + Φ(μ(r, u), σ)`` (each unit's synaptic decay τd, the
slow variable of the filtered rate); ``mean_field_fixed_points`` solves ``ṙ = 0`` by Newton's method (Φ acts
unit by unit, so its Jacobian is ``diag(Φ')·W/λ``, cheap and exact), and ``fixedpoints.find`` accepts the
module too (it has ``velocity``). Its fixed points move with λ,
τm, θ, V_reset, t_ref and σ: they are the spiking network's, not the rate network's. Left out by default: the
recurrent spikes' own shot noise (σ from the membrane noise only; ``shot_noise=True`` adds it, see ``sigma_of``:
on the default flip-flop network that smooths Φ so much that one stable point is left, against 3 without it and
8 memories in the simulation) and the synaptic filter's rise τr (no
effect at a fixed point, some on stability).

**LSNN.** ``lsnn_temperature_check`` compares the expected-spike surrogate's firing probability at the
LSNN's own simulated states with the spikes those states produced, per temperature; the best temperature is
the one to use in ``spiking.lsnn_surrogate.LSNNSurrogate``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .lif import LIFParams

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(200)
_X_MAX = 26.0  # erfcx(−x) ~ 2e^{x²}: beyond x = 26 the integral overflows float64 and the rate is 0 anyway


def membrane_sigma_mv(params: LIFParams) -> float:
    """σ (mV) of the voltage noise in Brunel's form (module docstring): ``σn·sqrt(τm / dt)``, √2 × the free
    membrane's standard deviation."""
    return params.noise_std_mv * math.sqrt(params.tau_m_ms / params.lif_dt_ms)


def siegert_rate_hz(mu_mv: torch.Tensor, sigma_mv, params: LIFParams) -> torch.Tensor:
    """Φ(μ, σ) of the module docstring in spikes/s (float64 inside, differentiable in μ and σ; ``sigma_mv`` a
    number or a tensor broadcastable to ``mu_mv``)."""
    if not bool((torch.as_tensor(sigma_mv) > 0).all()):
        raise ValueError(f"the Siegert rate needs noise sigma > 0 mV, got {sigma_mv}")
    mu = mu_mv.to(torch.float64)
    if torch.is_tensor(sigma_mv):
        sigma_mv = sigma_mv.to(torch.float64)
    lower = ((params.v_reset_mv - mu) / sigma_mv).clamp(max=_X_MAX)
    upper = ((params.v_threshold_mv - mu) / sigma_mv).clamp(max=_X_MAX)
    nodes = torch.as_tensor(_NODES, device=mu.device)
    weights = torch.as_tensor(_WEIGHTS, device=mu.device)
    half = (upper - lower)[..., None] / 2
    x = (upper + lower)[..., None] / 2 + half * nodes
    integral = (half * weights * torch.special.erfcx(-x)).sum(-1)
    period_ms = params.refractory_ms + params.tau_m_ms * math.sqrt(math.pi) * integral
    return (1000.0 / period_ms).to(mu_mv.dtype)


class LIFMeanField(nn.Module):
    """The mean-field map of a ``LIFNetwork`` (module docstring): state ``r [B, N]`` in spikes/s, continuous time
    in ms, ``velocity(r, u) = (Φ(μ(r, u), σ) − r) / τd``. Holds float64 copies of the network's weights."""

    def __init__(self, lif_net: nn.Module, sigma_mv: float | None = None, shot_noise: bool = False):
        super().__init__()
        self.shot_noise = bool(shot_noise)
        self.params: LIFParams = lif_net.params
        self.sigma_mv = membrane_sigma_mv(self.params) if sigma_mv is None else float(sigma_mv)
        if not self.sigma_mv > 0:
            raise ValueError(f"the LIF mean field needs membrane noise (sigma > 0 mV), got {self.sigma_mv}: "
                             "set LIFParams.noise_std_mv > 0 or pass sigma_mv")
        self.register_buffer("w_rec", lif_net.w_rec.detach().to(torch.float64).clone())
        self.register_buffer("w_in", lif_net.w_in.detach().to(torch.float64).clone())
        self.register_buffer("w_out", lif_net.w_out.detach().to(torch.float64).clone())
        self.register_buffer("tau_d_ms", lif_net.tau_d_ms.detach().to(torch.float64).clone())
        self.n_state = lif_net.n_units
        self.n_inputs = lif_net.cfg.n_inputs
        self.dt_ms = float(lif_net.dt_ms)  # Euler step when the fixed-point tools simulate it
        self.scale_factor = float(lif_net.scale_factor)

    def mean_input_mv(self, r: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return r @ self.w_rec.to(r).T + u @ self.w_in.to(r).T + self.params.bias_mv

    def shot_gain(self) -> torch.Tensor:
        """``c_i = ∫K_i² dt = 1000 / (2 (τr + τd_i))`` (1/s) of each unit's normalised synaptic kernel."""
        return 1000.0 / (2.0 * (self.params.tau_rise_ms + self.tau_d_ms))

    def sigma_of(self, r: torch.Tensor) -> torch.Tensor:
        """Per-unit σ (mV): the membrane noise's, plus (``shot_noise``) the recurrent spikes' current variance
        ``Var I_i = c_i Σ_j (W_ij/λ)² r_j`` (Poisson trains; counted in Brunel's σ as 2·Var, the variance V takes
        when the current is slow next to τm)."""
        base = torch.full_like(r, self.sigma_mv ** 2)
        if self.shot_noise:
            base = base + 2.0 * self.shot_gain().to(r) * (r.clamp(min=0.0) @ (self.w_rec.to(r) ** 2).T)
        return base.sqrt()

    def rate_map(self, r: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``Φ(μ(r, u), σ(r))``: the rates a state ``r`` drives (spikes/s)."""
        return siegert_rate_hz(self.mean_input_mv(r, u), self.sigma_of(r), self.params)

    def velocity(self, r: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return (self.rate_map(r, u) - r) / self.tau_d_ms.to(r)

    def readout(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.w_out.to(r).T


class MeanFieldPoints(NamedTuple):
    """Fixed points of the mean field: ``xstar [K,N]`` rates (spikes/s), ``eigvals [K,N]`` of the Jacobian of
    ``velocity`` (1/ms, complex), ``n_unstable [K]`` eigenvalues with positive real part, ``residual [K]``
    ``max|Φ(μ(r)) − r|`` in spikes/s."""

    xstar: torch.Tensor
    eigvals: torch.Tensor
    n_unstable: torch.Tensor
    residual: torch.Tensor

    @property
    def stable(self) -> torch.Tensor:
        return self.n_unstable == 0

    def by_index(self) -> dict[str, int]:
        values, counts = torch.unique(self.n_unstable, return_counts=True)
        return {str(int(v)): int(c) for v, c in zip(values, counts)}

    def __len__(self) -> int:
        return self.xstar.shape[0]

    def __getitem__(self, index) -> MeanFieldPoints:
        return MeanFieldPoints(*(t[index] for t in self))


def _map_and_jacobian(mf: LIFMeanField, r: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Φ(μ(r, u), σ(r))`` and its Jacobian in r, ``diag(∂Φ/∂μ)·W/λ + diag(∂Φ/∂σ · c/σ)·(W/λ)²`` (Φ acts unit by
    unit, so one backward pass gives both partial derivatives)."""
    with torch.enable_grad():
        mu = mf.mean_input_mv(r, u).detach().requires_grad_(True)
        sigma = mf.sigma_of(r).detach().requires_grad_(True)
        phi = siegert_rate_hz(mu, sigma, mf.params)
        d_mu, d_sigma = torch.autograd.grad(phi.sum(), (mu, sigma))
    jac = d_mu[:, :, None] * mf.w_rec
    if mf.shot_noise:
        jac = jac + (d_sigma * mf.shot_gain() / sigma.detach())[:, :, None] * mf.w_rec ** 2
    return phi.detach(), jac


@torch.no_grad()
def mean_field_fixed_points(mf: LIFMeanField, starts: torch.Tensor, u: torch.Tensor | None = None,
                            n_newton: int = 50, tol_hz: float = 1e-6, merge_hz: float = 0.5) -> MeanFieldPoints:
    """Self-consistent rates ``r = Φ(μ(r, u))`` by Newton's method from ``starts [K,N]`` (spikes/s; e.g. the
    simulated network's filtered rates), at the constant input ``u [I]`` (zero by default). Points within
    ``merge_hz`` (max over units) are merged; those whose residual stays above ``tol_hz`` are dropped.
    Stability from the eigenvalues of ``J = diag(1/τd)(diag(Φ')·W/λ − I)``, the velocity's Jacobian."""
    r = starts.to(torch.float64).clone()
    n = r.shape[1]
    u = torch.zeros(mf.n_inputs, dtype=torch.float64) if u is None else u.to(torch.float64)
    u = u.expand(r.shape[0], mf.n_inputs)
    eye = torch.eye(n, dtype=torch.float64)
    active = torch.arange(r.shape[0])
    for _ in range(n_newton):
        phi, jac = _map_and_jacobian(mf, r[active], u[active])
        g = phi - r[active]
        moving = g.abs().amax(dim=1) >= tol_hz
        active, g, jac = active[moving], g[moving], jac[moving]
        if len(active) == 0:
            break
        step = torch.linalg.solve(jac - eye, -g[..., None])[..., 0]
        r[active] = (r[active] + step).clamp(min=0.0)  # a rate is never negative (Φ > 0 everywhere)
    phi, jac = _map_and_jacobian(mf, r, u)
    residual = (phi - r).abs().amax(dim=1)
    keep = torch.isfinite(residual) & (residual < tol_hz)
    r, jac, residual = r[keep], jac[keep], residual[keep]
    chosen: list[int] = []
    for k in torch.argsort(residual).tolist():
        if all(float((r[k] - r[j]).abs().max()) > merge_hz for j in chosen):
            chosen.append(k)
    r, jac, residual = r[chosen], jac[chosen], residual[chosen]
    jac = (jac - eye) / mf.tau_d_ms[None, :, None]
    eigvals = torch.linalg.eigvals(jac) if len(r) else torch.zeros(0, n, dtype=torch.complex128)
    n_unstable = (eigvals.real > 0).sum(dim=1)
    order = torch.argsort(n_unstable, stable=True)
    return MeanFieldPoints(r[order], eigvals[order], n_unstable[order], residual[order])


@torch.no_grad()
def validate_mean_field(fps, lif_rates: torch.Tensor, settled: torch.Tensor, held: torch.Tensor,
                        readout) -> dict:
    """How well the mean field's stable points stand for the simulated LIF network.

    ``fps``: the mean field's ``FixedPoints`` (spikes/s); ``lif_rates [B,T,N]`` simulated filtered rates;
    ``settled [B,T]`` steps at which a memory is held; ``held [B,T,O]`` the targets; ``readout(r) -> [K,O]``.
    Returns the number of stable points, which memories (output sign patterns) they hold, the fraction of
    settled steps whose nearest stable point holds the same memory, and that nearest distance relative to the
    median spacing between stable points."""
    stable = fps[fps.stable]
    points = stable.xstar.to(lif_rates)
    signs = torch.sign(readout(points)) if len(stable) else torch.zeros(0, held.shape[-1])
    memories = sorted({tuple(int(s) for s in row) for row in signs.tolist()})
    out = {"n_stable": len(stable), "memories_held": [list(m) for m in memories], "n_memories_held": len(memories)}
    if len(stable) == 0 or not settled.any():
        return out
    states = lif_rates[settled]
    dist = torch.cdist(states, points)
    nearest = dist.argmin(dim=1)
    out["n_settled_steps"] = int(settled.sum())
    out["fraction_nearest_matching_point"] = float((signs[nearest] == torch.sign(held[settled])).all(1).float().mean())
    if len(stable) > 1:
        spacing = torch.cdist(points, points)
        spacing = spacing[~torch.eye(len(points), dtype=torch.bool, device=spacing.device)].median()
        out["median_distance_over_spacing"] = float(dist.min(dim=1).values.median() / spacing)
    return out


@torch.no_grad()
def perturbation_return(lif_net, mean_field: LIFMeanField, fps, n_steps: int, kick_hz: float = 5.0,
                        generator: torch.Generator | None = None) -> dict:
    """Perturb the simulated LIF network near each predicted stable point: does it return?

    Each trial starts the spiking network near one stable point plus a random kick of ``kick_hz`` rms (see
    ``simulate_from_rates``), then runs ``n_steps`` steps at zero input; it has returned when its filtered
    rates over the last fifth of the trial are nearer that point than any other stable point."""
    stable = fps[fps.stable]
    if len(stable) == 0:
        return {"n_points": 0}
    points = stable.xstar.to(torch.float32)
    k = len(points)
    start = (points + kick_hz * torch.randn(points.shape, generator=generator)).clamp(min=0.0)
    rates = simulate_from_rates(lif_net, mean_field, start, n_steps, generator)
    final = rates[:, -max(1, rates.shape[1] // 5):].mean(dim=1)
    nearest = torch.cdist(final, points).argmin(dim=1)
    returned = (nearest == torch.arange(k)).float()
    return {"n_points": k, "fraction_returned": float(returned.mean()), "kick_hz": kick_hz}


def simulate_from_rates(lif_net, mean_field: LIFMeanField, start_hz: torch.Tensor, n_steps: int,
                        generator=None) -> torch.Tensor:
    """Filtered rates ``[K, n_steps, N]`` of the LIF network (zero input) after a clamp phase of ``n_steps``
    more steps in which each unit receives the extra drive that makes ``start_hz`` self-consistent in the
    mean field (``μ = Φ⁻¹(start)`` by bisection, Φ increasing in μ; minus recurrence and bias). A spiking
    network cannot be set to a rate state directly; this holds it there, then lets go."""
    from .simulate import simulate

    p = lif_net.params
    target = start_hz.to(torch.float64)
    lo = torch.full_like(target, p.v_reset_mv - 100.0)
    hi = torch.full_like(target, p.v_threshold_mv + 300.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        too_low = siegert_rate_hz(mid, mean_field.sigma_of(target), p) < target
        lo, hi = torch.where(too_low, mid, lo), torch.where(too_low, hi, mid)
    extra = (lo + hi) / 2 - (target @ mean_field.w_rec.T + p.bias_mv)
    n_in, n = lif_net.cfg.n_inputs, lif_net.n_units
    w_in = torch.cat([lif_net.w_in.to(torch.float32), torch.eye(n)], dim=1)
    inputs = torch.zeros(len(start_hz), 2 * n_steps, n_in + n)
    inputs[:, :n_steps, n_in:] = extra.to(torch.float32)[:, None, :]
    res = simulate(lif_net.w_rec.to(torch.float32), w_in, lif_net.w_out.to(torch.float32),
                   lif_net.tau_d_ms.to(torch.float32), inputs, p, dt_ms=lif_net.dt_ms, generator=generator,
                   record_rates=True)
    return res.rates[0][:, n_steps:]


@torch.no_grad()
def lsnn_temperature_check(lsnn, inputs: torch.Tensor, steps: torch.Tensor, labels: torch.Tensor,
                           temperatures=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8), generator=None) -> dict:
    """Which temperature makes the LSNN surrogate's rate map agree with the simulated LSNN.

    A held state of the LSNN is a steady firing pattern; the surrogate's fixed points give each unit's rate as
    ``ẑ = σ((v − A)/(A·temperature))`` of the state. For every trial and every held memory (``steps [B,T]`` true
    where a memory is held, ``labels [B,T,O]`` which one) we average the simulated state ``[v, b]`` and the spikes
    over those steps, and compare ``ẑ`` of the mean state with the mean spike count per step, unit by unit. The
    deterministic LSNN fires in bursts that ``ẑ`` of the mean state must reproduce as a probability: too cold and
    ẑ is 0 or 1, too hot and every unit sits near ½ of its threshold's rate. Returns the mean absolute error
    per temperature and the best one (a calibration against the simulation, not a choice by hand)."""
    from .lsnn_surrogate import LSNNSurrogate

    rollout = lsnn(inputs, generator=generator) if _takes_generator(lsnn) else lsnn(inputs)
    states, spikes = rollout.states.to(torch.float64), rollout.spikes.to(torch.float64)
    mean_states, mean_spikes = [], []
    for trial in range(states.shape[0]):
        held = steps[trial]
        for pattern in torch.unique(labels[trial][held], dim=0):
            chosen = held & (labels[trial] == pattern).all(dim=-1)
            mean_states.append(states[trial, chosen].mean(0))
            mean_spikes.append(spikes[trial, chosen].mean(0))
    if not mean_states:
        raise ValueError("lsnn_temperature_check: no held steps to compare (steps is all false)")
    mean_states, mean_spikes = torch.stack(mean_states), torch.stack(mean_spikes)
    errors = {}
    for t in temperatures:
        sur = LSNNSurrogate(lsnn, temperature=float(t))
        errors[float(t)] = float((sur.rates(sur.states_from_rollout(mean_states)) - mean_spikes).abs().mean())
    return {"errors": errors, "best_temperature": min(errors, key=errors.get), "n_held_periods": len(mean_states)}


def _takes_generator(model) -> bool:
    import inspect

    try:
        return "generator" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
