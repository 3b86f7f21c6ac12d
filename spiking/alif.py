"""Adaptive leaky integrate-and-fire (ALIF) neuron of Bellec et al. 2018 (NeurIPS, "Long short-term
memory and learning-to-learn in networks of spiking neurons"; reference code IGITUGraz/LSNN-official).

Convention: **Bellec 2018** (not e-prop). With ``α = exp(-Δt/τm)``, ``ρ = exp(-Δt/τa)``, one step of
``dt_ms`` reads, for input current ``I_t`` and the previous spikes ``z_{t-1}``:

    b_t = ρ b_{t-1} + (1 - ρ) z_{t-1}                 adaptation variable
    A_t = thr + β b_t                                 adaptive threshold
    v_t = α v_{t-1} + (1 - α) I_t - A_t z_{t-1}       reset by subtraction of the threshold
    z_t = H(ṽ_t),   ṽ_t = (v_t - A_t) / A_t          unless the neuron is refractory

A LIF neuron is the case ``β = 0``. The ``(1 - α)`` factor makes the membrane update the exact
solution of ``τm dv/dt = -v + I`` over one step with ``I`` held constant, which is also what NIR's
``LIF`` node means (``r = 1``, ``v_leak = 0``); this is why the Bellec 2018 convention is used rather
than e-prop's (no ``(1 - α)``, ``b' = ρb + z``, ``ṽ = (v - A)/thr``).

Pseudo-derivative (Bellec 2018): ``dz/dṽ = γ · max(0, 1 - |ṽ|)``, ``γ = 0.3``; the gradient reaches
both ``v`` and the threshold ``A`` (hence ``b``) through ṽ. snntorch's surrogates (``atan``,
``fast_sigmoid``, ``sigmoid``, ``triangular``, ``straight_through``) can be chosen instead; they are
applied to ṽ. The reset term ``A_t z_{t-1}`` carries no gradient through ``z`` (as in snntorch and
Zenke & Vogels 2021), only through ``A``.

Refractoriness: after a spike at step t the neuron cannot fire at steps t+1 .. t+``refractory_steps``; its
membrane still integrates. Bellec's code (``LSNN-official``, ``LIF_dynamic``) with ``n_refractory = n`` also
blocks the n steps after a spike (its buffer holds the last n spikes), so both cap the rate at one spike per
n + 1 steps (``tests/test_alif.py`` checks this against a transcription of that code). What differs is the
reset: there the spike of step t is taken from the membrane of step t-1 and its reset enters the membrane
of step t+1, so the first blocked step falls on a membrane not yet reset (it only stops the same spike
from repeating) and n - 1 blocked steps follow the reset; here the spike is taken from the membrane of its
own step, already reset for the previous spike, so all n blocked steps follow the reset. For Bellec's cap
on the rate use the same number (his sMNIST 5 is 5 here); for his n - 1 blocked steps after a reset use
``refractory_steps = n - 1`` (which allows one spike per n steps). Neither makes spike trains identical,
since the reset timing is part of the convention above. Behaviour is kept as it is.

``alif_step`` is the pure physics; ``ALIF`` is a thin ``snntorch.SpikingNeuron`` holding the
per-neuron parameters as buffers. State is always passed in and returned, never kept on the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from snntorch import SpikingNeuron, surrogate

BELLEC_DAMPENING = 0.3


class BellecSpike(torch.autograd.Function):
    """``z = H(v - A)`` (the same as ``H((v - A)/A)`` for ``A > 0``), zeroed where ``ready`` (bool, optional)
    is false, with Bellec's pseudo-derivative ``γ·max(0, 1 - |ṽ|)`` on ``ṽ = (v - A)/A`` passed to ``v``
    (``·1/A``) and to ``A`` (``·(-v/A²)``), zero where not ready. Fusing the scaling and the refractory
    mask into one Function saves autograd nodes in the hot loop."""

    @staticmethod
    def forward(ctx, v, threshold, dampening: float, ready=None):
        z = v > threshold
        if ready is not None:
            z = z & ready
        ctx.save_for_backward(v, threshold, ready)
        ctx.dampening = dampening
        return z.to(v.dtype)

    @staticmethod
    def backward(ctx, grad_z):
        v, threshold, ready = ctx.saved_tensors
        inv_a = threshold.reciprocal()
        scaled = v * inv_a - 1.0
        psi = (1.0 - scaled.abs()).clamp_min_(0.0).mul_(ctx.dampening)
        if ready is not None:
            psi = psi.mul_(ready)
        grad_v = grad_z * psi * inv_a
        grad_a = None
        if ctx.needs_input_grad[1]:
            grad_a = -grad_v * v * inv_a
            if grad_a.shape != threshold.shape:  # a per-neuron threshold broadcast over the batch
                grad_a = grad_a.sum_to_size(threshold.shape)
        return grad_v, grad_a, None, None


def bellec_pseudo_derivative(v_scaled: torch.Tensor, dampening: float = BELLEC_DAMPENING) -> torch.Tensor:
    """``γ · max(0, 1 - |ṽ|)`` (Bellec et al. 2018, eq. in Methods), for tests and plots."""
    return dampening * torch.clamp(1.0 - v_scaled.abs(), min=0.0)


SURROGATES: dict[str, Callable[..., Callable[[torch.Tensor], torch.Tensor]]] = {
    "atan": surrogate.atan,
    "fast_sigmoid": surrogate.fast_sigmoid,
    "sigmoid": surrogate.sigmoid,
    "triangular": surrogate.triangular,
    "straight_through": surrogate.straight_through_estimator,
}
SURROGATE_NAMES = ("bellec", *SURROGATES)


def spike_function(name: str = "bellec", dampening: float = BELLEC_DAMPENING) -> Callable:
    """``fn(v, A) -> z``: Bellec's fused spike, or an snntorch surrogate applied to ``ṽ = (v - A)/A``."""
    if name == "bellec":
        return lambda v, threshold: BellecSpike.apply(v, threshold, dampening)
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {', '.join(SURROGATE_NAMES)}, got {name!r}")
    fn = SURROGATES[name]()
    return lambda v, threshold: fn((v - threshold) / threshold).to(v.dtype)  # snntorch returns float32


