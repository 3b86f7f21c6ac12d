"""Figures: trajectories with fixed points in 2-D/3-D PCA space, and eigenvalue spectra.

Conventions of Sussillo & Barak 2013 / FixedPointFinder: stable points filled, unstable points open,
each unstable mode drawn as a short line through its point; spectra against the unit circle (discrete
time) or the imaginary axis (continuous time).

Trajectories are drawn whole, as curves coloured by the memory they hold: a label per trial ``[B]`` or
per step ``[B,T]`` when given (e.g. the bits a flip-flop holds), else, at each step, the stable point
nearest in state space. The spectrum panel zooms to where the eigenvalues lie (the unit circle is a
reference arc, not the frame), or shows the continuous-time spectrum ``ln λ / dt`` of a map that is an
Euler step of ``dt``; unstable eigenvalues (crosses) are told apart from stable ones (dots).

Every function draws into the axes it is given or, without one, into a new ``matplotlib.figure.Figure``
(never through pyplot, so no backend is touched), saves it to ``path`` when given (a temporary name, then
renamed) and returns the Figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .result import PCA, FixedPoints


def _numpy(x) -> np.ndarray:
    """The CPU copy of a tensor (or array-like) as a numpy array (fixedpoints imports nothing of the project)."""
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _save(fig: Figure, path) -> None:
    if path is None:
        return
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix keeps the image format
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def _step_labels(fps: FixedPoints, trajectories: torch.Tensor, labels) -> np.ndarray | None:
    """Integer labels ``[B,T]`` (-1: none) from ``labels`` or from the nearest stable point."""
    b, t = trajectories.shape[:2]
    if labels is not None:
        raw = _numpy(labels)
        if raw.shape not in ((b,), (b, t)):
            raise ValueError(f"labels must be [B] or [B,T] for trajectories [B,T,D] = {list(trajectories.shape)}, "
                             f"got {list(raw.shape)}")
        raw = np.broadcast_to(raw[:, None] if raw.ndim == 1 else raw, (b, t))
        values, codes = np.unique(raw, return_inverse=True)
        codes = codes.reshape(b, t)
        if np.issubdtype(values.dtype, np.number):  # negative numbers mean "no memory held"
            codes = np.where(raw < 0, -1, codes)
        return codes
    stable = fps.xstar[fps.stable]
    if len(stable) == 0:
        return None
    flat = trajectories.reshape(-1, trajectories.shape[-1]).to(torch.float64).cpu()
    dist = torch.cdist(flat.nan_to_num(), stable.to(torch.float64).cpu())
    return _numpy(dist.argmin(dim=1)).reshape(b, t)


def _colour(code: int, n_codes: int):
    if code < 0:
        return "0.6"
    cmap = colormaps["tab10" if n_codes <= 10 else "turbo"]
    return cmap(code % 10) if n_codes <= 10 else cmap(code / max(n_codes - 1, 1))


def plot_fixed_points(fps: FixedPoints, trajectories: torch.Tensor | None = None, *, labels=None,
                      n_components: int = 2, pca: PCA | None = None, ax=None, path=None, mode_length: float = 0.25,
                      max_trajectories: int = 20) -> Figure:
    """Trajectories ``[B,T,D]`` and the points of ``fps`` in the top ``n_components`` (2 or 3) PCs of the
    trajectories (of the points when none are given; or ``pca``). Each trajectory is a curve coloured, step
    by step, by the memory it holds: ``labels`` ``[B]`` or ``[B,T]`` (any values; negative numbers: none,
    grey), else the nearest stable point. States set to NaN are left out of the fit and break the curves.
    Returns the Figure (saved to ``path`` when given)."""
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    pca = pca if pca is not None else fps.pca(n_components, trajectories)
    if ax is None:
        ax = Figure(figsize=(5.5, 5)).add_subplot(projection="3d" if n_components == 3 else None)
    fig = ax.figure
    handles = []
    if trajectories is not None:
        trajectories = trajectories[:max_trajectories]
        codes = _step_labels(fps, trajectories, None if labels is None else _numpy(labels)[:max_trajectories])
        n_codes = int(codes.max()) + 1 if codes is not None and codes.size else 0
        for i, trial in enumerate(trajectories):
            z = _numpy(pca.transform(trial))
            if codes is None:
                ax.plot(*z.T, color="0.5", lw=0.8, zorder=1)
                continue
            row = codes[i]
            cuts = np.flatnonzero(row[1:] != row[:-1]) + 1
            for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(row)]):
                seg = z[start : min(stop + 1, len(row))]  # overlap one step so the curve is unbroken
                ax.plot(*seg.T, color=_colour(int(row[start]), n_codes), lw=0.9, alpha=0.85, zorder=1)
        if codes is not None:
            what = "label" if labels is not None else "nearest stable point"
            handles.append(Line2D([], [], color="0.3", lw=0.9, label=f"trajectories (colour: {what})"))
    if len(fps):
        z = _numpy(pca.transform(fps.xstar))
        stable = _numpy(fps.stable).astype(bool)
        if stable.any():
            handles.append(ax.scatter(*z[stable].T, s=45, c="k", label="stable", zorder=3))
        if (~stable).any():
            handles.append(ax.scatter(*z[~stable].T, s=45, facecolors="none", edgecolors="r", label="unstable",
                                      zorder=3))
        for k in np.nonzero(~stable)[0]:
            for m in range(int(fps.n_unstable[k])):
                v = fps.eigvecs[k, :, m].real
                d = _numpy(pca.transform_directions(v / v.norm().clamp_min(1e-12)))
                seg = np.stack([z[k] - mode_length * d, z[k] + mode_length * d])
                ax.plot(*seg.T, color="r", lw=1.0, zorder=2)
    names = [f"PC{i + 1}" for i in range(n_components)]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if n_components == 3:
        ax.set_zlabel(names[2])
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=7)
    _save(fig, path)
    return fig


def plot_eigenvalues(fps: FixedPoints, points=None, *, ax=None, path=None, zoom: bool = True,
                     dt: float | None = None, time_unit: str = "time unit") -> Figure:
    """Eigenvalues of the chosen points (default all) in the complex plane with the stability boundary.

    Unstable eigenvalues (|λ| > 1, or Re λ > 0) are red crosses; stable ones are dots, black for stable
    points and orange for the stable directions of saddles. ``zoom``: frame the spectrum, not the whole
    unit circle. ``dt``: the map is an Euler step of ``dt`` of a continuous-time model; draw its
    continuous-time spectrum ``ln λ / dt`` (principal branch) against the imaginary axis; ``time_unit`` names the
    unit of ``dt`` (or of a continuous model's time) on the axes, e.g. ``"ms"``. Returns the Figure
    (saved to ``path`` when given)."""
    if ax is None:
        ax = Figure(figsize=(4.5, 4)).subplots()
    fig = ax.figure
    chosen = fps if points is None else fps[points]
    vals = _numpy(chosen.eigvals).astype(np.complex128)
    continuous = fps.continuous
    if dt is not None and not continuous:
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        with np.errstate(divide="ignore"):
            vals = np.log(vals) / dt
        continuous = True
    point_stable = np.broadcast_to(_numpy(chosen.stable).astype(bool)[:, None], vals.shape)
    unstable = vals.real > 0 if continuous else np.abs(vals) > 1
    finite = np.isfinite(vals)
    groups = ((point_stable & ~unstable, "o", "k", "stable point"),
              (~point_stable & ~unstable, "o", "tab:orange", "saddle, stable direction"),
              (unstable, "x", "r", "unstable direction"))
    for mask, marker, colour, label in groups:
        mask = mask & finite
        if mask.any():
            ax.scatter(vals[mask].real, vals[mask].imag, s=14 if marker == "x" else 9, marker=marker, c=colour,
                       alpha=0.75, linewidths=1.0 if marker == "x" else None, label=label, zorder=3)
    shown = vals[finite]
    if continuous:
        ax.axvline(0.0, color="0.5", lw=0.8, zorder=1)
        unit = f"1/{time_unit}"
        ax.set_xlabel(f"Re λ ({unit})" if dt is None else f"Re ln(λ)/dt ({unit})")
        ax.set_ylabel("Im λ" if dt is None else "Im ln(λ)/dt")
    else:
        t = np.linspace(0, 2 * np.pi, 721)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=0.8, zorder=1)
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
    if zoom and shown.size:
        re, im = shown.real, shown.imag
        lo_re, hi_re = min(re.min(), 0.0) if continuous else re.min(), max(re.max(), 0.0) if continuous else re.max()
        pad_re = 0.08 * max(hi_re - lo_re, 1e-3)
        half_im = max(np.abs(im).max(), 0.5 * (hi_re - lo_re), 1e-3) * 1.1
        ax.set_xlim(lo_re - pad_re, hi_re + pad_re)
        ax.set_ylim(-half_im, half_im)
    elif not continuous:
        ax.set_aspect("equal")
    ax.legend(loc="best", fontsize=7)
    _save(fig, path)
    return fig
