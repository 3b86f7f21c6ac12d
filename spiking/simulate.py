"""Batched LIF simulation: B trials × S networks (e.g. S scaling factors) as one tensor program.

``simulate`` runs ``spiking.lif`` dynamics for every trial of a batch and every network of a stack at
once, and keeps memory independent of the number of LIF steps: outputs (and, on request, filtered rates
and spike counts) are stored once per step of ``dt_ms``, and full-resolution spikes only for the first
``raster_trials`` trials, as an event list.

The networks of a stack share their input weights, τd and inputs, and all of them see the same trials,
the same initial voltages and the same voltage noise (common random numbers): each network's score is
an unbiased estimate, and differences between scaling factors are not blurred by trial-to-trial noise.

Two kernels compute the same thing (tests check they agree):

* ``dense``: the pure ``lif_step``, spikes as a 0/1 tensor and the recurrent input as a matrix product;
  no host synchronisation, the right choice on a GPU;
* ``sparse`` (CPU only): in-place updates on preallocated buffers, spikes found with NumPy on the shared
  memory and propagated by gathering only the columns of W that spiked (about 0.1 % of units spike in a
  step), refractoriness kept as a release schedule instead of a dense counter. ``auto`` picks it on CPU.

``torch.compile`` of the dense step was tried on the 2-core CPU: about 70 s to compile and slower per
step than the sparse kernel, so it is not used.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .lif import LIFParams, LIFState, initial_state, lif_step, synapse_constants


class LIFResult(NamedTuple):
    """What a batched simulation returns (S networks, B trials, T steps of ``dt_ms``, N units, O outputs).

    Fields: ``outputs [S,B,T,O]`` readout at the end of each step; ``rates [S,B,T,N]`` filtered spike trains in
    Hz (``None`` unless ``record_rates``); ``counts [S,B,T,N]`` uint8 spikes per step (``None`` unless
    ``record_counts``); ``n_spikes [S,B,N]`` int64 spikes per unit over the trial; ``raster [E,4]`` int64 events
    ``(network, trial, LIF step, unit)`` of the first ``raster_trials`` trials (``None`` without); ``final_state``
    a ``LIFState`` with fields ``[S,B,N]``; ``lif_dt_ms`` the LIF step; ``duration_ms`` the recorded trial
    (warm-up not included). ``firing_rates_hz()``: mean rate per unit and trial.
    """

    outputs: torch.Tensor  # [S,B,T,O], readout at the end of each step
    rates: torch.Tensor | None  # [S,B,T,N] filtered spike trains in Hz, end of each step
    counts: torch.Tensor | None  # [S,B,T,N] uint8 spikes per step of ``dt_ms``
    n_spikes: torch.Tensor  # [S,B,N] int64 spikes per unit over the trial
    raster: torch.Tensor | None  # [E,4] int64 events (network, trial, LIF step, unit), trials < raster_trials
    final_state: LIFState  # fields [S,B,N]
    lif_dt_ms: float  # LIF step
    duration_ms: float  # recorded trial (warm-up not included)

    def firing_rates_hz(self) -> torch.Tensor:
        """Mean firing rate of every unit in every trial, ``[S,B,N]`` in Hz."""
        return self.n_spikes.to(self.outputs.dtype) * (1000.0 / self.duration_ms)


def warmup_steps(warmup_ms: float, dt_ms: float) -> int:
    """Steps of ``dt_ms`` (the model's step) in ``warmup_ms``; it must be a whole number of them (``ValueError``).

    Warm-up is zero-input time simulated before each trial and not recorded (0 in the paper). A LIF network
    started with empty synapses and a fresh voltage draw fires a transient in its first ~50 ms that the rate
    network, started at x = 0, never had; a network that is already running when the trial begins does not. On
    Go/NoGo (seeds 3, 4; 100 trials, λ 35/40/45) 200 ms took the LIF score from 0.91/0.93/0.97 to 1.0/1.0/1.0
    and from 0.87/0.93/0.89 to 0.98/0.97/0.89: the failures were NoGo outputs crossing 0.3 early on.
    """
    if isinstance(warmup_ms, bool) or not isinstance(warmup_ms, numbers.Real) or not math.isfinite(warmup_ms):
        raise ValueError(f"warmup_ms must be a finite number >= 0, got {warmup_ms!r}")
    if warmup_ms < 0:
        raise ValueError(f"warmup_ms must be >= 0, got {warmup_ms}")
    n = round(warmup_ms / dt_ms)
    if not math.isclose(n * dt_ms, warmup_ms, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"warmup_ms must be a whole number of steps of dt_ms {dt_ms} ms, got {warmup_ms}")
    return n


def spikes_from_events(events: torch.Tensor, n_trials: int, n_steps: int, n_units: int) -> torch.Tensor:
    """Dense 0/1 spikes ``[n_trials, n_steps, n_units]`` (uint8) from events ``[E,3]`` (trial, LIF step, unit), as
    ``TransferTrials.raster`` holds them; events of later trials are dropped."""
    dense = torch.zeros((n_trials, n_steps, n_units), dtype=torch.uint8, device=events.device)
    ev = events.reshape(-1, 3).to(torch.int64)
    ev = ev[ev[:, 0] < n_trials]
    dense[ev[:, 0], ev[:, 1], ev[:, 2]] = 1
    return dense


def _stack(w: torch.Tensor, dims: int) -> torch.Tensor:
    return w if w.dim() == dims + 1 else w.unsqueeze(0)


@torch.no_grad()
def simulate(
    w_rec: torch.Tensor,
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    tau_d_ms: torch.Tensor,
    inputs: torch.Tensor,
    params: LIFParams | None = None,
    *,
    dt_ms: float,
    warmup_ms: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    record_rates: bool = False,
    record_counts: bool = False,
    raster_trials: int = 0,
    noise_source: Callable[[int], torch.Tensor] | None = None,
    v0: torch.Tensor | None = None,
    kernel: str = "auto",
    on_step: Callable[[int, int], None] | None = None,
) -> LIFResult:
    """Simulate B trials of S LIF networks.

    ``w_rec [S,N,N]`` or ``[N,N]`` (post, pre) and ``w_out [S,O,N]`` or ``[O,N]`` are the LIF weights
    (already divided by the scaling factors); ``w_in [N,I]`` and ``tau_d_ms [N]`` are shared; ``inputs
    [B,T,I]`` hold one value per step of ``dt_ms`` (the task's step; held for ``dt_ms/params.lif_dt_ms`` LIF
    steps). ``warmup_ms`` (a whole number of steps, see ``warmup_steps``) of zero input are simulated
    before each trial and not recorded. Runs on the device of ``w_rec`` in ``dtype`` (default float32; float64
    on request), without autograd (spikes have no gradient; the rate network is the differentiable surrogate).

    ``noise_source(step) -> [.., B, N]`` replaces the Gaussian voltage noise (tests, cross-checks);
    ``v0`` (broadcastable to ``[S,B,N]``) replaces the random initial voltages. ``on_step(t, T)`` is called after
    each recorded step ``t`` = 1..T (progress lines of long searches).

    Returns a ``LIFResult`` (its docstring lists the fields).
    """
    params = params or LIFParams()
    substeps = params.substeps(dt_ms)
    n_warmup = warmup_steps(warmup_ms, dt_ms)
    if kernel not in ("auto", "dense", "sparse"):
        raise ValueError(f"kernel must be auto, dense or sparse, got {kernel!r}")
    device = w_rec.device
    dtype = dtype or torch.float32
    if kernel == "auto":
        kernel = "sparse" if device.type == "cpu" else "dense"
    if kernel == "sparse" and device.type != "cpu":
        raise ValueError("the sparse kernel runs on CPU only; use kernel='dense' on other devices")
    w_rec = _stack(w_rec, 2).to(dtype)
    w_out = _stack(w_out, 2).to(device=device, dtype=dtype)
    n_nets, n_units = w_rec.shape[0], w_rec.shape[-1]
    if w_out.shape[0] not in (1, n_nets):
        raise ValueError(f"w_out stacks {w_out.shape[0]} networks but w_rec stacks {n_nets}")
    w_out = w_out.expand(n_nets, -1, -1)
    batch, n_steps, _ = inputs.shape
    syn = synapse_constants(tau_d_ms.to(device=device, dtype=dtype), params)
    # External current per step of ``dt_ms``, shared by all networks: bias + W_in u, [B,T,N].
    drive = params.bias_mv + inputs.to(device=device, dtype=dtype) @ w_in.to(device=device, dtype=dtype).T
    shape = (n_nets, batch, n_units)
    if v0 is None:  # one draw per trial, shared by all networks (common random numbers)
        u = torch.rand((1, batch, n_units), generator=generator, device=device, dtype=dtype)
        v0 = params.v_init_low_mv + u * (params.v_init_high_mv - params.v_init_low_mv)
    state = initial_state(shape, params, device=device, dtype=dtype, v0=v0)

    def noise(step: int) -> tuple[torch.Tensor | float, float]:
        """``(z, scale)``: this step's voltage noise is ``scale·z`` mV."""
        if noise_source is not None:
            return noise_source(step), 1.0
        if params.noise_std_mv == 0:
            return 0.0, 0.0
        return torch.randn((batch, n_units), generator=generator, device=device, dtype=dtype), params.noise_std_mv

    outputs = torch.empty((n_nets, batch, n_steps, w_out.shape[1]), device=device, dtype=dtype)
    rates = torch.empty((*shape[:2], n_steps, n_units), device=device, dtype=dtype) if record_rates else None
    counts = torch.empty((*shape[:2], n_steps, n_units), device=device, dtype=torch.uint8) if record_counts else None
    raster_trials = min(raster_trials, batch)
    run = _run_sparse if kernel == "sparse" else _run_dense
    if n_warmup:  # zero input, nothing recorded: the trial starts from a running network (warmup_steps)
        warm_drive = drive.new_full((batch, n_warmup, n_units), params.bias_mv)
        warm_outputs = outputs.new_empty((n_nets, batch, n_warmup, w_out.shape[1]))
        _, _, state = run(state, warm_drive, noise, w_rec, w_out, syn, params, substeps, warm_outputs, None, None, 0,
                          None)
    n_spikes, raster, state = run(state, drive, noise, w_rec, w_out, syn, params, substeps,
                                  outputs, rates, counts, raster_trials, on_step)
    return LIFResult(outputs, rates, counts, n_spikes, raster, state, params.lif_dt_ms, n_steps * dt_ms)


def _record(t, r, n_spikes, last_count, w_out, outputs, rates, counts):
    outputs[:, :, t] = torch.matmul(r, w_out.transpose(-1, -2))
    if rates is not None:
        rates[:, :, t] = r
    if counts is not None:
        counts[:, :, t] = (n_spikes - last_count).to(torch.uint8)
        last_count.copy_(n_spikes)


def _run_dense(state, drive, noise, w_rec, w_out, syn, params, substeps, outputs, rates, counts, raster_trials,
               on_step):
    """The pure step in a loop; no host synchronisation inside."""
    n_steps = drive.shape[1]
    n_spikes = torch.zeros_like(state.v)
    last_count = torch.zeros_like(state.v)
    raster = None
    if raster_trials:
        raster = torch.zeros((n_steps * substeps, w_rec.shape[0], raster_trials, w_rec.shape[-1]),
                             dtype=torch.bool, device=drive.device)
    for t in range(n_steps):
        drive_t = drive[:, t]
        for m in range(substeps):
            k = t * substeps + m
            z, scale = noise(k)
            spikes, state = lif_step(state, drive_t, scale * z, w_rec, syn, params)
            n_spikes += spikes
            if raster is not None:
                raster[k] = spikes[:, :raster_trials] > 0
        _record(t, state.r, n_spikes, last_count, w_out, outputs, rates, counts)
        if on_step is not None:
            on_step(t + 1, n_steps)
    events = None
    if raster is not None:
        step, net, trial, unit = raster.nonzero(as_tuple=True)
        events = torch.stack([net, trial, step, unit], dim=1)
    return n_spikes.to(torch.int64), events, state


def _run_sparse(state, drive, noise, w_rec, w_out, syn, params, substeps, outputs, rates, counts, raster_trials,
                on_step):
    """In-place CPU kernel with the equations and order of ``lif_step`` (see ``spiking.lif``).

    Eight passes over the ``[S,B,N]`` state per step; everything about the few units that spiked is done
    with NumPy on views of the same memory (small-array indexing costs ~1 µs there, ~20 µs in torch).
    The rise variables are kept pre-multiplied by dt (``g = h·dt``, ``p = q·dt``) so that each filter is
    one ``addcmul``; the noise enters as ``ξ/a`` inside the gated term, as in ``lif_step``.
    """
    n_nets, batch, n_units = state.v.shape
    n_steps = drive.shape[1]
    refractory = params.refractory_steps
    a = params.lif_dt_ms / params.tau_m_ms
    dt, threshold, reset = params.lif_dt_ms, params.v_threshold_mv, params.v_reset_mv
    v, i_syn, r = (x.contiguous().clone() for x in (state.v, state.i_syn, state.r))
    g, p = state.h_syn.contiguous() * dt, state.h_r.contiguous() * dt
    gate = torch.full_like(v, a).masked_fill_(state.refractory_left > 0, 0.0)
    n_spikes = torch.zeros(v.shape, dtype=torch.int64)
    v_np, gate_np, p_np, n_spikes_np = (x.view(-1).cpu().numpy() for x in (v, gate, p, n_spikes))  # shared memory
    g_2d = g.view(-1, n_units)
    # Release schedule: units whose refractoriness ends after step k are freed at the end of step k.
    release: dict[int, np.ndarray] = {}
    refr_np = state.refractory_left.reshape(-1).cpu().numpy()
    for left in np.unique(refr_np[refr_np > 0]).tolist():
        release[int(left) - 1] = np.flatnonzero(refr_np == left)
    # Recurrent jumps per presynaptic unit: row s·N + j holds dt·κ ⊙ W_s[:, j].
    w_jump = (w_rec.transpose(-1, -2) * (syn.jump * dt)).reshape(-1, n_units).contiguous()
    jump_dt_np = (syn.jump * dt).cpu().numpy()
    above = np.empty(v_np.shape, dtype=bool)
    current, drive_noisy = torch.empty_like(v), torch.empty_like(drive[:, 0])
    last_count = torch.zeros_like(n_spikes)
    events = []
    per_net = batch * n_units
    for t in range(n_steps):
        drive_t = drive[:, t]
        for m in range(substeps):
            k = t * substeps + m
            z, scale = noise(k)
            if not torch.is_tensor(z):
                torch.add(i_syn, drive_t, out=current)
            elif z.shape == drive_t.shape:  # the usual case: one [B,N] draw shared by the S networks
                torch.add(i_syn, torch.add(drive_t, z, alpha=scale / a, out=drive_noisy), out=current)
            else:
                torch.add(i_syn, drive_t + z * (scale / a), out=current)
            v.lerp_(current, gate)
            np.greater_equal(v_np, threshold, out=above)
            idx = np.flatnonzero(above)
            torch.addcmul(g, i_syn, syn.decay_d, out=i_syn)
            g.mul_(syn.decay_r)
            torch.addcmul(p, r, syn.decay_d, out=r)
            p.mul_(syn.decay_r)
            if idx.size and refractory:
                idx = idx[gate_np[idx] > 0]  # a refractory unit cannot spike
            if idx.size:
                v_np[idx] = reset
                rows = idx // n_units
                cols = idx - rows * n_units
                pre = torch.from_numpy((idx // per_net) * n_units + cols)
                g_2d.index_add_(0, torch.from_numpy(rows), w_jump.index_select(0, pre))
                p_np[idx] += jump_dt_np[cols]  # idx holds each unit once: no scatter needed
                n_spikes_np[idx] += 1
                if refractory:
                    gate_np[idx] = 0.0
                    release[k + refractory] = idx
                if raster_trials:
                    trial = rows % batch
                    keep = trial < raster_trials
                    if keep.any():
                        ev = np.stack([rows[keep] // batch, trial[keep], np.full(keep.sum(), k), cols[keep]], axis=1)
                        events.append(ev)
            freed = release.pop(k, None)
            if freed is not None:
                gate_np[freed] = a
        _record(t, r, n_spikes, last_count, w_out, outputs, rates, counts)
        if on_step is not None:
            on_step(t + 1, n_steps)
    last = n_steps * substeps - 1
    refr_left = torch.zeros_like(v)
    refr_np = refr_left.view(-1).cpu().numpy()  # shared memory (a CPU tensor: .cpu() is itself)
    for step, idx in release.items():
        refr_np[idx] = float(step - last)
    raster = None
    if raster_trials:
        raster = torch.from_numpy(np.concatenate(events)) if events else torch.zeros((0, 4), dtype=torch.int64)
        raster = raster[torch.argsort(raster[:, 2], stable=True)].to(torch.int64)
    final = LIFState(v, i_syn, g / dt, r, p / dt, refr_left)
    return n_spikes, raster, final