class ALIFParameters(NamedTuple):
    """Per-neuron parameters, each ``[N]`` (or broadcastable): ``tau_m_ms``, ``tau_a_ms``, adaptation
    strength ``beta`` (0 for LIF), baseline ``threshold``, and ``refractory_steps`` (an int)."""

    tau_m_ms: torch.Tensor
    tau_a_ms: torch.Tensor
    beta: torch.Tensor
    threshold: torch.Tensor
    refractory_steps: int = 0


class ALIFState(NamedTuple):
    """``v`` membrane, ``b`` adaptation, ``z`` last spikes, ``refractory`` steps left; each ``[B, N]``."""

    v: torch.Tensor
    b: torch.Tensor
    z: torch.Tensor
    refractory: torch.Tensor


def check_parameters(p: ALIFParameters, dt_ms: float) -> None:
    """One ``ValueError`` naming the first bad parameter (NaN and ±inf included). ``ALIF`` calls it once, on
    construction; ``ALIFParameters`` itself is rebuilt from the buffers every step and not checked there."""
    if not (math.isfinite(dt_ms) and dt_ms > 0):
        raise ValueError(f"dt_ms must be a finite number > 0, got {dt_ms}")
    for name in ("tau_m_ms", "tau_a_ms", "threshold", "beta"):
        value = torch.as_tensor(getattr(p, name))
        if not bool(torch.isfinite(value).all()):
            bad = float(value[~torch.isfinite(value)].flatten()[0])
            raise ValueError(f"{name} must be finite for every neuron, got {bad}")
    for name in ("tau_m_ms", "tau_a_ms", "threshold"):
        value = torch.as_tensor(getattr(p, name))
        if not bool((value > 0).all()):
            raise ValueError(f"{name} must be > 0 for every neuron, got min {float(value.min())}")
    if not bool((torch.as_tensor(p.beta) >= 0).all()):
        raise ValueError(f"beta must be >= 0 for every neuron, got min {float(torch.as_tensor(p.beta).min())}")
    if int(p.refractory_steps) < 0:
        raise ValueError(f"refractory_steps must be >= 0, got {p.refractory_steps}")


