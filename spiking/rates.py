"""Firing rates of a spiking model's rollout, in Hz. The time step comes from the model that knows it: pass the
model (anything with a ``dt_ms``: ``LSNN``, ``LIFNetwork``) or, for plain arrays, the step in ms."""

from __future__ import annotations

import math
import numbers

import torch

from ratenets.rollout import Rollout


def step_ms(source) -> float:
    """The step ``dt_ms`` of ``source``: a positive number (ms) or a model with a ``dt_ms`` attribute."""
    value = source if isinstance(source, numbers.Real) else getattr(source, "dt_ms", None)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"need a model with a dt_ms (LSNN, LIFNetwork) or a step in ms > 0, got {source!r}")
    return float(value)


def mean_rate_hz(rollout: Rollout, model) -> float:
    """Mean firing rate over trials, units and time, in Hz, of ``rollout`` (its ``spikes [B,T',N]``: counts or 0/1
    at any resolution) from ``model`` (or its ``dt_ms``): the trial lasts ``rollout.outputs.shape[1]`` steps of
    ``dt_ms``."""
    if rollout.spikes is None:
        raise ValueError("rollout has no spikes")
    spikes = rollout.spikes.detach()
    duration_s = rollout.outputs.shape[1] * step_ms(model) / 1000.0
    per_unit_trial = float(spikes.sum(dtype=torch.float64)) / (spikes.shape[0] * spikes.shape[-1])
    return per_unit_trial / duration_s


def unit_rates_hz(spikes: torch.Tensor, model) -> torch.Tensor:
    """Per-unit rate ``[N]`` in Hz from ``spikes [B,T,N]`` holding one row per step of ``model.dt_ms`` (or of the
    given step in ms); differentiable (the LSNN's rate regulariser uses it)."""
    return spikes.mean(dim=(0, 1)) * (1000.0 / step_ms(model))
