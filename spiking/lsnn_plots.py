"""Figures of an LSNN run: spike raster, output against target, firing-rate histogram. Each function takes
plain arrays (numpy or torch), returns a ``matplotlib.figure.Figure`` (no pyplot) and, given a ``path``, writes
it there as a PNG with ``ratenets.plots.save_figure``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ratenets.plots import save_figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_raster(spikes, path: str | Path | None = None, *, dt_ms: float, n_lif: int | None = None,
                title: str = "LSNN spikes") -> Figure:
    """Raster of one trial, ``spikes [T, N]`` (one row per LSNN step of ``dt_ms``); ALIF units (index >=
    ``n_lif``) drawn in a second colour."""
    s = _np(spikes)
    t_idx, unit = np.nonzero(s)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    alif = unit >= n_lif if n_lif is not None else np.zeros_like(unit, dtype=bool)
    ax.scatter(t_idx[~alif] * dt_ms, unit[~alif], s=2, c="k", marker="|", label="LIF")
    if alif.any():
        ax.scatter(t_idx[alif] * dt_ms, unit[alif], s=2, c="tab:red", marker="|", label="ALIF")
        ax.legend(loc="upper right", markerscale=4)
    ax.set(xlabel="time (ms)", ylabel="unit", title=title, xlim=(0, s.shape[0] * dt_ms), ylim=(-0.5, s.shape[1] - 0.5))
    return _finish(fig, path)


def plot_output_vs_target(outputs, targets, path: str | Path | None = None, *, dt_ms: float, mask=None,
                          title: str = "LSNN output") -> Figure:
    """One panel per output channel of one trial: ``outputs [T, O]`` against ``targets [T, O]`` (scored steps
    where ``mask`` is 1 drawn solid)."""
    o, z = _np(outputs), _np(targets)
    m = _np(mask) if mask is not None else np.ones_like(z)
    t = np.arange(o.shape[0]) * dt_ms
    fig = Figure(figsize=(8, 1.6 * o.shape[1] + 0.6))
    axes = fig.subplots(o.shape[1], 1, sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        ax.plot(t, np.where(m[:, k] > 0, z[:, k], np.nan), c="0.6", lw=3, label="target")
        ax.plot(t, o[:, k], c="tab:blue", lw=1, label="output")
        ax.set_ylabel(f"out {k}")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("time (ms)")
    return _finish(fig, path)


def plot_rate_histogram(rates_hz, path: str | Path | None = None, target_hz: float | None = None,
                        title: str = "LSNN firing rates") -> Figure:
    """Histogram of per-unit firing rates ``[N]`` in Hz, with the regulariser's target marked."""
    r = _np(rates_hz).ravel()
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.hist(r, bins=min(40, max(5, r.size // 4)), color="tab:gray")
    ax.axvline(r.mean(), c="tab:blue", label=f"mean {r.mean():.1f} Hz")
    if target_hz is not None:
        ax.axvline(target_hz, c="tab:red", ls="--", label=f"target {target_hz:g} Hz")
    ax.set(xlabel="rate (Hz)", ylabel="units", title=title)
    ax.legend()
    return _finish(fig, path)
