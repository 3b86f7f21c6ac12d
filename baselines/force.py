"""Rate FORCE learning (Sussillo & Abbott 2009): a chaotic rate network whose readout is fed back and trained
online by recursive least squares (RLS) so that the closed loop produces a target.

    τ dx/dt = -x + g J r + w_f z + W_in u,   r = tanh(x),   z = W_out r

``J_ij ~ N(0, 1/(p N))`` on a fraction ``p`` of the entries, ``w_f ~ U(-1, 1)·feedback_scale``, ``W_in ~ U(-1, 1)
·input_scale``. One step of ``dt_ms`` is ``substeps`` exponential-Euler steps of ``h = dt/substeps``, each with r
and z held over the substep (exact for that, and what the seed's ``scipy`` loop integrates: with ``substeps = 1``
and τ = dt it is the seed's scheme):

    x ← e^{-h/τ} x + (1 - e^{-h/τ}) (g J r + w_f z + W_in u)

RLS on the readout (the FORCE seed's rule), every ``learn_every`` steps, with the error e = z - f before the
update and P(0) = I/α:

    k = P r,   c = 1 / (1 + rᵀk),   P ← P - c k kᵀ,   W_out ← W_out - c e kᵀ

``fit_force`` trains M independent networks in one call: the M recurrent matrices, readouts and RLS matrices are
stacked ``[M,N,N]`` and every step is one batched tensor operation (CPU or GPU). ``ForceRNN`` is a registered
model: ``model(inputs) -> Rollout`` runs the trained closed loop on a batch, ``step(x, u)`` is that closed loop as
a map of the state alone (the feedback ``z = W_out tanh(x)`` is a function of x), so ``fixedpoints`` analyses it
as an autonomous (or input-driven) map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ratenets import Rollout, _validate, register_model
from ratenets.arrays import to_numpy
from ratenets.plots import finish_figure
from ratenets.rate_rnn import MAX_CHANNELS, MAX_UNITS
from ratenets.seeds import stream

# --- recursive least squares, shared with the spiking FORCE network ------------------------------------------


class RLSError(ValueError):
    """An RLS update was refused (a non-finite rate or error); the weights hold the last good update."""


def rls_matrix(n_networks: int, n_units: int, p0: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """``P(0) = p0·I`` for each of ``n_networks``: ``[M,N,N]`` (rate FORCE: p0 = 1/α; spiking: 0.1·dt in s)."""
    _validate.real("p0", p0, 0, open_low=True)
    eye = torch.eye(n_units, dtype=dtype, device=device)
    return (eye * p0).expand(n_networks, n_units, n_units).clone()


def rls_update(p: torch.Tensor, w_out: torch.Tensor, r: torch.Tensor, error: torch.Tensor,
               forget: float = 1.0) -> None:
    """One RLS step for M networks at once, in place: ``p [M,N,N]``, ``w_out [M,O,N]``, rates ``r [M,N]``, error
    ``e = z - f`` ``[M,O]`` (0 where an output is not trained now). ``forget`` λ in (0, 1] weighs the update made
    n steps ago by λⁿ (1: plain RLS, every sample alike): ``k = P r``, ``P ← (P − k kᵀ/(λ + rᵀk))/λ``,
    ``w ← w − e kᵀ/(λ + rᵀk)``. Raises ``RLSError`` (one line) before anything changes when ``r`` or ``e`` is not
    finite."""
    if not (torch.isfinite(r).all() and torch.isfinite(error).all()):
        what = "rates" if not torch.isfinite(r).all() else "errors"
        raise RLSError(f"RLS refused a non-finite state: the {what} of this step hold nan or inf; the readout "
                       "keeps its last finite update (lower the feedback or the gain, or check the inputs)")
    r = r.to(p.dtype)
    k = torch.bmm(p, r.unsqueeze(-1)).squeeze(-1)  # [M,N]
    c = 1.0 / (forget + (r * k).sum(dim=-1, keepdim=True))  # [M,1]
    ck = c * k
    # P ← (P − c k kᵀ)/λ (batched rank-1; λ = 1 leaves P's scale alone)
    p.baddbmm_(ck.unsqueeze(-1), k.unsqueeze(-2), beta=1.0 / forget, alpha=-1.0 / forget)
    w_out.baddbmm_(error.to(w_out.dtype).unsqueeze(-1), ck.to(w_out.dtype).unsqueeze(-2), alpha=-1.0)


# --- the model -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForceConfig:
    """A FORCE network. Defaults: Sussillo & Abbott 2009 and the seed (g 1.5, dense J, w_f ~ U(-1, 1), readout
    ~ U(±1/√N), x(0) ~ U(±0.5)); time in ms (the seed's exercise is τ = dt = 1: its time unit is τ)."""

    n_units: int = 1000
    n_inputs: int = 0
    n_outputs: int = 1
    dt_ms: float = 1.0  # one step of forward/step: one input and one output sample
    tau_ms: float = 10.0
    substeps: int = 1  # exponential-Euler substeps per dt (r and z held over each)
    gain: float = 1.5  # g
    p_connect: float = 1.0  # fraction of nonzero entries of J (S&A: 0.1; the seed: 1)
    feedback_scale: float = 1.0
    input_scale: float = 1.0
    readout_init: float = 1.0  # W_out(0) ~ U(±readout_init/√N); 0: zeros
    x0_scale: float = 0.5  # the model's initial state x(0) ~ U(±x0_scale)

    def __post_init__(self) -> None:
        _validate.integer("n_units", self.n_units, 1, MAX_UNITS)
        _validate.integer("n_inputs", self.n_inputs, 0, MAX_CHANNELS)
        _validate.integer("n_outputs", self.n_outputs, 1, MAX_CHANNELS)
        _validate.integer("substeps", self.substeps, 1, 1000)
        _validate.real("dt_ms", self.dt_ms, 0, open_low=True)
        _validate.real("tau_ms", self.tau_ms, 0, open_low=True)
        _validate.real("gain", self.gain, 0)
        _validate.real("p_connect", self.p_connect, 0, 1, open_low=True)
        for name in ("feedback_scale", "input_scale", "readout_init", "x0_scale"):
            _validate.real(name, getattr(self, name), 0)


class ForceWeights(NamedTuple):
    """The tensors of one network (``[N,N]``, ``[N,O]``...) or of M stacked networks (a leading ``M``)."""

    j_scaled: torch.Tensor  # g J, [..., N, N] (post, pre)
    w_fb: torch.Tensor  # [..., N, O]
    w_in: torch.Tensor  # [..., N, I]
    w_out: torch.Tensor  # [..., O, N]


def _apply(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``w v`` for rows ``v [B,K]``: one ``w [R,K]`` for all rows, or one per row ``w [B,R,K]``."""
    if w.dim() == 2:
        return v @ w.T
    return torch.bmm(w, v.unsqueeze(-1)).squeeze(-1)


def force_step(x: torch.Tensor, u: torch.Tensor, weights: ForceWeights, decay: float,
               substeps: int) -> torch.Tensor:
    """One closed-loop step of ``dt`` (``substeps`` exponential-Euler steps, ``decay = e^{-h/τ}``): pure."""
    drive_in = _apply(weights.w_in, u) if u.shape[-1] else None
    for _ in range(substeps):
        r = torch.tanh(x)
        drive = _apply(weights.j_scaled, r) + _apply(weights.w_fb, _apply(weights.w_out, r))
        if drive_in is not None:
            drive = drive + drive_in
        x = torch.lerp(drive, x, decay)  # decay·x + (1 − decay)·drive
    return x


@register_model
class ForceRNN(nn.Module):
    """A FORCE-trained rate network (equations in the module docstring). Buffers ``j [N,N]`` (J before the gain),
    ``w_fb [N,O]``, ``w_in [N,I]``, ``w_out [O,N]`` (the trained readout), ``x0 [N]`` (the default initial state).
    Train it with ``fit_force``; ``forward`` and ``step`` run the closed loop."""

    config_class = ForceConfig

    def __init__(self, cfg: ForceConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = stream(seed, 0)
        n = cfg.n_units
        j = torch.randn(n, n, generator=gen) / math.sqrt(cfg.p_connect * n)
        if cfg.p_connect < 1:
            j = j * (torch.rand(n, n, generator=gen) < cfg.p_connect)
        self.register_buffer("j", j)
        self.register_buffer("w_fb", (2 * torch.rand(n, cfg.n_outputs, generator=gen) - 1) * cfg.feedback_scale)
        self.register_buffer("w_in", (2 * torch.rand(n, cfg.n_inputs, generator=gen) - 1) * cfg.input_scale)
        w_out = (2 * torch.rand(cfg.n_outputs, n, generator=gen) - 1) * (cfg.readout_init / math.sqrt(n))
        self.register_buffer("w_out", w_out)
        self.register_buffer("x0", (2 * torch.rand(n, generator=gen) - 1) * cfg.x0_scale)

    @property
    def decay(self) -> float:
        """``e^{-h/τ}`` of one substep ``h = dt/substeps``."""
        return math.exp(-self.cfg.dt_ms / (self.cfg.substeps * self.cfg.tau_ms))

    def weights(self) -> ForceWeights:
        return ForceWeights(self.cfg.gain * self.j, self.w_fb, self.w_in, self.w_out)

    def readout(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.w_out.T

    def velocity(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """dx/dt in 1/ms of the closed loop: ``(-x + g J r + w_f W_out r + W_in u) / τ``."""
        r = torch.tanh(x)
        drive = r @ (self.cfg.gain * self.j).T + self.readout(r) @ self.w_fb.T + u @ self.w_in.T
        return (drive - x) / self.cfg.tau_ms

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One closed-loop step of ``dt_ms`` (feedback of z included): ``x [B,N]``, ``u [B,I]``."""
        return force_step(x, u, self.weights(), self.decay, self.cfg.substeps)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.x0.expand(batch_size, -1).clone()

    def forward(self, inputs: torch.Tensor, x0: torch.Tensor | None = None) -> Rollout:
        """Run the closed loop over ``inputs [B,T,I]`` from ``x0 [B,N]`` (the model's ``x0`` when None). Returns
        ``Rollout(outputs z [B,T,O], states x [B,T,N], rates tanh(x))``, each after the step with ``inputs[:, t]``."""
        batch, n_steps, n_in = inputs.shape
        if n_in != self.cfg.n_inputs:
            raise ValueError(f"inputs have {n_in} channels; this network takes {self.cfg.n_inputs}")
        x = self.initial_state(batch).to(inputs) if x0 is None else x0.to(inputs)
        weights, decay, substeps = self.weights(), self.decay, self.cfg.substeps
        states = []
        for t in range(n_steps):
            x = force_step(x, inputs[:, t], weights, decay, substeps)
            states.append(x)
        states = torch.stack(states, dim=1) if states else inputs.new_zeros(batch, 0, self.cfg.n_units)
        r = torch.tanh(states)
        return Rollout(self.readout(r), states, rates=r)

    def config_dict(self) -> dict:
        return asdict(self.cfg)


# --- training ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForceTrainConfig:
    """RLS settings: ``P(0) = I/alpha``, an update every ``learn_every`` steps, ``rls_float64`` keeps P in float64
    (slower; float32 is enough for the runs measured here)."""

    alpha: float = 1.0
    learn_every: int = 1
    rls_float64: bool = False

    def __post_init__(self) -> None:
        _validate.real("alpha", self.alpha, 0, open_low=True)
        _validate.integer("learn_every", self.learn_every, 1, 1_000_000)
        _validate.boolean("rls_float64", self.rls_float64)


class ForceFit(NamedTuple):
    """What ``fit_force`` returns for M networks over T steps."""

    outputs: torch.Tensor  # [M,T,O] z after each step (with the readout of that moment)
    errors: torch.Tensor  # [M,T,O] z - f before the update of that step
    weight_change: torch.Tensor  # [M,T] sum |ΔW_out| of the update at that step (0 where none)
    final_state: torch.Tensor  # [M,N] x after the last step
    rls: torch.Tensor  # [M,N,N] P after the last update (pass it back to continue training)
    states: torch.Tensor | None  # [M,T,N] x after each step, when asked for


def _per_network(name: str, value: torch.Tensor, n_nets: int, n_steps: int | None, width: int) -> torch.Tensor:
    """``value`` as ``[M,T,width]`` (a ``[T,width]`` or ``[T]`` series is shared by every network)."""
    if not torch.is_tensor(value):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    if value.dim() == 1 and width == 1:
        value = value.unsqueeze(-1)
    if value.dim() == 2:
        value = value.unsqueeze(0).expand(n_nets, -1, -1)
    if value.dim() != 3 or value.shape[0] != n_nets or value.shape[2] != width:
        raise ValueError(f"{name} must be [T,{width}] or [{n_nets},T,{width}], got {tuple(value.shape)}")
    if n_steps is not None and value.shape[1] != n_steps:
        raise ValueError(f"{name} has {value.shape[1]} steps where the targets have {n_steps}: a target of the "
                         "wrong length (give one target value per step)")
    return value


def fit_force(models: ForceRNN | Sequence[ForceRNN], targets: torch.Tensor, inputs: torch.Tensor | None = None, *,
              train: ForceTrainConfig | None = None, learn: torch.Tensor | int | None = None,
              error_mask: torch.Tensor | None = None, x0: torch.Tensor | None = None,
              rls: torch.Tensor | None = None, record_states: bool = False) -> ForceFit:
    """Train the readouts of M networks at once by FORCE over the ``T`` steps of ``targets``.

    ``targets [T,O]`` (shared) or ``[M,T,O]``; ``inputs [T,I]`` or ``[M,T,I]`` (None: no input); ``learn``: the
    first ``learn`` steps learn (an int) or a ``[T]`` boolean mask (None: every step), and an update happens at
    learning steps ``t`` with ``t % learn_every == 0``; ``error_mask [T,O]``/``[M,T,O]`` zeroes the error of
    outputs that are not trained at a step (flip-flop steps before a bit's first pulse). ``x0 [M,N]`` starts the
    networks (their ``x0`` when None); ``rls [M,N,N]`` continues an earlier fit's P (updated in place).

    The networks run on the device of their weights. The trained readouts are copied into the models when the
    loop ends, also when it ends by a refused update (``RLSError``: a non-finite rate or error), so every model
    keeps its last good readout and ``rls`` its last good value."""
    models = [models] if isinstance(models, ForceRNN) else list(models)
    if not models:
        raise ValueError("fit_force needs at least one ForceRNN")
    cfg0 = models[0].cfg
    for m in models:
        if not isinstance(m, ForceRNN):
            raise ValueError(f"fit_force trains ForceRNN models, got {type(m).__name__}")
        if (m.cfg.n_units, m.cfg.n_inputs, m.cfg.n_outputs, m.cfg.dt_ms, m.cfg.tau_ms, m.cfg.substeps) != (
                cfg0.n_units, cfg0.n_inputs, cfg0.n_outputs, cfg0.dt_ms, cfg0.tau_ms, cfg0.substeps):
            raise ValueError("networks trained in one call must share n_units, n_inputs, n_outputs, dt_ms, tau_ms "
                             "and substeps")
    train = train or ForceTrainConfig()
    n_nets, n, n_out, n_in = len(models), cfg0.n_units, cfg0.n_outputs, cfg0.n_inputs
    device, dtype = models[0].w_out.device, models[0].w_out.dtype
    targets = _per_network("targets", targets, n_nets, None, n_out).to(device, dtype)
    n_steps = targets.shape[1]
    if inputs is None:
        inputs = torch.zeros(n_steps, n_in)
    inputs = _per_network("inputs", inputs, n_nets, n_steps, n_in).to(device, dtype)
    mask = None
    if error_mask is not None:
        mask = _per_network("error_mask", error_mask, n_nets, n_steps, n_out).to(device, dtype)
    if learn is None:
        learn_at = torch.ones(n_steps, dtype=torch.bool)
    elif isinstance(learn, int) and not isinstance(learn, bool):
        learn_at = torch.arange(n_steps) < learn
    else:
        learn_at = torch.as_tensor(learn, dtype=torch.bool).cpu()
        if learn_at.shape != (n_steps,):
            raise ValueError(f"learn must be an int or a [T] mask with T = {n_steps}, got {tuple(learn_at.shape)}")
    learn_at = learn_at & (torch.arange(n_steps) % train.learn_every == 0)
    if not torch.isfinite(targets).all():
        raise ValueError("targets hold nan or inf")
    p_dtype = torch.float64 if train.rls_float64 else dtype
    if rls is None:
        rls = rls_matrix(n_nets, n, 1.0 / train.alpha, p_dtype, device)
    elif tuple(rls.shape) != (n_nets, n, n):
        raise ValueError(f"rls must be [{n_nets},{n},{n}], got {tuple(rls.shape)}")

    stacked = ForceWeights(*(torch.stack(t) for t in zip(*(m.weights() for m in models))))
    w_out = stacked.w_out  # [M,O,N]; trained in place and copied to the models after each update
    weights = stacked._replace(w_out=w_out)
    x = torch.stack([m.x0 for m in models]) if x0 is None else x0.to(device, dtype).clone()
    decay, substeps = models[0].decay, cfg0.substeps
    outputs = torch.empty(n_nets, n_steps, n_out, device=device, dtype=dtype)
    errors = torch.empty_like(outputs)
    change = torch.zeros(n_nets, n_steps, device=device, dtype=dtype)
    states = torch.empty(n_nets, n_steps, n, device=device, dtype=dtype) if record_states else None
    learn_list = learn_at.tolist()
    try:
        for t in range(n_steps):
            x = force_step(x, inputs[:, t], weights, decay, substeps)
            r = torch.tanh(x)
            z = _apply(w_out, r)
            err = z - targets[:, t]
            if mask is not None:
                err = err * mask[:, t]
            errors[:, t] = err
            if learn_list[t]:
                before = w_out.clone()
                rls_update(rls, w_out, r, err)
                change[:, t] = (w_out - before).abs().sum(dim=(1, 2))
                z = _apply(w_out, r)
            outputs[:, t] = z
            if states is not None:
                states[:, t] = x
    finally:  # the readouts trained so far reach the models even when an update is refused
        for i, m in enumerate(models):
            m.w_out.copy_(w_out[i])
    return ForceFit(outputs, errors, change, x, rls, states)


# --- targets --------------------------------------------------------------------------------------------------


def seed_cosine(n_steps: int, dt: float = 1.0, period: float = 50.0) -> torch.Tensor:
    """The seed's target ``f(t) = cos(2π t / period)`` at ``t = dt, 2dt, ..., n_steps·dt``: ``[T,1]``."""
    t = torch.arange(1, n_steps + 1, dtype=torch.float64) * dt
    return torch.cos(2 * math.pi * t / period).float().unsqueeze(-1)


def sum_of_sines(n_steps: int, dt: float, periods: Sequence[float], amplitudes: Sequence[float] | None = None,
                 phases: Sequence[float] | None = None) -> torch.Tensor:
    """``Σ_k a_k sin(2π t / T_k + φ_k)`` at ``t = dt, ..., n_steps·dt`` (S&A 2009 Fig. 2: four sines): ``[T,1]``."""
    t = torch.arange(1, n_steps + 1, dtype=torch.float64) * dt
    amplitudes = [1.0 / len(periods)] * len(periods) if amplitudes is None else amplitudes
    phases = [0.0] * len(periods) if phases is None else phases
    out = sum(a * torch.sin(2 * math.pi * t / p + ph) for p, a, ph in zip(periods, amplitudes, phases))
    return out.float().unsqueeze(-1)


def chaotic_teacher(n_steps: int, dt: float = 1.0, *, n_units: int = 100, gain: float = 1.5, tau: float = 10.0,
                    t_transient: float = 500.0, seed: int = 0) -> torch.Tensor:
    """A chaotic target: the rate ``tanh(x_1)`` of one unit of another random network ``τ dx/dt = -x + g J tanh x``
    (RK4 at ``dt``, after ``t_transient`` of settling), scaled to unit standard deviation: ``[T,1]``."""
    from .chaos import random_coupling, rate_map

    gen = stream(seed, 0)
    coupling = random_coupling(n_units, gen)
    x = torch.rand(1, n_units, generator=gen, dtype=torch.float64) - 0.5
    step = rate_map(coupling, torch.tensor([gain], dtype=torch.float64), dt / tau)
    for k in range(round(t_transient / dt)):
        x = step(x, k)
    out = []
    for k in range(n_steps):
        x = step(x, k)
        out.append(torch.tanh(x[0, 0]))
    f = torch.stack(out)
    return ((f - f.mean()) / f.std().clamp_min(1e-12)).float().unsqueeze(-1)


def rmse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.sqrt(((outputs - targets.to(outputs)) ** 2).mean()))


# --- figures --------------------------------------------------------------------------------------------------


def plot_force_fit(fit: ForceFit, targets: torch.Tensor, dt: float, learn_until: float | None = None,
                   network: int = 0, title: str = "", path=None) -> Figure:
    """The seed's figure: target and output over time (learning period shaded), and |ΔW_out| per update."""
    z = to_numpy(fit.outputs[network])
    f = to_numpy(targets if targets.dim() == 2 else targets[network])
    t = np.arange(1, len(z) + 1) * dt
    fig = Figure(figsize=(10, 4.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for o in range(z.shape[1]):
        ax1.plot(t, f[:, o], lw=2.5, alpha=0.35, color=f"C{o}")
        ax1.plot(t, z[:, o], lw=0.9, color=f"C{o}")
    if learn_until is not None:
        for ax in (ax1, ax2):
            ax.axvspan(t[0], learn_until, color="0.9", zorder=0)
    ax1.set(ylabel="output z (thin)\ntarget (wide)", title=title)
    dw = to_numpy(fit.weight_change[network])
    keep = dw > 0
    ax2.semilogy(t[keep], dw[keep], "k", lw=0.8)
    ax2.set(xlabel="time (ms)", ylabel="|ΔW_out|")
    return finish_figure(fig, path)
