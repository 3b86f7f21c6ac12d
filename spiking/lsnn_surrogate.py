"""A smooth surrogate of an LSNN for fixed-point analysis: spikes replaced by their expected value.

A spike is a jump (Heaviside of the scaled membrane, then a reset), so the LSNN's own map has no useful
Jacobian. The surrogate replaces each spike ``z = H((v - A)/A)`` by a firing probability under logistic
escape noise, ``ẑ = σ((v - A) / (A·temperature))``, and keeps every other equation of the LSNN
(``spiking/lsnn.py``, Bellec et al. 2018 convention) as it is, with ẑ in place of z:

    I_t = W_in u_t (+ b_in) + W_rec ẑ_{t-1}        b_in: the LSNN's input bias, where it has one
    b_t = ρ b_{t-1} + (1 - ρ) ẑ_{t-1}          A_t = thr + β b_t
    v_t = α v_{t-1} + (1 - α) I_t - A_t ẑ_{t-1}
    ẑ_t = σ((v_t - A_t) / (A_t · temperature))

The state is ``x = [v, b, ẑ]`` (``3N`` values). Refractoriness is left out (at a fixed point the rate
ẑ is already below one spike per step). As ``temperature → 0`` ẑ tends to the spike itself; the default
0.2 keeps the map smooth on the scale of Bellec's pseudo-derivative (half-width 1 in the same units).
The readout sees ``ẑ`` (the filtered spikes' fixed point equals it).

``states_from_rollout`` maps the LSNN's own rollout states ``[v, b of the ALIF units]`` (``N + n_alif``
values) to this layout: v as it is, b of the LIF units (which no threshold reads) at its fixed point ẑ,
and ẑ = σ((v - A)/(A·temperature)) of the state; ``fixedpoints.find`` calls it on states of that width, so
``find(surrogate_for(lsnn), lsnn(inputs).states)`` works.
"""

from __future__ import annotations

import torch
from torch import nn

from .alif import decay


class LSNNSurrogate(nn.Module):
    """Discrete-time smooth map ``step(x, u)`` of an LSNN; ``x [B, 3N] = [v, b, ẑ]``."""

    def __init__(self, lsnn: nn.Module, temperature: float = 0.2):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.lsnn = lsnn
        self.temperature = float(temperature)
        self.n_neurons = lsnn.cfg.n_units
        self.n_inputs = lsnn.cfg.n_inputs
        self.n_state = 3 * self.n_neurons  # read by the fixed-point adapters
        self.n_lif = lsnn.cfg.n_lif

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.n_neurons
        return x[..., :n], x[..., n : 2 * n], x[..., 2 * n :]

    def states_from_rollout(self, states: torch.Tensor) -> torch.Tensor:
        """``[..., 3N]`` surrogate states from the LSNN's rollout states ``[..., N + n_alif]`` (or returned as
        they are when already ``3N`` wide)."""
        n, n_rollout = self.n_neurons, self.n_neurons + self.lsnn.cfg.n_alif
        width = states.shape[-1]
        if width == self.n_state:
            return states
        if width != n_rollout:
            raise ValueError(f"states have width {width}; the LSNN surrogate takes its own states [v, b, z] "
                             f"({self.n_state} = 3 x {n} units) or the LSNN's rollout states [v, b of the ALIF units] "
                             f"({n_rollout}): pass lsnn(inputs).states or "
                             "fixedpoints.state_trajectories(surrogate, inputs)")
        p = self.lsnn.neurons.parameters_tuple()
        v = states[..., :n]
        b = torch.zeros_like(v)
        b[..., self.n_lif :] = states[..., n:]
        threshold = p.threshold.to(v) + p.beta.to(v) * b
        z = torch.sigmoid((v - threshold) / (threshold * self.temperature))
        b[..., : self.n_lif] = z[..., : self.n_lif]  # no threshold reads it; its fixed point is ẑ
        return torch.cat([v, b, z], dim=-1)

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        """Expected spikes per step ẑ of each unit."""
        return self.split(x)[2]

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        net, p = self.lsnn, self.lsnn.neurons.parameters_tuple()
        v, b, z = self.split(x)
        alpha = decay(p.tau_m_ms, net.cfg.dt_ms, dtype=x.dtype).to(x)
        rho = decay(p.tau_a_ms, net.cfg.dt_ms, dtype=x.dtype).to(x)
        current = u @ net.w_in.T.to(x) + z @ net.w_rec().T.to(x)
        if net.b_in is not None:
            current = current + net.b_in.to(x)
        b = rho * b + (1 - rho) * z
        threshold = p.threshold.to(x) + p.beta.to(x) * b
        v = alpha * v + (1 - alpha) * current - threshold * z
        z = torch.sigmoid((v - threshold) / (threshold * self.temperature))
        return torch.cat([v, b, z], dim=-1)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.rates(x) @ self.lsnn.w_out.T.to(x) + self.lsnn.b_out.to(x)
