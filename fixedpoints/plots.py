"""Figures: trajectories with fixed points in 2-D/3-D PCA space, and eigenvalue spectra.

Conventions of Sussillo & Barak 2013 / FixedPointFinder: stable points filled, unstable points open,
each unstable mode drawn as a short line through its point; spectra against the unit circle (discrete
time) or the imaginary axis (continuous time).

Each function draws into the axes it is given or, without one, into a new ``matplotlib.figure.Figure`` (never
through pyplot, so no backend is touched) and returns the axes; ``ax.figure`` is the figure to save.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .result import PCA, FixedPoints


def plot_fixed_points(fps: FixedPoints, trajectories: torch.Tensor | None = None, *, n_components: int = 2,
                      pca: PCA | None = None, ax=None, mode_length: float = 0.25, max_trajectories: int = 20):
    """Trajectories ``[B,T,D]`` (grey) and the points of ``fps`` in the top ``n_components`` (2 or 3) PCs
    of the trajectories (of the points when none are given). States set to NaN are left out of the fit and
    break the lines (to hide input transients, say). Returns the axes."""
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    pca = pca if pca is not None else fps.pca(n_components, trajectories)
    if ax is None:
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot(projection="3d" if n_components == 3 else None)
    if trajectories is not None:
        for trial in trajectories[:max_trajectories]:
            z = pca.transform(trial).detach().cpu().numpy()
            ax.plot(*z.T, color="0.7", lw=0.6, zorder=1)
    if len(fps):
        z = pca.transform(fps.xstar).detach().cpu().numpy()
        stable = fps.stable.cpu().numpy()
        ax.scatter(*z[stable].T, s=40, c="k", label="stable", zorder=3)
        ax.scatter(*z[~stable].T, s=40, facecolors="none", edgecolors="r", label="unstable", zorder=3)
        for k in np.nonzero(~stable)[0]:
            for m in range(int(fps.n_unstable[k])):
                v = fps.eigvecs[k, :, m].real
                d = pca.transform_directions(v / v.norm().clamp_min(1e-12)).detach().cpu().numpy()
                seg = np.stack([z[k] - mode_length * d, z[k] + mode_length * d])
                ax.plot(*seg.T, color="r", lw=1.0, zorder=2)
    labels = [f"PC{i + 1}" for i in range(n_components)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if n_components == 3:
        ax.set_zlabel(labels[2])
    ax.legend(loc="best", fontsize=8)
    return ax


def plot_eigenvalues(fps: FixedPoints, points=None, *, ax=None):
    """Eigenvalues of the chosen points (default all) in the complex plane with the stability boundary.
    Returns the axes."""
    if ax is None:
        ax = Figure(figsize=(4, 4)).subplots()
    chosen = fps if points is None else fps[points]
    vals = chosen.eigvals.detach().cpu().numpy()
    stable = chosen.stable.cpu().numpy().astype(bool)
    for rows, color in ((~stable, "r"), (stable, "k")):  # stable points' spectra drawn on top
        if rows.any():
            ax.scatter(vals[rows].real.ravel(), vals[rows].imag.ravel(), s=8, c=color, alpha=0.6)
    if fps.continuous:
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel("Re λ (1/time unit)")
    else:
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    return ax