def decay(tau_ms: torch.Tensor | float, dt_ms: float, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``exp(-Δt/τ)`` computed in ``dtype``; ``None``: ``tau_ms``'s own dtype where it is a floating-point
    tensor, else the default dtype. Callers pass the dtype of the state they integrate, so a float64 model
    (or a float64 copy made for fixed-point analysis) gets float64 decays, not float32 ones cast up."""
    if dtype is None:
        floating = torch.is_tensor(tau_ms) and tau_ms.is_floating_point()
        dtype = tau_ms.dtype if floating else torch.get_default_dtype()
    return torch.exp(-dt_ms / torch.as_tensor(tau_ms, dtype=dtype))


def initial_state(batch_size: int, n_units: int, device=None, dtype=None) -> ALIFState:
    zeros = torch.zeros(batch_size, n_units, device=device, dtype=dtype)
    return ALIFState(zeros, zeros.clone(), zeros.clone(), torch.zeros_like(zeros, dtype=torch.int32))


def alif_step(
    current: torch.Tensor,
    state: ALIFState,
    p: ALIFParameters,
    dt_ms: float,
    spike_fn: Callable | None = None,
) -> tuple[torch.Tensor, ALIFState]:
    """One step of the equations in the module docstring. ``current [B, N]`` is ``I_t``.
    Returns ``(z_t, new_state)``."""
    spike_fn = spike_fn or spike_function()
    alpha = decay(p.tau_m_ms, dt_ms, dtype=current.dtype).to(current)
    rho = decay(p.tau_a_ms, dt_ms, dtype=current.dtype).to(current)
    b = rho * state.b + (1 - rho) * state.z
    threshold = p.threshold + p.beta * b
    v = alpha * state.v + (1 - alpha) * current - threshold * state.z.detach()
    z = spike_fn(v, threshold)
    refractory = state.refractory
    if p.refractory_steps > 0:
        z = z * (refractory == 0)
        refractory = torch.where(z.detach() > 0, p.refractory_steps, (refractory - 1).clamp_min(0))
        refractory = refractory.to(torch.int32)
    return z, ALIFState(v, b, z, refractory)


def _as_vector(value, n_units: int) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).flatten()
    if t.numel() == 1:
        t = t.expand(n_units)
    if t.numel() != n_units:
        raise ValueError(f"expected a scalar or {n_units} values, got {t.numel()}")
    return t.clone()


def _unregister(neuron: SpikingNeuron) -> None:
    """Take ``neuron`` out of snntorch's class-level registry, which ``SpikingNeuron.__init__`` appends every
    neuron to (snntorch 0.9 to 1.0: a plain list). A snntorch without that list has nothing to undo."""
    instances = getattr(SpikingNeuron, "instances", None)
    if isinstance(instances, list):
        instances[:] = [n for n in instances if n is not neuron]


class ALIF(SpikingNeuron):
    """A layer of ``n_units`` ALIF neurons on snntorch's ``SpikingNeuron`` base.

    ``forward(current [B, N], state: ALIFState | None) -> (spikes, ALIFState)``; ``None`` starts from
    rest. Parameters are per-neuron buffers (scalars are broadcast). The neuron does not register itself
    in snntorch's class-level ``SpikingNeuron.instances`` list (it would never be released, and
    ``snntorch.utils.reset`` would reach it); it never uses ``init_hidden``. Only snntorch's public names are
    used (``snntorch.SpikingNeuron``, its documented ``instances`` list, ``snntorch.surrogate``).
    """

    def __init__(
        self,
        n_units: int,
        tau_m_ms=20.0,
        tau_a_ms=200.0,
        beta=1.6,
        threshold=0.01,
        refractory_steps: int = 0,
        dt_ms: float = 1.0,
        surrogate_name: str = "bellec",
        dampening: float = BELLEC_DAMPENING,
    ):
        spike_fn = spike_function(surrogate_name, dampening)
        super().__init__(threshold=_as_vector(threshold, n_units), spike_grad=spike_fn, reset_mechanism="subtract")
        _unregister(self)
        self.n_units = n_units
        self.dt_ms = float(dt_ms)
        self.refractory_steps = int(refractory_steps)
        self.surrogate_name = surrogate_name
        self.register_buffer("tau_m_ms", _as_vector(tau_m_ms, n_units))
        self.register_buffer("tau_a_ms", _as_vector(tau_a_ms, n_units))
        self.register_buffer("beta", _as_vector(beta, n_units))
        check_parameters(self.parameters_tuple(), self.dt_ms)

    def parameters_tuple(self) -> ALIFParameters:
        return ALIFParameters(self.tau_m_ms, self.tau_a_ms, self.beta, self.threshold, self.refractory_steps)

    def initial_state(self, batch_size: int, device=None) -> ALIFState:
        """Rest, in the dtype of the neuron's parameters (float64 after ``.double()``)."""
        device = device or self.threshold.device
        return initial_state(batch_size, self.n_units, device=device, dtype=self.threshold.dtype)

    def forward(self, current: torch.Tensor, state: ALIFState | None = None) -> tuple[torch.Tensor, ALIFState]:
        if state is None:
            state = self.initial_state(current.shape[0], current.device)
        return alif_step(current, state, self.parameters_tuple(), self.dt_ms, self.spike_grad)
