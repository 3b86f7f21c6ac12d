"""Synthetic spike data with known truth, the standard checks of LFADS (Sussillo et al. 2016, Pandarinath et al.
2018): a chaotic rate network and the Lorenz system, each turned into Poisson spike counts.

* ``chaotic_rnn_dataset``: ``τ dx/dt = -x + g J tanh(x)`` with ``J ~ N(0, 1/N)``, ``g = 1.5`` (chaotic for
  g > 1, Sompolinsky et al. 1988), ``τ = 25 ms``; each condition starts from its own ``x0 ~ N(0, 1)``; the rate
  of unit i is ``r_max (tanh(x_i) + 1) / 2`` (``r_max`` 30 Hz), binned at ``dt_ms`` (10 ms), 1 s trials.
* ``lorenz_dataset``: ``ẋ = σ(y - x), ẏ = x(ρ - z) - y, ż = xy - βz`` (σ 10, ρ 28, β 8/3), started on the
  attractor, each bin ``time_per_bin`` Lorenz time units (RK4); the z-scored latents ``L [T,3]`` drive the
  log-rates of the neurons, ``log r = log(base_rate_hz · dt) + gain · L W`` with unit-norm columns of ``W``.

Trials of one condition share their latents and differ in their spikes. Everything is drawn from one
``torch.Generator`` seeded by ``seed``; the caller's global RNG is neither read nor reseeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SyntheticSpikes:
    """``spikes [trials, bins, neurons]`` (int64 counts), the true ``rates`` in spikes per bin, the ``latents``
    behind them ``[trials, bins, L]``, each trial's ``condition`` and the bin width ``dt_ms``."""

    spikes: torch.Tensor
    rates: torch.Tensor
    latents: torch.Tensor
    condition: torch.Tensor
    dt_ms: float

    def __len__(self) -> int:
        return self.spikes.shape[0]

    def subset(self, index) -> SyntheticSpikes:
        return SyntheticSpikes(self.spikes[index], self.rates[index], self.latents[index], self.condition[index],
                               self.dt_ms)

    def split(self, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> tuple[SyntheticSpikes, ...]:
        """Trials shuffled (generator seeded ``seed``) and cut into consecutive parts of these ``fractions``
        (train, validation, held-out by default)."""
        if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
            raise ValueError(f"fractions must be positive and sum to at most 1, got {list(fractions)}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        cuts = [0, *(round(len(self) * sum(fractions[: k + 1])) for k in range(len(fractions)))]
        parts = [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        if any(len(p) == 0 for p in parts):
            raise ValueError(f"{len(self)} trials are too few to split into {list(fractions)}")
        return tuple(self.subset(p) for p in parts)


def _poisson(rates: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(rates, generator=g).to(torch.int64)


def _check(n_conditions: int, trials_per_condition: int, n_neurons: int, n_bins: int) -> None:
    for name, value in (("n_conditions", n_conditions), ("trials_per_condition", trials_per_condition),
                        ("n_neurons", n_neurons), ("n_bins", n_bins)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def chaotic_rnn_dataset(n_conditions: int = 100, trials_per_condition: int = 10, *, n_units: int = 50,
                        gain: float = 1.5, tau_ms: float = 25.0, dt_ms: float = 10.0, n_bins: int = 100,
                        max_rate_hz: float = 30.0, substeps: int = 10, seed: int = 0) -> SyntheticSpikes:
    """The chaotic-RNN dataset of the LFADS paper (equations in the module docstring); latents are the unit
    states ``x``, integrated by Euler steps of ``dt_ms / substeps``."""
    _check(n_conditions, trials_per_condition, n_units, n_bins)
    g = torch.Generator().manual_seed(seed)
    w = gain * torch.randn(n_units, n_units, generator=g, dtype=torch.float64) / math.sqrt(n_units)
    x = torch.randn(n_conditions, n_units, generator=g, dtype=torch.float64)
    h = dt_ms / substeps / tau_ms
    states = []
    for _ in range(n_bins):
        for _ in range(substeps):
            x = x + h * (-x + torch.tanh(x) @ w.T)
        states.append(x)
    latents = torch.stack(states, dim=1)  # [C,T,N]
    rates = (max_rate_hz * dt_ms / 1000.0) * (torch.tanh(latents) + 1) / 2
    return _trials(latents.float(), rates.float(), trials_per_condition, dt_ms, g)


def _lorenz_velocity(s: torch.Tensor, sigma=10.0, rho=28.0, beta=8.0 / 3.0) -> torch.Tensor:
    x, y, z = s.unbind(-1)
    return torch.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], dim=-1)


def _rk4(s: torch.Tensor, h: float) -> torch.Tensor:
    k1 = _lorenz_velocity(s)
    k2 = _lorenz_velocity(s + h / 2 * k1)
    k3 = _lorenz_velocity(s + h / 2 * k2)
    k4 = _lorenz_velocity(s + h * k3)
    return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def lorenz_dataset(n_conditions: int = 65, trials_per_condition: int = 20, *, n_neurons: int = 30,
                   n_bins: int = 100, dt_ms: float = 10.0, time_per_bin: float = 0.01, base_rate_hz: float = 15.0,
                   gain: float = 1.0, burn_in: float = 5.0, seed: int = 0) -> SyntheticSpikes:
    """The Lorenz dataset (module docstring): 3 z-scored latents -> log-rates of ``n_neurons`` -> Poisson."""
    _check(n_conditions, trials_per_condition, n_neurons, n_bins)
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n_conditions, 3, generator=g, dtype=torch.float64) * 5 + torch.tensor([0.0, 0.0, 25.0],
                                                                                          dtype=torch.float64)
    h = time_per_bin / 4
    for _ in range(round(burn_in / h)):  # onto the attractor, each condition at its own place on it
        s = _rk4(s, h)
    states = []
    for _ in range(n_bins):
        for _ in range(4):
            s = _rk4(s, h)
        states.append(s)
    latents = torch.stack(states, dim=1)  # [C,T,3]
    flat = latents.reshape(-1, 3)
    latents = (latents - flat.mean(0)) / flat.std(0)
    w = torch.randn(3, n_neurons, generator=g, dtype=torch.float64)
    w = w / w.norm(dim=0, keepdim=True)
    log_rates = math.log(base_rate_hz * dt_ms / 1000.0) + gain * latents @ w
    return _trials(latents.float(), log_rates.exp().float(), trials_per_condition, dt_ms, g)


def _trials(latents, rates, trials_per_condition: int, dt_ms: float, g: torch.Generator) -> SyntheticSpikes:
    condition = torch.arange(latents.shape[0]).repeat_interleave(trials_per_condition)
    rates = rates[condition]
    return SyntheticSpikes(_poisson(rates, g), rates, latents[condition], condition, dt_ms)


def _sums_of_squares(predicted, true) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel (last axis), over all trials and bins: ``Σ(y - ŷ)²`` and ``Σ(y - ȳ)²``, in float64."""
    p = torch.as_tensor(predicted, dtype=torch.float64).reshape(-1, predicted.shape[-1])
    t = torch.as_tensor(true, dtype=torch.float64).reshape(-1, true.shape[-1])
    if p.shape != t.shape:
        raise ValueError(f"predicted {tuple(p.shape)} and true {tuple(t.shape)} differ in shape")
    return ((t - p) ** 2).sum(0), ((t - t.mean(0)) ** 2).sum(0)


def r_squared(predicted, true) -> float:
    """Coefficient of determination ``1 - Σ(y - ŷ)² / Σ(y - ȳ)²`` per channel over all trials and bins (last
    axis: channels), averaged over the channels whose true values vary (a unit that never fires is left out)."""
    ss_res, ss_tot = _sums_of_squares(predicted, true)
    varies = ss_tot > 1e-12 * float(ss_tot.max().clamp_min(1e-300))  # a silent unit has no variance to explain
    if not varies.any():
        raise ValueError("every channel of the true values is constant: R² is undefined")
    return float((1 - ss_res[varies] / ss_tot[varies]).mean())


def pooled_r_squared(predicted, true) -> float:
    """``1 - ΣΣ(y - ŷ)² / ΣΣ(y - ȳ_c)²`` over every trial, bin and channel (ȳ_c: each channel's mean): the
    channels' R² weighted by their variance. Unlike ``r_squared``'s plain mean over channels it is not swung by
    a unit that barely fires (a channel of tiny variance whose own R² can be any large negative number)."""
    ss_res, ss_tot = _sums_of_squares(predicted, true)
    if float(ss_tot.sum()) <= 0:
        raise ValueError("every channel of the true values is constant: R² is undefined")
    return 1.0 - float(ss_res.sum()) / float(ss_tot.sum())


def affine_r_squared(predicted, true) -> float:
    """R² of ``true`` after the least-squares affine map from ``predicted`` (latents are known only up to one):
    fitted and scored on the same trials."""
    p = torch.as_tensor(predicted, dtype=torch.float64).reshape(-1, predicted.shape[-1])
    t = torch.as_tensor(true, dtype=torch.float64).reshape(-1, true.shape[-1])
    design = torch.cat([p, torch.ones(len(p), 1, dtype=p.dtype)], dim=1)
    coef = torch.linalg.lstsq(design, t).solution
    return r_squared(design @ coef, t)
