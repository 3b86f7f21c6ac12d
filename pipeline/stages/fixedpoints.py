"""Stage ``fixedpoints``: fixed points at zero input of every model of the run (Sussillo & Barak 2013), their
linearisation, a summary per model and a figure each; for the LIF network, a check that its states during held
memories sit at the matching stable points."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fixedpoints import FixedPoints, find, state_trajectories, summarize
from fixedpoints.plots import plot_eigenvalues, plot_fixed_points
from ratenets.seeds import ANALYSIS_NOISE
from tasks import TaskBatch

from ..context import RunContext, RunError
from ..evaluation import N_SAVED_TRIALS
from ..registry import Stage, register


@dataclass(frozen=True)
class FixedPointsSection:
    """Starts are held-out states plus Gaussian noise of ``noise`` times the trajectories' standard deviation,
    so one setting fits sigmoid rates, tanh states and filtered spike trains alike (``fixedpoints.find``'s own
    ``noise`` is absolute, as in Golub & Sussillo's finder). Small on purpose: the flip-flop rate net gives the
    same 27 points from 0.01 to 0.2, while the LSNN surrogate converges only from starts near its own states
    (256 starts: 8 stable points at 0.01, 2 at 0.05, none at 0.2)."""

    n_starts: int = 1024
    noise: float = 0.01
    tol_q: float = 1e-12
    tol_unique: float = 1e-3

    def __post_init__(self):
        if not 1 <= self.n_starts <= 1_000_000:
            raise ValueError(f"n_starts must be in [1, 1000000], got {self.n_starts}")
        for name in ("noise", "tol_q", "tol_unique"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.noise < 0 or not self.tol_q > 0 or self.tol_unique < 0:
            raise ValueError("need noise >= 0, tol_q > 0 and tol_unique >= 0")


def fixed_points_figure(fps, trajectories, inputs, title: str, settle_steps: int = 5, labels=None,
                        dt: float | None = None) -> Figure:
    """Whole trajectories as curves coloured by the memory they hold (``labels [B,T]``; default: the nearest
    stable point), in PCs fitted without the steps that receive a pulse (they would dominate the PCs);
    points; the spectrum (continuous-time ``ln λ / dt`` for a map that is an Euler step of ``dt``)."""
    driven = (inputs != 0).any(dim=-1)
    fitted = trajectories
    if driven.float().mean() < 0.5:  # pulse tasks; where input is on most of the time, every step is fitted
        hidden = driven.clone()
        for lag in range(1, settle_steps + 1):  # and the first steps of the return from each pulse
            hidden[:, lag:] |= driven[:, :-lag]
        fitted = trajectories.clone()
        fitted[hidden if not hidden.all() else driven] = float("nan")  # something is always left to fit
    n_components = 3 if fps.n_state >= 3 else 2
    fig = Figure(figsize=(11, 4.5))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d" if n_components == 3 else None)
    plot_fixed_points(fps, trajectories, labels=labels, n_components=n_components,
                      pca=fps.pca(n_components, fitted), ax=ax1)
    ax1.set_title(f"{title}: {len(fps)} points, by index {fps.by_index()}", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_eigenvalues(fps, ax=ax2, dt=dt, time_unit="ms")  # the task step dt_ms
    ax2.set_title("spectra (x: unstable eigenvalues)" + (" in continuous time" if dt else ""), fontsize=9)
    fig.subplots_adjust(wspace=0.35)
    return fig


def memory_labels(targets: torch.Tensor) -> torch.Tensor:
    """``[B,T]`` the memory a trial holds at each step: the sign pattern of its targets as a binary code
    (-1 where every target is zero: nothing held yet)."""
    bits = (targets > 0).long()
    code = (bits * (2 ** torch.arange(targets.shape[-1], device=targets.device))).sum(dim=-1)
    return torch.where((targets != 0).any(dim=-1), code, torch.full_like(code, -1))


def settled_memory_steps(batch: TaskBatch, hold_steps: int = 20) -> torch.Tensor:
    """``[B,T]`` true where every output's target has been the same non-zero value for ``hold_steps``."""
    z = batch.targets
    same = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
    for lag in range(1, hold_steps + 1):
        same[:, lag:] &= (z[:, lag:] == z[:, :-lag]).all(dim=-1)
    same[:, :hold_steps] = False
    return same & (z != 0).all(dim=-1) & (batch.mask > 0).all(dim=-1)


@torch.no_grad()
def lif_memory_check(ctx: RunContext, rate_net, fps, n_trials: int = 16) -> dict:
    """Do the LIF network's states during held memories sit at the surrogate's stable points?

    The LIF readout is ``(w_out/λ)·r_LIF`` where the rate network's is ``w_out·φ(x)``, so a LIF state maps
    to the rate space as ``r_LIF/λ`` (``r_LIF`` the LIF readout trace). At every settled memory step we find
    the nearest stable point ``φ(x*)`` and ask whether its readout signs equal the held target (the
    corresponding memory), and how far away it is relative to the typical distance between stable points.
    """
    stable = fps[fps.stable]
    if len(stable) < 2:
        return {"n_stable": len(stable)}
    lif = ctx.load_model("lif")
    batch = ctx.task.held_out().sample(n_trials, ctx.generator()).to(ctx.device)
    rollout = lif(batch.inputs, generator=ctx.generator(ANALYSIS_NOISE, ctx.device))
    lif_rates = rollout.states / lif.scale_factor  # the readout trace (w_out/λ)·r  ↔  w_out·φ(x)
    points = rate_net.rates(stable.xstar.to(lif_rates))  # [K,N]
    settled = settled_memory_steps(batch)
    if not settled.any():
        return {"n_stable": len(stable), "n_settled_steps": 0}
    states = lif_rates[settled]  # [M,N]
    dist = torch.cdist(states, points)  # [M,K]
    nearest = dist.argmin(dim=1)
    point_signs = torch.sign(rate_net.readout(points))  # [K,O]
    held = torch.sign(batch.targets[settled])  # [M,O]
    correct = (point_signs[nearest] == held).all(dim=1).float().mean()
    spacing = torch.cdist(points, points)
    spacing = spacing[~torch.eye(len(points), dtype=torch.bool, device=spacing.device)].median()
    return {
        "n_stable": len(stable),
        "n_settled_steps": int(settled.sum()),
        "fraction_at_corresponding_point": float(correct),
        "median_distance_over_point_spacing": float(dist.min(dim=1).values.median() / spacing),
    }


def analysed_form(model):
    """``(the smooth model whose fixed points stand for model, how)``: the model itself, or the smooth surrogate of
    a spiking model (an LSNN's expected-spike map)."""
    if hasattr(model, "smooth_surrogate"):
        return model.smooth_surrogate(), "smooth surrogate (spikes replaced by their expected value)"
    return model, "the model itself"


def analysed_model(ctx: RunContext, name: str):
    """The smooth model whose fixed points stand for ``name``: the model itself, or the smooth surrogate of a
    spiking model (an LSNN's expected-spike map)."""
    return analysed_form(ctx.load_model(name))


def stored_fixed_points(h5_path, name: str, n_inputs: int) -> FixedPoints | None:
    """The fixed points this stage wrote for model ``name`` in ``results.h5`` (None when there are none), rebuilt
    as ``FixedPoints`` at zero input with their eigenvectors recomputed from the stored Jacobians."""
    import h5py

    from fixedpoints.linear import eigen

    if not Path(h5_path).exists():
        return None
    with h5py.File(h5_path, "r") as f:
        g = f.get(f"{name}/fixed_points")
        if g is None or "xstar" not in g:
            return None
        xstar, q, jac = (torch.from_numpy(np.asarray(g[k])) for k in ("xstar", "q", "jacobians"))
        n_unstable = torch.from_numpy(np.asarray(g["n_unstable"])).long()
        stable = torch.from_numpy(np.asarray(g["stable"])).bool()
        continuous, tol_q = bool(g.attrs["continuous"]), float(g.attrs["tol_q"])
    vals, vecs = eigen(jac, continuous)
    k, d = xstar.shape
    return FixedPoints(xstar, xstar.new_zeros(k, n_inputs), q, xstar.clone(), jac, xstar.new_zeros(k, d, n_inputs),
                       vals, vecs, n_unstable, stable, q > tol_q, continuous=continuous, tol_q=tol_q)


LIF_NOTE = ("not analysed on its own terms: a transferred LIF network has no smooth map of its own here, so its "
            "states during held memories are checked against the stable points of the rate network it came from")


def run(ctx: RunContext) -> None:
    sec = ctx.section
    names = list(ctx.summary["models"])
    if not names:
        raise RunError("fixedpoints: no model of this run has results to analyse; run a model stage first "
                       "(e.g. --stages rate,fixedpoints)")
    results = ctx.summary.setdefault("fixed_points", {})
    found = {}
    for name in names:
        if name == "lif":
            continue  # checked against the rate network's points below, not solved as a second result
        model, how = analysed_model(ctx, name)
        batch = ctx.task.held_out().sample(N_SAVED_TRIALS, ctx.generator()).to(ctx.device)
        trajectories = state_trajectories(model, batch.inputs)
        noise = sec.noise * float(trajectories.std())  # relative to the states' spread (see the section)
        fps = find(model, trajectories, None, n_starts=sec.n_starts, noise=noise, tol_q=sec.tol_q,
                   tol_unique=sec.tol_unique, seed=ctx.cfg.seed)
        found[name] = (model, fps)
        entry = {**summarize(fps), "analysed": how, "continuous": fps.continuous,
                 "seconds": round(float(fps.info.get("seconds", 0.0)), 2)}
        results[name] = entry
        ctx.writer.h5_group(f"{name}/fixed_points", {
            "xstar": fps.xstar, "q": fps.q, "eigvals": fps.eigvals, "n_unstable": fps.n_unstable,
            "stable": fps.stable, "jacobians": fps.jacobians,
        }, {"": {"continuous": fps.continuous, "tol_q": fps.tol_q, "analysed": how,
                 "shapes": "xstar [K,D], eigvals [K,D] complex, jacobians [K,D,D]"}})
        euler = hasattr(model, "velocity") and hasattr(model, "step")  # a map that is an Euler step of dt_ms
        euler_dt = getattr(getattr(model, "cfg", None), "dt_ms", None) if euler else None
        ctx.writer.figure(f"fixed_points_{name}",
                          fixed_points_figure(fps, trajectories.cpu(), batch.inputs.cpu(), name,
                                              labels=memory_labels(batch.targets).cpu(), dt=euler_dt))
        ctx.log(f"fixedpoints: {name}: {len(fps)} points, by index {fps.by_index()}, "
                f"max q {entry['max_q']:.1e} ({how})")
    if "lif" in names and "rate" in found:
        rate_net, fps = found["rate"]
        results["lif"] = {"analysed": LIF_NOTE, "same_map_as": "rate",
                          "memory_check": lif_memory_check(ctx, rate_net, fps)}
        ctx.log(f"fixedpoints: lif: {LIF_NOTE}")


def _fmt_q(x) -> str:
    return f"{x:.1e}" if isinstance(x, (int, float)) else "–"


def report(ctx: RunContext) -> list[str]:
    lines = ["## Fixed points", "", "At zero input, started from held-out states.", "",
             "| model | points | by index (0 = stable) | max q | analysed through |",
             "| --- | --- | --- | --- | --- |"]
    for name, fp in ctx.summary["fixed_points"].items():
        if "same_map_as" in fp:
            continue  # not a result of its own (the note below)
        by_index = fp.get("by_index") or {}
        idx = ", ".join(f"{k}: {v}" for k, v in sorted(by_index.items(), key=lambda kv: int(kv[0])))
        max_q = _fmt_q(fp.get("max_q")) if fp.get("n") else "–"
        lines.append(f"| {name} | {fp.get('n', '–')} | {idx or '–'} | {max_q} | {fp.get('analysed', '')} |")
    check = ctx.summary["fixed_points"].get("lif", {}).get("memory_check") or {}
    if "lif" in ctx.summary["fixed_points"]:
        lines += ["", f"LIF network: {LIF_NOTE}."]
    if isinstance(check.get("fraction_at_corresponding_point"), float):
        lines += ["", f"LIF states during held memories ({check.get('n_settled_steps')} settled steps): "
                  f"{check['fraction_at_corresponding_point']:.0%} lie nearest the stable point of the rate map "
                  "that holds the same bits (median distance "
                  f"{check.get('median_distance_over_point_spacing', float('nan')):.2f}× the median spacing "
                  "between points)."]
    return lines


STAGE = register(Stage("fixedpoints", order=40, run=run, section=FixedPointsSection,
                       needs=("rate", "transfer", "lsnn", "baselines", "force"), summary_keys=("fixed_points",),
                       report=report,
                       description="fixed points and linearisation of every model of the run"))
