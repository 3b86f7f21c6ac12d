"""Figures of the transfer stage. Each takes plain data, returns a ``matplotlib.figure.Figure`` (no pyplot) and,
given a ``path``, writes it there as a PNG with ``ratenets.plots.save_figure``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ratenets.arrays import to_numpy
from ratenets.plots import finish_figure as _finish


def plot_scale_scan(table, path: str | Path | None = None, best_scale: float | None = None,
                    title: str = "LIF score against scaling factor") -> Figure:
    """``table``: ``[[scale, score], ...]`` as in ``ScaleSearchResult.table``."""
    scan = to_numpy(table, dtype=float)
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot(scan[:, 0], scan[:, 1], "o-", color="C0")
    if best_scale is not None:
        ax.axvline(best_scale, color="C3", ls="--", lw=1, label=f"best λ = {best_scale:g}")
        ax.legend(frameon=False)
    ax.set(xlabel="scaling factor λ", ylabel="task score (LIF)", ylim=(-0.02, 1.02), title=title)
    return _finish(fig, path)


def plot_raster(raster, lif_outputs, path: str | Path | None = None, rate_outputs=None, targets=None,
                trial: int = 0, *, lif_dt_ms: float, rate_dt_ms: float, output: int = 0) -> Figure:
    """Spike raster of one trial (``raster [E,3]``: trial, LIF step of ``lif_dt_ms``, unit) above the LIF output
    drawn over the rate network's output and the target (``[B,T,O]`` each, one value per rate step of
    ``rate_dt_ms``; both steps as in ``TransferTrials``)."""
    ev = to_numpy(raster).reshape(-1, 3)
    ev = ev[ev[:, 0] == trial]
    fig = Figure(figsize=(7, 5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.scatter(ev[:, 1] * lif_dt_ms, ev[:, 2], s=0.6, c="k", marker="|", linewidths=0.5)
    top.set(ylabel="unit", title=f"trial {trial}: spikes")
    n_steps = lif_outputs.shape[1]
    t = (np.arange(n_steps) + 1) * rate_dt_ms
    if targets is not None:
        bottom.plot(t, to_numpy(targets)[trial, :, output], color="0.6", lw=2, label="target")
    if rate_outputs is not None:
        bottom.plot(t, to_numpy(rate_outputs)[trial, :, output], color="C0", lw=1.2, label="rate network")
    bottom.plot(t, to_numpy(lif_outputs)[trial, :, output], color="C3", lw=1.2, label="LIF network")
    bottom.set(xlabel="time (ms)", ylabel="output")
    bottom.legend(frameon=False, fontsize=8, loc="upper left")
    return _finish(fig, path)


def plot_rate_histogram(firing_rates_hz, path: str | Path | None = None, bins: int = 30,
                        title: str = "LIF firing rates") -> Figure:
    """Histogram of per-unit firing rates (any shape, Hz; e.g. ``TransferTrials.firing_rates_hz``)."""
    rates = to_numpy(firing_rates_hz, dtype=float).ravel()
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    ax.hist(rates, bins=bins, color="C0", alpha=0.8)
    ax.axvline(rates.mean(), color="C3", ls="--", lw=1, label=f"mean {rates.mean():.1f} Hz")
    ax.set(xlabel="firing rate (Hz)", ylabel="units × trials", title=title)
    ax.legend(frameon=False)
    return _finish(fig, path)
