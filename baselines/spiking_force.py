"""Spiking FORCE (Nicola & Clopath 2017, Nat. Commun.; their ``LIFFORCESINE.m``): a chaotic LIF network whose
readout of filtered spike trains is fed back as a current and trained online by RLS, built on the project's LIF
kernel (``spiking.lif.lif_step``: membrane, refractoriness, reset and double-exponential synapses).

Per LIF step of ``dt`` (0.05 ms), for unit i (the equations of ``spiking.lif``, with the drive below):

    drive_i = bias + Q η_i·z + (W_in u)_i,     z = φᵀ r        (r: filtered spike trains in Hz, τr 2, τd 20 ms)
    I_i     = (ω r)_i                          (recurrent current through the same double-exponential synapse)

with ``ω_ij = G·N(0,1)/(√N p)`` on a fraction p of the entries, each row's non-zero entries shifted to sum to
zero (N&C), ``η ~ U(-1, 1)``, φ(0) = 0 and RLS on φ every 2.5 ms with P(0) = 0.1·dt·I (dt in seconds, as N&C
write it; ``baselines.force.rls_update``). N&C: N 2000, p 0.1, G 0.04, Q 10, τm 10 ms, t_ref 2 ms, v_reset -65,
v_peak = bias = -40 mV, no noise, v(0) ~ U(-65, 30) mV (``NC_PARAMS``).

The kernel takes the recurrent weights as a matrix and multiplies the spike vector by it each step; with ~2
spikes in 2000 units per step that product is >99 % of the work on a CPU (a 2000×2000 product: ~7 ms here, 40
times the rest of the step). So the kernel is called with ``recurrent=gathered_recurrence(ωᵀ)``: the input of
the units that spiked, ``Σ_j ω[:, j]``, gathered from their columns (the same numbers as the dense call, summed in
another order; ``tests/test_force.py`` checks spike for spike), every other equation the kernel's own.
A GPU takes the dense call (``propagation="dense"``), where gathering would synchronise the host every step.

``simulate_spiking_force`` and ``fit_spiking_force`` also take a list of M networks (seeds): one trial each, run
side by side (states ``[M,N]``, the M RLS matrices in one ``[M,N,N]`` tensor), each network's spikes and readout
those of running it alone (``tests/test_force.py``). The per-step cost on a CPU is mostly Python and kernel
launches, so M seeds cost little more than one until the RLS updates dominate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
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
from spiking.lif import LIFParams, LIFState, SynapseConstants, initial_state, lif_step, synapse_constants

from .force import rls_matrix, rls_update

NC_PARAMS = LIFParams(lif_dt_ms=0.05, tau_m_ms=10.0, v_threshold_mv=-40.0, v_reset_mv=-65.0, refractory_ms=2.0,
                      bias_mv=-40.0, noise_std_mv=0.0, tau_rise_ms=2.0, v_init_low_mv=-65.0, v_init_high_mv=30.0)
PROPAGATIONS = ("auto", "sparse", "dense")

# The recipe for the 5 Hz sine on every seed. With N&C's single output (Q 10, G 0.04) the learned loop's phase drifts
# once learning stops: 0-2 of 5 seeds end within 0.2 of the amplitude over the 5 s test; stronger feedback and weaker
# chaos (Q 40, G 0.02) reach 87-93 % of seeds, never all. A second output trained on the cosine and fed back with the
# sine (``sine_target(..., quadrature=True)``) gives the loop a phase it can read (a sine alone takes each value twice
# per cycle): with Q 40, G 0.02 and RLS every 1 ms, 32 of 32 seeds (0-15, fresh 30-37 and 46-53) within 0.022 of the
# amplitude (README, spiking FORCE). ``SpikingForceConfig(**QUADRATURE_SINE)``, ``fit_spiking_force(...,
# rls_every_ms=QUADRATURE_SINE_RLS_MS)``.
QUADRATURE_SINE = {"gain": 0.02, "feedback_scale": 40.0, "n_outputs": 2}
QUADRATURE_SINE_RLS_MS = 1.0


@dataclass(frozen=True)
class SpikingForceConfig:
    """A spiking FORCE network; defaults from Nicola & Clopath 2017 (``NC_PARAMS``). ``dt_ms``: one input
    value and one recorded output per ``dt_ms`` (a whole number of LIF steps). ``params`` may be a dict."""

    n_units: int = 2000
    n_inputs: int = 0
    n_outputs: int = 1
    p_connect: float = 0.1
    gain: float = 0.04  # G
    feedback_scale: float = 10.0  # Q
    input_scale: float = 10.0
    tau_decay_ms: float = 20.0
    dt_ms: float = 0.5
    params: LIFParams = field(default_factory=lambda: NC_PARAMS)

    def __post_init__(self) -> None:
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", LIFParams(**self.params))
        if not isinstance(self.params, LIFParams):
            raise ValueError(f"params must be a LIFParams, got {type(self.params).__name__}")
        _validate.integer("n_units", self.n_units, 1, MAX_UNITS)
        _validate.integer("n_inputs", self.n_inputs, 0, MAX_CHANNELS)
        _validate.integer("n_outputs", self.n_outputs, 1, MAX_CHANNELS)
        _validate.real("p_connect", self.p_connect, 0, 1, open_low=True)
        for name in ("gain", "feedback_scale", "input_scale"):
            _validate.real(name, getattr(self, name), 0)
        _validate.real("tau_decay_ms", self.tau_decay_ms, 0, open_low=True)
        self.params.substeps(self.dt_ms)

    def config_dict(self) -> dict:
        return {**asdict(self), "params": asdict(self.params)}


def nicola_clopath_weights(cfg: SpikingForceConfig, generator: torch.Generator) -> torch.Tensor:
    """``ω [N,N]`` (post, pre): G·N(0,1)/(√N p) on a fraction p, each row's non-zero entries summing to zero."""
    n, p = cfg.n_units, cfg.p_connect
    w = cfg.gain * torch.randn(n, n, generator=generator) / (math.sqrt(n) * p)
    present = torch.rand(n, n, generator=generator) < p
    w = w * present
    count = present.sum(dim=1, keepdim=True).clamp_min(1)
    return (w - present * (w.sum(dim=1, keepdim=True) / count)).contiguous()


