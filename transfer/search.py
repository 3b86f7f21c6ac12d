"""Scaling-factor search of Kim et al. 2019, vectorised: every factor λ of the grid (20, 25, …, 75 by
default) and every trial (100 by default) in one batched LIF simulation; each factor is scored with the
task's own criterion and the best one is kept (ties: the smallest λ, as MATLAB's ``max`` does).
All factors see the same trials, initial voltages and noise (common random numbers). The step ``dt_ms`` is the rate
network's ``cfg.dt_ms`` (the task's ``dt_ms`` must agree).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ratenets.training import ProgressLog
from spiking.lif import LIFParams
from spiking.lif_network import LIFNetwork
from spiking.simulate import simulate, spikes_from_events, warmup_steps

from .mapping import check_rate_net, check_scale_factor, dt_ms_of, lif_weights

DEFAULT_SCALES = tuple(float(s) for s in range(20, 80, 5))


@dataclass
class ScaleSearchResult:
    """What ``search_scale`` returns. Fields: ``table`` ``[[scale, score], ...]`` in grid order; ``best_scale`` and
    ``best_score`` (ties: the smallest factor); ``n_trials`` trials per factor; ``firing_rates_hz`` the mean LIF
    rate per factor (Hz); ``seconds`` the search's wall time; ``outputs [S,B,T,O]`` and ``batch`` (a
    ``TaskBatch``): the LIF outputs and trials behind the scores (to re-score them)."""

    table: list[list[float]]
    best_scale: float
    best_score: float
    n_trials: int
    firing_rates_hz: list[float] = field(default_factory=list)
    seconds: float = 0.0
    outputs: torch.Tensor | None = field(default=None, repr=False)
    batch: object = field(default=None, repr=False)


def _device(rate_net, device) -> torch.device:
    return torch.device(device) if device is not None else rate_net.w_out.device


def _task_dt_ms(rate_net, task) -> float:
    """The step: the rate network's ``cfg.dt_ms``, which the task's ``dt_ms`` must equal."""
    dt = dt_ms_of(rate_net)
    if not math.isclose(float(task.dt_ms), dt, rel_tol=1e-9):
        raise ValueError(f"the task's dt_ms {task.dt_ms} differs from the rate network's dt_ms {dt}")
    return dt


def search_scale(
    rate_net,
    task,
    scales=DEFAULT_SCALES,
    n_trials: int = 100,
    lif_params: LIFParams | None = None,
    *,
    warmup_ms: float = 0.0,
    seed: int = 0,
    device=None,
    dtype: torch.dtype | None = None,
    keep_readout_bias: bool = False,
    score_fn: Callable | None = None,
    progress: bool = False,
) -> ScaleSearchResult:
    """Score every scaling factor in ``scales`` on ``n_trials`` LIF trials of ``task``; one simulation.

    Trials come from ``task.sample(n_trials, Generator(seed))``; the LIF noise from a generator seeded
    ``seed + 1`` on ``device`` (default: the rate network's). ``score_fn(outputs [B,T,O], batch) -> float``
    replaces ``task.score`` (e.g. a published variant of the criterion). ``warmup_ms`` of zero input (a whole
    number of steps) run before each trial, unrecorded. ``progress``: a bar on a terminal, else (a log file) one
    line on stdout every few percent of the simulated trial. Errors as ``rate_to_lif``; every factor must be a finite
    number > 0. Returns a ``ScaleSearchResult`` (its docstring lists the fields).
    """
    scales = [check_scale_factor(s) for s in scales]
    lif_params = lif_params or LIFParams()
    if not scales:
        raise ValueError("scales must hold at least one scaling factor")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    check_rate_net(rate_net)
    dt = _task_dt_ms(rate_net, task)
    warmup_steps(warmup_ms, dt)
    device = _device(rate_net, device)
    t0 = time.perf_counter()
    batch = task.sample(n_trials, torch.Generator().manual_seed(seed)).to(device)
    w_rec, w_in, w_out, tau_d_ms, b_out = lif_weights(rate_net, torch.tensor(scales), keep_readout_bias)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    bar = ProgressLog(batch.inputs.shape[1], f"scale search ({len(scales)} factors x {n_trials} trials)",
                      enabled=progress, unit="steps")
    try:
        res = simulate(w_rec.to(device), w_in, w_out, tau_d_ms, batch.inputs, lif_params, dt_ms=dt,
                       warmup_ms=warmup_ms, generator=generator, dtype=dtype,
                       on_step=(lambda t, n: bar.update_to(t)) if progress else None)
    finally:
        bar.close()
    outputs = res.outputs if b_out is None else res.outputs + b_out.to(res.outputs)
    score_fn = score_fn or task.score
    # Rounded: scores are fractions of trials, and float32 means would put 95/100 at 0.9499999881.
    scores = [round(float(score_fn(outputs[s], batch)), 6) for s in range(len(scales))]
    rates = res.firing_rates_hz().mean(dim=(1, 2)).tolist()
    best = max(range(len(scales)), key=lambda s: (scores[s], -s))
    return ScaleSearchResult([[s, sc] for s, sc in zip(scales, scores)], scales[best], scores[best], n_trials,
                             rates, time.perf_counter() - t0, outputs, batch)


class TransferTrials(NamedTuple):
    """A few trials of a transferred network, for figures and ``results.h5``. Fields:

    * ``batch``: the ``TaskBatch`` (inputs, targets, mask ``[B,T,·]``, meta);
    * ``rate_outputs [B,T,O]``: the source rate network's outputs (noise off; ``None`` without a rate network);
    * ``lif_outputs [B,T,O]``: the LIF network's outputs;
    * ``raster [E,3]`` int64: spike events ``(trial, LIF step, unit)`` of the first ``raster_trials`` trials
      (``spikes(trial)`` makes one trial dense);
    * ``firing_rates_hz [B,N]``: mean rate of each unit in each trial;
    * ``lif_dt_ms``: the LIF step of the raster; ``dt_ms``: the step of the outputs and states (the task's);
    * ``lif_states [B,T,N]``: the LIF network's state, its filtered spike trains in Hz (as ``forward``'s).
    """

    batch: object
    rate_outputs: torch.Tensor | None
    lif_outputs: torch.Tensor
    raster: torch.Tensor
    firing_rates_hz: torch.Tensor
    lif_dt_ms: float
    dt_ms: float
    lif_states: torch.Tensor

    def spikes(self, trial: int = 0) -> torch.Tensor:
        """Dense 0/1 spikes ``[T·substeps, N]`` of one raster trial, one row per LIF step (for ``plot_raster``)."""
        n_steps = round(self.lif_outputs.shape[1] * self.dt_ms / self.lif_dt_ms)
        return spikes_from_events(self.raster, trial + 1, n_steps, self.firing_rates_hz.shape[-1])[trial]


def simulate_trials(
    lif_net: LIFNetwork,
    task,
    n_trials: int = 4,
    *,
    seed: int = 0,
    raster_trials: int | None = None,
    dtype: torch.dtype | None = None,
    warmup_ms: float | None = None,
) -> TransferTrials:
    """Run ``n_trials`` trials of ``task`` through the LIF network (full-resolution spikes for the first
    ``raster_trials``, default all) and through its source rate network (noise off), on the LIF net's device.
    ``warmup_ms`` defaults to the network's own (``lif_net.warmup_ms``, as its ``forward`` uses). Returns a
    ``TransferTrials`` (its docstring lists the fields)."""
    if not math.isclose(float(task.dt_ms), lif_net.dt_ms, rel_tol=1e-9):
        raise ValueError(f"the task's dt_ms {task.dt_ms} differs from the LIF network's dt_ms "
                         f"{lif_net.dt_ms}")
    warmup_ms = lif_net.warmup_ms if warmup_ms is None else warmup_ms
    device = lif_net.w_rec.device
    batch = task.sample(n_trials, torch.Generator().manual_seed(seed)).to(device)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    res = simulate(lif_net.w_rec, lif_net.w_in, lif_net.w_out, lif_net.tau_d_ms, batch.inputs, lif_net.params,
                   dt_ms=lif_net.dt_ms, warmup_ms=warmup_ms, generator=generator, dtype=dtype,
                   raster_trials=n_trials if raster_trials is None else raster_trials, record_rates=True)
    rate_outputs = None
    rate_net = lif_net.rate_net
    if rate_net is not None:
        was_training = rate_net.training
        try:
            with torch.no_grad():
                rate_outputs = rate_net.eval()(batch.inputs.to(rate_net.w_out.device), noise=False).outputs.to(device)
        finally:
            rate_net.train(was_training)
    return TransferTrials(batch, rate_outputs, res.outputs[0] + lif_net.b_out.to(res.outputs), res.raster[:, 1:],
                          res.firing_rates_hz()[0], res.lif_dt_ms, lif_net.dt_ms, res.rates[0])
