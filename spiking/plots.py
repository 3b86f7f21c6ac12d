"""Figures of spiking networks, one function per figure for every spiking model (LIF, LSNN): spike raster (with
the output beneath it when given), output against target, firing-rate histogram.

Every function takes plain arrays (numpy or torch, any device), draws on ``ax`` when given (else on a new
``matplotlib.figure.Figure``; pyplot is never touched, so no backend is forced), writes the figure to ``path`` as
a PNG when given (``ratenets.plots.save_figure``) and returns the Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ratenets.arrays import to_numpy
from ratenets.plots import finish_figure

GROUP_COLOURS = ("k", "tab:red", "tab:blue", "tab:green", "tab:purple")
OUTPUT_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple")


def _axes(ax, n: int, figsize, **subplots):
    """``n`` axes: the caller's (one Axes, or a sequence of ``n``) or a new figure's."""
    if ax is None:
        fig = Figure(figsize=figsize)
        axes = fig.subplots(n, 1, squeeze=False, **subplots)[:, 0]
        return fig, list(axes)
    axes = list(np.ravel(ax)) if isinstance(ax, (Sequence, np.ndarray)) else [ax]
    if len(axes) != n:
        raise ValueError(f"this figure draws on {n} axes, got {len(axes)}; pass ax as a sequence of {n} Axes")
    return axes[0].figure, axes


def _trial(array, trial: int, ndim: int, name: str) -> np.ndarray:
    """One trial of ``array``: ``[T, X]`` as it is, ``[B, T, X]`` indexed by ``trial``."""
    a = to_numpy(array)
    if a.ndim == ndim + 1:
        if not 0 <= trial < a.shape[0]:
            raise ValueError(f"trial {trial} is out of range for {name} holding {a.shape[0]} trials")
        a = a[trial]
    if a.ndim != ndim:
        raise ValueError(f"{name} must be [T, N] or [B, T, N], got shape {tuple(np.shape(array))}")
    return a


def plot_raster(
    spikes,
    path: str | Path | None = None,
    *,
    dt_ms: float,
    trial: int = 0,
    groups: Mapping[str, Sequence[int]] | None = None,
    outputs=None,
    targets=None,
    mask=None,
    output_dt_ms: float | None = None,
    channel: int = 0,
    title: str = "spikes",
    ax=None,
) -> Figure:
    """Spike raster of one trial, and beneath it (when ``outputs`` is given) the output against the target.

    ``spikes``: ``[T, N]`` or ``[B, T, N]`` (then row ``trial``), 0/1 or counts, one row per ``dt_ms``: the
    model's ``dt_ms`` for an LSNN rollout or a LIF rollout's counts, ``params.lif_dt_ms`` for a LIF network's
    ``forward(..., full_resolution=True)`` spikes (``spiking.simulate.spikes_from_events`` turns an event list into
    this). ``groups`` colours units by kind, e.g. ``lsnn.unit_groups()`` = ``{"LIF": range(50), "ALIF":
    range(50, 100)}``. ``outputs``: ``[T', O]`` or ``[B, T', O]``, or a mapping ``{label: array}`` to draw several
    (e.g. the LIF and the rate network's); ``targets`` likewise, with ``mask`` (1 where scored, drawn solid);
    ``output_dt_ms``: their step (default ``dt_ms``); ``channel``: the output drawn. ``ax``: one Axes (raster
    only) or two (raster, output).
    """
    s = _trial(spikes, trial, 2, "spikes")
    n_steps, n_units = s.shape
    has_output = outputs is not None
    fig, axes = _axes(ax, 2 if has_output else 1, (8, 5.5) if has_output else (8, 4), sharex=True,
                      **({"gridspec_kw": {"height_ratios": [2, 1]}} if has_output else {}))
    top = axes[0]
    t_idx, unit = np.nonzero(s)
    t_ms = t_idx * dt_ms
    rest = np.ones(unit.shape, dtype=bool)
    for k, (label, members) in enumerate((groups or {}).items()):
        inside = np.isin(unit, np.asarray(list(members), dtype=np.int64))
        top.scatter(t_ms[inside], unit[inside], s=2, c=GROUP_COLOURS[k % len(GROUP_COLOURS)], marker="|",
                    linewidths=0.6, label=label)
        rest &= ~inside
    if rest.any():
        top.scatter(t_ms[rest], unit[rest], s=2, c="0.3" if groups else "k", marker="|", linewidths=0.6)
    if groups:
        top.legend(loc="upper right", markerscale=4, frameon=False, fontsize=8)
    top.set(ylabel="unit", title=title if trial == 0 else f"{title} (trial {trial})", xlim=(0, n_steps * dt_ms),
            ylim=(-0.5, n_units - 0.5))
    if has_output:
        bottom, step = axes[1], dt_ms if output_dt_ms is None else output_dt_ms
        series = outputs if isinstance(outputs, Mapping) else {"output": outputs}
        if targets is not None:
            z = _trial(targets, trial, 2, "targets")[:, channel]
            if mask is not None:
                z = np.where(_trial(mask, trial, 2, "mask")[:, channel] > 0, z, np.nan)
            bottom.plot((np.arange(len(z)) + 1) * step, z, color="0.6", lw=2.5, label="target")
        for k, (label, values) in enumerate(series.items()):
            if values is None:
                continue
            o = _trial(values, trial, 2, f"outputs[{label!r}]")[:, channel]
            bottom.plot((np.arange(len(o)) + 1) * step, o, color=OUTPUT_COLOURS[k % len(OUTPUT_COLOURS)], lw=1.2,
                        label=label)
        bottom.set(xlabel="time (ms)", ylabel=f"output {channel}")
        bottom.legend(frameon=False, fontsize=8, loc="upper left")
    else:
        top.set_xlabel("time (ms)")
    return finish_figure(fig, path)


def plot_output_vs_target(outputs, targets, path: str | Path | None = None, *, dt_ms: float, mask=None,
                          trial: int = 0, title: str = "output", ax=None) -> Figure:
    """One panel per output channel of one trial: ``outputs`` against ``targets`` (``[T, O]`` or ``[B, T, O]``,
    then row ``trial``; scored steps where ``mask`` is 1 drawn solid). ``ax``: one Axes per channel."""
    o, z = _trial(outputs, trial, 2, "outputs"), _trial(targets, trial, 2, "targets")
    m = _trial(mask, trial, 2, "mask") if mask is not None else np.ones_like(z)
    t = np.arange(o.shape[0]) * dt_ms
    fig, axes = _axes(ax, o.shape[1], (8, 1.6 * o.shape[1] + 0.6), sharex=True)
    for k, a in enumerate(axes):
        a.plot(t, np.where(m[:, k] > 0, z[:, k], np.nan), c="0.6", lw=3, label="target")
        a.plot(t, o[:, k], c="tab:blue", lw=1, label="output")
        a.set_ylabel(f"out {k}")
    axes[0].set_title(title)
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("time (ms)")
    return finish_figure(fig, path)


def plot_rate_histogram(rates_hz, path: str | Path | None = None, *, target_hz: float | None = None,
                        bins: int | None = None, title: str = "firing rates", ax=None) -> Figure:
    """Histogram of firing rates in Hz (any shape: per unit, or per unit and trial as
    ``TransferTrials.firing_rates_hz``), the mean marked, and the regulariser's ``target_hz`` when given."""
    r = to_numpy(rates_hz, dtype=float).ravel()
    fig, (a,) = _axes(ax, 1, (5, 3.5))
    a.hist(r, bins=bins or min(40, max(5, r.size // 4)), color="tab:gray")
    a.axvline(r.mean(), c="tab:blue", label=f"mean {r.mean():.1f} Hz")
    if target_hz is not None:
        a.axvline(target_hz, c="tab:red", ls="--", label=f"target {target_hz:g} Hz")
    a.set(xlabel="firing rate (Hz)", ylabel="count", title=title)
    a.legend(frameon=False)
    return finish_figure(fig, path)