def gathered_recurrence(w_rec_pre: torch.Tensor, block: int = 0):
    """The recurrent input ``W s`` of spikes ``[B,N]`` as a function for ``lif_step(..., recurrent=)``: the rows
    of ``w_rec_pre`` (the recurrent weights transposed, ``[N_pre, N_post]``, contiguous) of the units that
    spiked, summed per trial, instead of a dense product (the same numbers, summed in another order). With
    ``block = N``, ``w_rec_pre`` stacks one such matrix per trial (``[B·N, N]``: trial b reads rows b·N...)."""

    def recurrent(spikes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(spikes)
        trial, unit = torch.nonzero(spikes, as_tuple=True)
        if unit.numel():
            rows = unit + trial * block if block else unit
            out.index_add_(0, trial, w_rec_pre.index_select(0, rows))
        return out

    return recurrent


def lif_step_sparse(state: LIFState, drive: torch.Tensor, noise, w_rec_pre: torch.Tensor, syn: SynapseConstants,
                    params: LIFParams) -> tuple[torch.Tensor, LIFState]:
    """``spiking.lif.lif_step`` with the recurrent input gathered from ``w_rec_pre`` (``gathered_recurrence``);
    states ``[B,N]``."""
    return lif_step(state, drive, noise, None, syn, params, recurrent=gathered_recurrence(w_rec_pre))


class SpikingForceRun(NamedTuple):
    """One closed-loop simulation of B trials over T rate steps (``simulate_spiking_force``; M networks: B = M)."""

    outputs: torch.Tensor  # [B,T,O] z at the end of each rate step (readout of that moment)
    rates: torch.Tensor | None  # [B,T,N] filtered spike trains, Hz (when recorded)
    counts: torch.Tensor | None  # [B,T,N] spikes per rate step (when recorded)
    n_spikes: torch.Tensor  # [B,N] spikes per unit over the run
    raster: torch.Tensor  # [E,3] (trial, LIF step, unit) of the first ``raster_units`` units
    final_state: LIFState
    rls: torch.Tensor | None  # [M,N,N] P after the last update (training runs; M networks)
    n_updates: int


@register_model
class SpikingForce(nn.Module):
    """Nicola & Clopath's spiking FORCE network (module docstring). Buffers: ``w_rec`` ω ``[N,N]`` (post, pre),
    ``w_fb`` Qη ``[N,O]``, ``w_in [N,I]``, ``w_out`` φᵀ ``[O,N]`` (trained by ``fit_spiking_force``), ``v0 [N]``
    (initial voltages, so a run is reproducible). ``forward`` runs the closed loop without learning."""

    config_class = SpikingForceConfig

    def __init__(self, cfg: SpikingForceConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = stream(seed, 0)
        n, prm = cfg.n_units, cfg.params
        self.register_buffer("w_rec", nicola_clopath_weights(cfg, gen))
        self.register_buffer("w_fb", cfg.feedback_scale * (2 * torch.rand(n, cfg.n_outputs, generator=gen) - 1))
        self.register_buffer("w_in", cfg.input_scale * (2 * torch.rand(n, cfg.n_inputs, generator=gen) - 1))
        self.register_buffer("w_out", torch.zeros(cfg.n_outputs, n))
        v0 = prm.v_init_low_mv + torch.rand(n, generator=gen) * (prm.v_init_high_mv - prm.v_init_low_mv)
        self.register_buffer("v0", v0)

    @property
    def substeps(self) -> int:
        return self.cfg.params.substeps(self.cfg.dt_ms)

    def forward(self, inputs: torch.Tensor, generator: torch.Generator | None = None,
                propagation: str = "auto") -> Rollout:
        """Closed loop over ``inputs [B,T,I]`` (one value per ``dt_ms``), every trial from ``v0``. Returns
        ``Rollout(outputs z [B,T,O], states r [B,T,N] in Hz, rates (same), spikes: counts per rate step)``."""
        run = simulate_spiking_force(self, inputs, generator=generator, propagation=propagation, record_rates=True)
        return Rollout(run.outputs, run.rates, rates=run.rates, spikes=run.counts)

    def smooth_surrogate(self):
        """None exists: the rate is a filtered spike train of a reset neuron; refused with one line, so the
        fixed-point analyses never differentiate spikes."""
        raise TypeError("SpikingForce has no smooth surrogate (its dynamics are spikes and resets); analyse a "
                        "rate FORCE network (baselines.ForceRNN) instead")

    def config_dict(self) -> dict:
        return self.cfg.config_dict()


def _choose(propagation: str, device: torch.device) -> str:
    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {', '.join(PROPAGATIONS)}, got {propagation!r}")
    if propagation == "auto":
        return "sparse" if device.type == "cpu" else "dense"
    return propagation


def _stack_networks(models) -> list:
    """``models`` as a list of SpikingForce networks that one simulation can run side by side."""
    nets = [models] if isinstance(models, SpikingForce) else list(models)
    if not nets or not all(isinstance(m, SpikingForce) for m in nets):
        raise ValueError("give a SpikingForce network or a non-empty list of them")
    c0 = nets[0].cfg
    for m in nets[1:]:
        if (m.cfg.n_units, m.cfg.n_inputs, m.cfg.n_outputs, m.cfg.dt_ms, m.cfg.tau_decay_ms, m.cfg.params) != (
                c0.n_units, c0.n_inputs, c0.n_outputs, c0.dt_ms, c0.tau_decay_ms, c0.params):
            raise ValueError("networks simulated together must share n_units, n_inputs, n_outputs, dt_ms, "
                             "tau_decay_ms and params")
    return nets


@torch.no_grad()
def simulate_spiking_force(model, inputs: torch.Tensor, *, targets: torch.Tensor | None = None,
                           learn: torch.Tensor | None = None, rls_every: int = 5, p0: float | None = None,
                           rls: torch.Tensor | None = None, generator: torch.Generator | None = None,
                           propagation: str = "auto", record_rates: bool = False, raster_units: int = 0,
                           state: LIFState | None = None, rls_float64: bool = False,
                           forget: float = 1.0) -> SpikingForceRun:
    """Run the closed loop over ``inputs [B,T,I]``; with ``targets [B,T,O]`` train the readouts by RLS at the end
    of rate steps ``t`` where ``learn[t]`` and ``t % rls_every == 0`` (N&C: every 2.5 ms), from ``P(0) = p0·I``
    (default 0.1·dt, dt in s) or the given ``rls [M,N,N]``. A refused update (``RLSError``) leaves each readout at
    its last good value. ``state`` continues an earlier run instead of starting from ``v0``. ``forget``: the RLS
    forgetting factor per update (``rls_update``; 1, N&C's, weighs every update alike).

    ``model`` is one network (B trials of it; training: B = 1) or a list of M networks sharing their sizes, one
    trial each (B = M; trial m runs network m): M seeds train in one pass, each step one batched operation."""
    nets = _stack_networks(model)
    many = not isinstance(model, SpikingForce)
    cfg, prm = nets[0].cfg, nets[0].cfg.params
    n_nets, n = len(nets), cfg.n_units
    batch, n_steps, n_in = inputs.shape
    if n_in != cfg.n_inputs:
        raise ValueError(f"inputs have {n_in} channels; this network takes {cfg.n_inputs}")
    if many and batch != n_nets:
        raise ValueError(f"{n_nets} networks run one trial each: inputs must be [{n_nets},T,I], got B = {batch}")
    if prm.noise_std_mv > 0 and generator is None:
        raise ValueError("params.noise_std_mv > 0: give a generator for the voltage noise")
    device, dtype = nets[0].w_rec.device, nets[0].w_rec.dtype
    mode = _choose(propagation, device)
    training = targets is not None
    if training:
        if batch != n_nets:
            raise ValueError(f"training runs one trial per network (B = {n_nets}), got B = {batch}")
        if targets.shape != (batch, n_steps, cfg.n_outputs):
            raise ValueError(f"targets must be [{batch},{n_steps},{cfg.n_outputs}] (one value per rate step of the "
                             f"inputs), got {tuple(targets.shape)}: a target of the wrong length")
        if not torch.isfinite(targets).all():
            raise ValueError("targets hold nan or inf")
        learn_at = torch.ones(n_steps, dtype=torch.bool) if learn is None else torch.as_tensor(learn).bool().cpu()
        if learn_at.shape != (n_steps,):
            raise ValueError(f"learn must be a [T] mask with T = {n_steps}, got {tuple(learn_at.shape)}")
        _validate.integer("rls_every", rls_every, 1, 10**9)
        _validate.real("forget", forget, 0, 1, open_low=True)
        learn_list = (learn_at & (torch.arange(n_steps) % rls_every == 0)).tolist()
        if rls is None:
            p_dtype = torch.float64 if rls_float64 else dtype
            rls = rls_matrix(n_nets, n, 0.1 * prm.lif_dt_ms / 1000.0 if p0 is None else p0, p_dtype, device)
        elif tuple(rls.shape) != (n_nets, n, n):
            raise ValueError(f"rls must be [{n_nets},{n},{n}], got {tuple(rls.shape)}")
        targets = targets.to(device, dtype)
    inputs = inputs.to(device, dtype)
    syn = synapse_constants(torch.full((n,), cfg.tau_decay_ms, device=device, dtype=dtype), prm)
    w_rec = torch.stack([m.w_rec for m in nets])  # [M,N,N] (post, pre)
    w_fb = torch.stack([m.w_fb for m in nets])  # [M,N,O]
    w_out = torch.stack([m.w_out for m in nets])  # [M,O,N], trained in place
    if state is None:
        v0 = torch.stack([m.v0 for m in nets]) if many else nets[0].v0
        state = initial_state((batch, n), prm, device=device, dtype=dtype, v0=v0)
    if mode == "sparse":  # rows of ωᵀ, network m's block at rows m·N..(m+1)·N
        recurrent = gathered_recurrence(w_rec.transpose(1, 2).reshape(n_nets * n, n).contiguous(),
                                        n if many else 0)
    elif many:
        recurrent = lambda s: torch.bmm(w_rec, s.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    else:
        recurrent = None
    if not many:
        w_fb = w_fb[0].T  # one network, B trials: plain products
    drive_in = torch.einsum("bti,bni->btn", inputs, torch.stack([m.w_in for m in nets]).expand(batch, -1, -1))
    drive_in = drive_in + prm.bias_mv  # [B,T,N]

    def readout(r: torch.Tensor) -> torch.Tensor:
        return torch.bmm(w_out, r.unsqueeze(-1)).squeeze(-1) if many else r @ w_out[0].T

    substeps = nets[0].substeps
    outputs = torch.empty(batch, n_steps, cfg.n_outputs, device=device, dtype=dtype)
    rates = torch.empty(batch, n_steps, n, device=device, dtype=dtype) if record_rates else None
    counts = torch.empty(batch, n_steps, n, device=device, dtype=dtype) if record_rates else None
    n_spikes = torch.zeros(batch, n, device=device, dtype=dtype)
    events, n_updates = [], 0
    z = readout(state.r)
    try:
        for t in range(n_steps):
            before = n_spikes.clone() if record_rates else None
            for m in range(substeps):
                if many:
                    drive = drive_in[:, t] + torch.bmm(w_fb, z.unsqueeze(-1)).squeeze(-1)
                else:
                    drive = torch.addmm(drive_in[:, t], z, w_fb)
                noise = 0.0 if prm.noise_std_mv == 0 else prm.noise_std_mv * torch.randn(
                    batch, n, generator=generator, device=device, dtype=dtype)
                spikes, state = lif_step(state, drive, noise, w_rec[0], syn, prm, recurrent=recurrent)
                n_spikes += spikes
                if raster_units:
                    hit = torch.nonzero(spikes[:, :raster_units])
                    if hit.numel():
                        k = torch.full((len(hit), 1), t * substeps + m, dtype=torch.long, device=device)
                        events.append(torch.cat([hit[:, :1], k, hit[:, 1:]], dim=1))
                z = readout(state.r)
            if training and learn_list[t]:
                rls_update(rls, w_out, state.r, z - targets[:, t], forget)
                n_updates += 1
            outputs[:, t] = z
            if record_rates:
                rates[:, t] = state.r
                counts[:, t] = n_spikes - before
    finally:
        if training:
            for i, m in enumerate(nets):
                m.w_out.copy_(w_out[i])
    raster = torch.cat(events) if events else torch.zeros(0, 3, dtype=torch.long, device=device)
    return SpikingForceRun(outputs, rates, counts, n_spikes, raster, state, rls, n_updates)


class SpikingForceFit(NamedTuple):
    outputs: torch.Tensor  # [T,O] z per rate step over settle + train + test
    targets: torch.Tensor  # [T,O]
    train_steps: tuple[int, int]  # [start, stop) rate steps that learned
    test_rmse: float  # RMSE of output 0 (the target) over the test window, learning off
    test_amplitude: float  # (max - min)/2 of target 0 over the test window
    run: SpikingForceRun
    seconds: float


def sine_target(n_steps: int, dt_ms: float, freq_hz: float = 5.0, amplitude: float = 1.0,
                quadrature: bool = False) -> torch.Tensor:
    """N&C's target ``sin(2π f t)``, t in s, one value per rate step: ``[T,1]``; with ``quadrature`` also its
    partner ``cos(2π f t)`` as a second output, ``[T,2]`` (``QUADRATURE_SINE``)."""
    t = torch.arange(1, n_steps + 1, dtype=torch.float64) * (dt_ms / 1000.0)
    angle = 2 * math.pi * freq_hz * t
    parts = [torch.sin(angle), torch.cos(angle)] if quadrature else [torch.sin(angle)]
    return (amplitude * torch.stack(parts, dim=-1)).float()


def fit_spiking_force(model, target: torch.Tensor, *, settle_ms: float, train_ms: float, test_ms: float,
                      rls_every_ms: float = 2.5, raster_units: int = 100, propagation: str = "auto",
                      rls_float64: bool = False, p0: float | None = None, forget: float = 1.0):
    """N&C's protocol for a generation target (no input): ``settle_ms`` without learning, ``train_ms`` with RLS
    every ``rls_every_ms``, ``test_ms`` with learning off; ``target [T,O]`` holds one value per rate step over the
    whole run (a target of another length is refused before anything runs). The test RMSE is output 0's over the
    test window (further outputs, such as a quadrature partner, are trained and fed back but not scored).
    ``model``: one network (returns its ``SpikingForceFit``) or a list of networks trained side by side in one
    simulation (returns one ``SpikingForceFit`` each; ``seconds`` is the whole call's). ``p0``: P(0) = p0·I (None:
    ``simulate_spiking_force``'s default); ``forget``: the RLS forgetting factor per update (1: N&C's)."""
    import time

    nets = _stack_networks(model)
    cfg = nets[0].cfg
    dt = cfg.dt_ms
    for name, ms, low in (("settle_ms", settle_ms, 0), ("train_ms", train_ms, dt), ("test_ms", test_ms, dt)):
        _validate.real(name, ms, low)
    lengths = [round(ms / dt) for ms in (settle_ms, train_ms, test_ms)]
    every = round(rls_every_ms / dt)
    if every < 1 or not math.isclose(every * dt, rls_every_ms, rel_tol=1e-9):
        raise ValueError(f"rls_every_ms {rls_every_ms} must be a whole number of rate steps of {dt} ms")
    n_steps = sum(lengths)
    if target.dim() == 1:
        target = target.unsqueeze(-1)
    if target.shape != (n_steps, cfg.n_outputs):
        raise ValueError(f"target must be [{n_steps},{cfg.n_outputs}] (settle + train + test at "
                         f"{dt} ms), got {tuple(target.shape)}: a target of the wrong length")
    learn = torch.zeros(n_steps, dtype=torch.bool)
    start, stop = lengths[0], lengths[0] + lengths[1]
    learn[start:stop] = True
    m = len(nets)
    inputs = torch.zeros(m, n_steps, cfg.n_inputs)
    t0 = time.perf_counter()
    run = simulate_spiking_force(model, inputs, targets=target.unsqueeze(0).expand(m, -1, -1), learn=learn,
                                 rls_every=every, raster_units=raster_units, propagation=propagation,
                                 rls_float64=rls_float64, p0=p0, forget=forget)
    seconds = time.perf_counter() - t0
    f, test = target.float(), slice(stop, n_steps)
    amp = float((f[test, 0].max() - f[test, 0].min()) / 2)
    fits = []
    for i in range(m):
        z = run.outputs[i].cpu()
        err = float(torch.sqrt(((z[test, 0] - f[test, 0]) ** 2).mean()))
        own = run
        if m > 1:  # network i's share of the run, as if it had run alone
            ev = run.raster[run.raster[:, 0] == i]
            own = SpikingForceRun(run.outputs[i:i + 1], None, None, run.n_spikes[i:i + 1],
                                  torch.cat([torch.zeros_like(ev[:, :1]), ev[:, 1:]], dim=1),
                                  LIFState(*(x[i:i + 1] for x in run.final_state)), run.rls[i:i + 1],
                                  run.n_updates)
        fits.append(SpikingForceFit(z, f, (start, stop), err, amp, own, seconds))
    return fits[0] if isinstance(model, SpikingForce) else fits


def phase_drift(fit: SpikingForceFit, dt_ms: float, freq_hz: float = 5.0, window_ms: float = 1000.0) -> torch.Tensor:
    """Where the test error comes from: per window of ``window_ms`` of the test, the least-squares fit of the
    output to ``a·sin(2πft) + b·cos(2πft)``: ``[W,2]`` rows of (phase in rad relative to the target sin(2πft),
    positive = ahead; amplitude). A drifting phase at a steady amplitude is a learned oscillator that runs at a
    slightly other frequency or diffuses in phase (the spiking FORCE failures); a falling amplitude is a loop
    that loses the oscillation."""
    start = fit.train_steps[1]
    z = fit.outputs[start:, 0].double()
    t = torch.arange(start + 1, start + len(z) + 1, dtype=torch.float64) * (dt_ms / 1000.0)
    per = round(window_ms / dt_ms)
    if per < 2 or len(z) < per:
        raise ValueError(f"window_ms {window_ms} must hold at least 2 steps and fit in the test ({len(z)} steps)")
    rows = []
    for w in range(len(z) // per):
        part = slice(w * per, (w + 1) * per)
        basis = torch.stack([torch.sin(2 * math.pi * freq_hz * t[part]), torch.cos(2 * math.pi * freq_hz * t[part])], 1)
        a, b = torch.linalg.lstsq(basis, z[part, None]).solution[:, 0]
        rows.append([math.atan2(float(b), float(a)), float(torch.hypot(a, b))])
    return torch.tensor(rows, dtype=torch.float64)


def plot_spiking_force(fit: SpikingForceFit, dt_ms: float, lif_dt_ms: float, n_raster: int = 50,
                       raster_window_ms: float = 1000.0, path=None) -> Figure:
    """Output 0 against its target over the whole run (training window shaded); every output in the last second
    of the test, where a drifting phase shows; a raster of ``n_raster`` units in the last ``raster_window_ms`` of
    training and the first of the test (learning off right of the line)."""
    z, f = to_numpy(fit.outputs), to_numpy(fit.targets)
    t = np.arange(1, len(z) + 1) * dt_ms / 1000.0
    start, stop = fit.train_steps
    fig = Figure(figsize=(11, 8.5))
    ax1, ax3, ax2 = fig.subplots(3, 1)
    ax1.axvspan(start * dt_ms / 1000, stop * dt_ms / 1000, color="0.9", zorder=0, label="RLS on")
    ax1.plot(t, f[:, 0], lw=2.5, alpha=0.35, color="C0", label="target")
    ax1.plot(t, z[:, 0], lw=0.7, color="C0", label="z")
    ax1.set(xlabel="time (s)", ylabel="output", title=f"spiking FORCE: test RMSE {fit.test_rmse:.3f} "
            f"(amplitude {fit.test_amplitude:.2f})")
    ax1.legend(loc="upper right", fontsize=8)
    last = slice(max(stop, len(z) - round(1000.0 / dt_ms)), len(z))
    for k in range(z.shape[1]):
        ax3.plot(t[last], f[last, k], lw=2.5, alpha=0.35, color=f"C{k}", label=f"target {k}")
        ax3.plot(t[last], z[last, k], lw=0.8, color=f"C{k}", label=f"z {k}")
    ax3.set(xlabel="time (s)", ylabel="output", title="the end of the test (learning off)")
    ax3.legend(loc="upper right", fontsize=8, ncol=2)
    ev = to_numpy(fit.run.raster)
    t_switch = stop * dt_ms
    lo, hi = t_switch - raster_window_ms / 2, t_switch + raster_window_ms / 2
    if len(ev):
        t_ev = ev[:, 1] * lif_dt_ms
        keep = (ev[:, 2] < n_raster) & (t_ev >= lo) & (t_ev < hi)
        ax2.plot(t_ev[keep] / 1000, ev[keep, 2], "|", ms=3, color="k")
    ax2.axvline(t_switch / 1000, color="C3", lw=1)
    ax2.set(xlim=(lo / 1000, hi / 1000), xlabel="time (s)", ylabel="unit", title="raster (RLS off right of the line)")
    fig.tight_layout()
    return finish_figure(fig, path)
