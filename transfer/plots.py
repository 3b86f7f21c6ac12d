"""Figures of the transfer stage: the scaling-factor scan. The spike raster (with the LIF output over the rate
network's) and the firing-rate histogram are ``spiking.plots``' (one function each for every spiking model).

Each function takes plain data, draws on ``ax`` when given (else on a new ``matplotlib.figure.Figure``; no pyplot,
no backend touched), writes the figure to ``path`` as a PNG when given and returns the Figure."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ratenets.arrays import to_numpy
from ratenets.plots import finish_figure


def plot_scale_scan(table, path: str | Path | None = None, best_scale: float | None = None,
                    title: str = "LIF score against scaling factor", *, ax=None) -> Figure:
    """``table``: ``[[scale, score], ...]`` as in ``ScaleSearchResult.table``."""
    scan = to_numpy(table, dtype=float)
    if ax is None:
        fig = Figure(figsize=(5, 3.2))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.plot(scan[:, 0], scan[:, 1], "o-", color="C0")
    if best_scale is not None:
        ax.axvline(best_scale, color="C3", ls="--", lw=1, label=f"best λ = {best_scale:g}")
        ax.legend(frameon=False)
    ax.set(xlabel="scaling factor λ", ylabel="task score (LIF)", ylim=(-0.02, 1.02), title=title)
    return finish_figure(fig, path)
