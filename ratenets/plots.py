"""Figures of training (the loss curve, example trials against their targets) and ``save_figure``, the one
way every figure of the project is written.

Figures are built as ``matplotlib.figure.Figure`` objects, never through ``pyplot``: importing or calling
these functions touches no backend and leaves nothing in pyplot's list of open figures. Each plot function
returns its figure and, given a ``path``, also writes it there with ``save_figure``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .arrays import to_numpy
from .atomic import atomic_write

DPI = 110


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` through ``atomic_write`` (a temporary name, then renamed); return the
    path. Every figure of the project goes through here."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))


def finish_figure(fig: Figure, path: str | Path | None) -> Figure:
    """Return ``fig``, written to ``path`` first when one is given (the tail of every plot function)."""
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_training(history: dict, path: str | Path | None = None, title: str = "") -> Figure:
    """Loss per update (log scale) and validation score."""
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    loss = to_numpy(history["loss"], dtype=float)
    steps = to_numpy(history["step"])
    ax1.semilogy(steps, loss, lw=0.6, color="0.6")
    if len(loss) >= 20:
        k = max(len(loss) // 50, 5)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax1.semilogy(steps[k - 1 :], smooth, color="k", lw=1.2)
    ax1.set(xlabel="update", ylabel="loss", title=f"{title} training loss".strip())
    ax2.plot(to_numpy(history["eval_step"]), to_numpy(history["eval_score"]), "o-", ms=3, color="C0")
    ax2.set(xlabel="update", ylabel="validation score", ylim=(0, 1.02), title="task score")
    ax2.grid(alpha=0.3)
    return finish_figure(fig, path)


def plot_trials(inputs, outputs, targets, mask, dt_ms: float, path: str | Path | None = None, title: str = "",
                n_trials: int = 3) -> Figure:
    """Inputs, outputs and targets of a few trials (``dt_ms``: the rate step); one row per trial, one colour
    per channel."""
    inputs, outputs, targets, mask = (to_numpy(a) for a in (inputs, outputs, targets, mask))
    n = min(n_trials, len(outputs))
    t = np.arange(outputs.shape[1]) * dt_ms
    fig = Figure(figsize=(10, 2.1 * n))
    axes = fig.subplots(n, 2, squeeze=False, sharex=True)
    for i in range(n):
        ax_in, ax_out = axes[i]
        for c in range(inputs.shape[2]):
            ax_in.plot(t, inputs[i, :, c] + 2.5 * c, lw=0.8, color=f"C{c}")
        ax_in.set_yticks([])
        ax_in.set_ylabel(f"trial {i + 1}\ninputs")
        for c in range(outputs.shape[2]):
            offset = 2.5 * c if outputs.shape[2] <= 4 else 0
            masked = np.where(mask[i, :, c] > 0, targets[i, :, c], np.nan)
            ax_out.plot(t, targets[i, :, c] + offset, lw=2.5, color=f"C{c}", alpha=0.25)
            ax_out.plot(t, masked + offset, lw=2.5, color=f"C{c}", alpha=0.35)
            ax_out.plot(t, outputs[i, :, c] + offset, lw=1.0, color=f"C{c}")
        ax_out.set_yticks([])
        ax_out.set_ylabel("output (thin)\ntarget (wide)")
    axes[-1, 0].set_xlabel("time (ms)")
    axes[-1, 1].set_xlabel("time (ms)")
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)
