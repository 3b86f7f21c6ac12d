"""Leaky integrate-and-fire network of Kim, Li & Sejnowski 2019 (PNAS, Table S1; reference code
rkim35/spikeRNN ``spiking/LIF_network_fnc.m``): parameters, state and one pure step. The batched simulation
is ``spiking.simulate``; the module around both is ``spiking.lif_network.LIFNetwork``.

Two time steps, each with one name everywhere in the project: ``dt_ms`` is the step of a model's inputs, outputs
and ``Rollout`` (the task's step, the rate network's step: 5 ms by default), and ``lif_dt_ms``
(``LIFParams.lif_dt_ms``, 0.05 ms: 100 LIF steps per 5 ms step) is the LIF simulator's own integration step.

One LIF step of ``dt`` = ``lif_dt_ms``, for unit i, in this order:

    v_i ← v_i + g_i·(I_i + bias + (W_in u)_i − v_i + ξ_i/a),   a = dt/τm;  g_i = a, or 0 while refractory
    s_i = [v_i ≥ θ] (outside refractoriness);   where s_i: v_i ← v_reset, refractory for the next 2 ms
    I_i ← I_i·e^{−dt/τd_i} + h_i·dt                  (recurrent current, mV; decays with the *post* unit's τd)
    h_i ← h_i·e^{−dt/τr}  + κ_i Σ_j W_ij s_j,  κ_i = 1000/(τr·τd_i)
    r_j ← r_j·e^{−dt/τd_j} + q_j·dt                  (filtered spike train of unit j, Hz; its *own* τd)
    q_j ← q_j·e^{−dt/τr}  + κ_j s_j

ξ ~ N(0, σ²) with σ = 0.1 mV per step (``randn/10``), bias −40 mV (= θ: units sit at rheobase),
τm 10 ms, θ −40 mV, v_reset −65 mV, τr 2 ms, τd = the rate unit's trained τ. Times are in ms; the
factor 1000 in κ makes the double-exponential kernel integrate to one over *seconds*, so r is in spikes/s
and the recurrent current is ``W/λ · r`` with W the rate network's weights and λ the scaling factor,
exactly as in the reference code (which works in seconds). The readout is ``out = (w_out/λ)·r``.

Two choices differ from the reference code and are documented here once:

* The reference code adds the voltage noise during the refractory period too, so v leaves the reset
  value by ~0.6 mV (40 steps of 0.1 mV noise) before it integrates again; here v stays at v_reset for
  the whole refractory period (as in Brian2's ``unless refractory``) and a refractory unit cannot spike,
  which makes the 2 ms exact. Writing the noise inside the gated term (ξ/a) is what does this.
* Initial voltages are uniform in [−65, −40] mV (below threshold), not [−65, 30] mV as in the reference
  code (``vreset + rand·(30 − vreset)``; REFERENCES.md). There about three quarters of the units spike
  together on the first step, a volley that puts a transient of 0.2–0.7 on the readout at t = 0 which
  the rate network (started at rest) does not have; the task criteria that look at the whole trial
  (Go/NoGo: NoGo needs |o| < 0.3 throughout) count it as an error. Measured on one Go/NoGo net (N = 200,
  100 trials, same seeds): best-factor score 0.91 with [−65, 30], 0.95 with [−65, −40]. Set
  ``v_init_high_mv = 30`` for the reference behaviour. The reference code also starts every unit
  refractory for 2 ms (``tlast = 0``); here no unit starts refractory.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch


@dataclass(frozen=True)
class LIFParams:
    """Every knob of the transferred LIF neurons and synapses; defaults from Kim et al. 2019 (Table S1, reference
    code). Validated on construction (one ``ValueError`` naming the field), immutable after."""

    lif_dt_ms: float = 0.05  # the LIF integration step; the model's step dt_ms (5 ms) must be a whole multiple of it
    tau_m_ms: float = 10.0  # membrane time constant
    v_threshold_mv: float = -40.0
    v_reset_mv: float = -65.0
    refractory_ms: float = 2.0
    bias_mv: float = -40.0  # constant bias current (in mV, as the membrane equation is written)
    noise_std_mv: float = 0.1  # std of the Gaussian voltage noise added each LIF step (randn/10)
    tau_rise_ms: float = 2.0  # synaptic rise time τr; the decay τd is each unit's trained τ
    v_init_low_mv: float = -65.0  # initial voltage ~ U[low, high]; reference code: high = 30 (module docstring)
    v_init_high_mv: float = -40.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"LIFParams.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"LIFParams.{f.name} must be finite, got {value}")
        for name in ("lif_dt_ms", "tau_m_ms", "tau_rise_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LIFParams.{name} must be > 0, got {getattr(self, name)}")
        if self.lif_dt_ms > self.tau_m_ms:
            raise ValueError(f"LIFParams.lif_dt_ms must be <= tau_m_ms, got {self.lif_dt_ms} > {self.tau_m_ms}")
        for name in ("refractory_ms", "noise_std_mv"):
            if getattr(self, name) < 0:
                raise ValueError(f"LIFParams.{name} must be >= 0, got {getattr(self, name)}")
        if not self.v_reset_mv < self.v_threshold_mv:
            raise ValueError(f"LIFParams: need v_reset_mv < v_threshold_mv, got {self.v_reset_mv}, "
                             f"{self.v_threshold_mv}")
        if not self.v_init_low_mv <= self.v_init_high_mv:
            raise ValueError(f"LIFParams: need v_init_low_mv <= v_init_high_mv, got {self.v_init_low_mv}, "
                             f"{self.v_init_high_mv}")

    @property
    def refractory_steps(self) -> int:
        """LIF steps during which a unit that just spiked neither integrates nor spikes (40 by default)."""
        return round(self.refractory_ms / self.lif_dt_ms)

    def substeps(self, dt_ms: float) -> int:
        """LIF steps per model step ``dt_ms`` (the task's step); it must be a whole multiple of ``lif_dt_ms``."""
        if not (isinstance(dt_ms, numbers.Real) and math.isfinite(dt_ms) and dt_ms > 0):
            raise ValueError(f"the step dt_ms must be a finite number > 0, got {dt_ms!r}")
        n = round(dt_ms / self.lif_dt_ms)
        if n < 1 or not math.isclose(n * self.lif_dt_ms, dt_ms, rel_tol=1e-9):
            raise ValueError(f"the step dt_ms {dt_ms} ms is not a whole multiple of the LIF step "
                             f"lif_dt_ms {self.lif_dt_ms} ms")
        return n


class LIFState(NamedTuple):
    """State of a batch of LIF networks, every field ``[..., N]`` (leading dims: scales, trials). Fields: ``v``
    membrane potential (mV); ``i_syn`` recurrent synaptic current (mV) and ``h_syn`` its rise variable (mV/ms);
    ``r`` filtered spike train (Hz; the readout and the analyses use it) and ``h_r`` its rise variable (Hz/ms);
    ``refractory_left`` LIF steps of refractoriness left (float, 0 = free)."""

    v: torch.Tensor  # membrane potential, mV
    i_syn: torch.Tensor  # recurrent synaptic current, mV
    h_syn: torch.Tensor  # its rise variable, mV/ms
    r: torch.Tensor  # filtered spike train, Hz (readout and analyses)
    h_r: torch.Tensor  # its rise variable, Hz/ms
    refractory_left: torch.Tensor  # LIF steps of refractoriness left (float, 0 = free)


class SynapseConstants(NamedTuple):
    """Per-unit constants of the double-exponential filter, precomputed once per network. Fields: ``decay_d``
    ``e^{-dt/τd_i}`` ``[N]``; ``decay_r`` ``e^{-dt/τr}`` (a float); ``jump`` ``κ_i = 1000/(τr·τd_i)``, the jump of h
    per unit input, ``[N]``."""

    decay_d: torch.Tensor  # e^{-dt/τd_i}, [N]
    decay_r: float  # e^{-dt/τr}
    jump: torch.Tensor  # κ_i = 1000/(τr·τd_i): jump of h per unit input, [N]


def synapse_constants(tau_d_ms: torch.Tensor, params: LIFParams) -> SynapseConstants:
    """``e^{-dt/τd}``, ``e^{-dt/τr}`` and ``κ = 1000/(τr τd)`` (1/ms per 1/s, see the module docstring)."""
    tau_d = tau_d_ms
    return SynapseConstants(
        decay_d=torch.exp(-params.lif_dt_ms / tau_d),
        decay_r=math.exp(-params.lif_dt_ms / params.tau_rise_ms),
        jump=1000.0 / (params.tau_rise_ms * tau_d),
    )


def initial_state(
    shape: tuple[int, ...],
    params: LIFParams,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
    v0: torch.Tensor | None = None,
) -> LIFState:
    """Resting synapses, no refractoriness, ``v ~ U[v_init_low_mv, v_init_high_mv]`` (or ``v0``), shape ``shape``."""
    if v0 is None:
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        v0 = params.v_init_low_mv + u * (params.v_init_high_mv - params.v_init_low_mv)
    v = v0.to(device=device, dtype=dtype).expand(shape).clone()
    zeros = torch.zeros(shape, device=v.device, dtype=dtype)
    return LIFState(v, zeros, zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone())


def lif_step(
    state: LIFState,
    drive: torch.Tensor,
    noise: torch.Tensor | float,
    w_rec: torch.Tensor,
    syn: SynapseConstants,
    params: LIFParams,
    recurrent: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, LIFState]:
    """One LIF step (equations in the module docstring); pure, returns ``(spikes, next_state)``.

    The noise enters as ``ξ/a`` inside the gated term, so that it is added exactly when the unit
    integrates (``g = a``) and not while it is refractory (``g = 0``).

    ``drive [..., N]`` is the external current ``bias + W_in u`` in mV; ``noise`` the voltage noise of this
    step in mV (broadcastable); ``w_rec [..., N, N]`` (post, pre) the recurrent weights already divided
    by the scaling factor, one matrix per leading ``scale`` index or one for all. ``spikes`` is 0/1 in the
    state's dtype. ``recurrent``, when given, maps this step's spikes to their recurrent input ``W s [..., N]``
    in place of the product with ``w_rec`` (then unused, may be None): a caller's own propagation (spiking FORCE
    gathers the columns of the units that spiked) with every other equation kept here.
    """
    v, i_syn, h_syn, r, h_r, refr = state
    a = params.lif_dt_ms / params.tau_m_ms
    gate = a * (1.0 - refr).clamp(0.0, 1.0)
    v = torch.lerp(v, i_syn + (drive + noise / a), gate)
    spikes = (v >= params.v_threshold_mv).to(v.dtype) * (refr <= 0).to(v.dtype)
    v = torch.lerp(v, torch.full_like(v, params.v_reset_mv), spikes)
    refr = torch.maximum((refr - 1.0).clamp(min=0.0), spikes * params.refractory_steps)
    if recurrent is not None:
        rec = recurrent(spikes)
    else:
        rec = torch.matmul(spikes, w_rec.transpose(-1, -2)) if w_rec.dim() > 2 else spikes @ w_rec.T
    i_syn = i_syn * syn.decay_d + h_syn * params.lif_dt_ms
    h_syn = h_syn * syn.decay_r + syn.jump * rec
    r = r * syn.decay_d + h_r * params.lif_dt_ms
    h_r = h_r * syn.decay_r + syn.jump * spikes
    return spikes, LIFState(v, i_syn, h_syn, r, h_r, refr)
