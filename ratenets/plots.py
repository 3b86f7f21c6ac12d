"""Figures of training: the loss curve and example trials against their targets."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (a temporary name, then renamed), close it, return the path. Every figure
    of the project goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_training(history: dict, path: Path, title: str = "") -> None:
    """Loss per update (log scale) and validation score."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss = np.asarray(history["loss"], dtype=float)
    ax1.semilogy(history["step"], loss, lw=0.6, color="0.6")
    if len(loss) >= 20:
        k = max(len(loss) // 50, 5)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax1.semilogy(np.asarray(history["step"])[k - 1 :], smooth, color="k", lw=1.2)
    ax1.set(xlabel="update", ylabel="loss", title=f"{title} training loss".strip())
    ax2.plot(history["eval_step"], history["eval_score"], "o-", ms=3, color="C0")
    ax2.set(xlabel="update", ylabel="validation score", ylim=(0, 1.02), title="task score")
    ax2.grid(alpha=0.3)
    save_figure(fig, path)


def plot_trials(inputs, outputs, targets, mask, dt_ms: float, path: Path, title: str = "", n_trials: int = 3):
    """Inputs, outputs and targets of a few trials; one row per trial, one colour per channel."""
    inputs, outputs, targets, mask = (np.asarray(a) for a in (inputs, outputs, targets, mask))
    n = min(n_trials, len(outputs))
    t = np.arange(outputs.shape[1]) * dt_ms
    fig, axes = plt.subplots(n, 2, figsize=(10, 2.1 * n), squeeze=False, sharex=True)
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
    save_figure(fig, path)
