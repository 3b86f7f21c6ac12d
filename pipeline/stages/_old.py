"""The pipeline's stages. Each trains or analyses one model and records its results in the run
directory (``summary.json``, ``results.h5``, ``figures/``, ``checkpoints/``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from fixedpoints import find, state_trajectories, summarize
from fixedpoints.plots import plot_eigenvalues, plot_fixed_points
from ratenets import RateRNN, save_checkpoint, train
from ratenets.plots import plot_training, plot_trials, save_figure
from spiking import LSNN, mean_rate_hz, plot_output_vs_target, unit_rates_hz
from spiking import plot_raster as plot_lsnn_raster
from spiking import plot_rate_histogram as plot_lsnn_rates
from tasks import TaskBatch

from .mapping import rate_to_lif
from .pipeline import RunContext, model_done, stage
from .plots import plot_raster, plot_scale_scan
from .plots import plot_rate_histogram as plot_lif_rates
from .results import write_h5_group
from .search import search_scale, simulate_trials

N_SAVED_TRIALS = 32  # trials whose full trajectories go into results.h5


@torch.no_grad()
def held_out_score(model, ctx: RunContext, n_trials: int, batch_size: int = 250) -> tuple[float, TaskBatch, object]:
    """Score ``model`` (eval mode) on ``n_trials`` held-out trials; also return the first batch and rollout."""
    task = ctx.task.held_out()
    gen = ctx.eval_generator()
    model.eval()
    total, first = 0.0, None
    done = 0
    while done < n_trials:
        b = min(batch_size, n_trials - done)
        batch = task.sample(b, gen).to(ctx.device)
        rollout = model(batch.inputs)
        total += task.score(rollout.outputs, batch) * b
        if first is None:
            first = (batch, rollout)
        done += b
    return total / n_trials, first[0], first[1]


def save_model_results(ctx: RunContext, name: str, batch: TaskBatch, rollout, extra: dict | None = None) -> None:
    """Trajectories, outputs, inputs and targets of the first held-out trials, with units."""
    k = N_SAVED_TRIALS
    arrays = {
        "trajectories": rollout.states[:k],
        "outputs": rollout.outputs[:k],
        "inputs": batch.inputs[:k],
        "targets": batch.targets[:k],
        "mask": batch.mask[:k],
        **(extra or {}),
    }
    attrs = {
        "": {"dt_ms": ctx.task.dt_ms, "task": ctx.task.name},
        "trajectories": {"shape": "trial, step, state", "units": "model state (see the model's docs)"},
        "outputs": {"shape": "trial, step, output"},
    }
    write_h5_group(ctx.h5, name, arrays, attrs)


@stage("rate", done=model_done("rate"), checkpoints=("rate",), sections=("rate",))
def rate_stage(ctx: RunContext) -> None:
    """Train the Kim-style rate network, score it on held-out trials, save trajectories and figures."""
    sec = ctx.cfg.rate
    task = ctx.task
    model_cfg = ctx.cfg.rate_model_config()
    model = RateRNN(model_cfg, seed=ctx.cfg.seed)
    result = train(model, task, sec.train, ctx.checkpoint("rate"), ctx.device, seed=ctx.cfg.seed, progress=True)
    if result.resumed_from:
        ctx.log(f"rate: resumed from the checkpoint at step {result.resumed_from}")
    score, batch, rollout = held_out_score(model, ctx, sec.eval_trials)
    taus = model.taus_ms().detach().cpu()
    ctx.summary["models"]["rate"] = {
        "score": score,
        "n_trials": sec.eval_trials,
        "train_steps": result.step,
        "final_loss": result.history["loss"][-1] if result.history["loss"] else None,
        "n_units": model_cfg.n_units,
        "tau_ms": {"min": float(taus.min()), "median": float(taus.median()), "max": float(taus.max())},
    }
    save_model_results(ctx, "rate", batch, rollout, {"rates": rollout.rates[:N_SAVED_TRIALS]})
    plot_training(result.history, ctx.figure("rate_training"), "rate RNN")
    plot_trials(
        batch.inputs.cpu(), rollout.outputs.cpu(), batch.targets.cpu(), batch.mask.cpu(), task.dt_ms,
        ctx.figure("rate_trials"), f"rate RNN on {task.name}: held-out score {score:.3f}",
    )
    ctx.log(f"rate: {result.step} updates, score {score:.4f} on {sec.eval_trials} held-out trials")


@stage("transfer", done=lambda ctx: "lif" in ctx.summary["models"] and "transfer" in ctx.summary,
       sections=("transfer",))
def transfer_stage(ctx: RunContext) -> None:
    """Kim et al.'s transfer: search the scaling factor on the grid, then score the chosen factor on
    fresh held-out trials; save a raster, the scan and the firing-rate histogram."""
    sec = ctx.cfg.transfer
    rate_net = ctx.load_model("rate")
    search = search_scale(rate_net, ctx.task, sec.scales, sec.n_trials, sec.lif, seed=ctx.cfg.seed,
                          device=ctx.device, keep_readout_bias=sec.keep_readout_bias)
    held = search_scale(rate_net, ctx.task.held_out(), [search.best_scale], sec.eval_trials, sec.lif,
                        seed=ctx.cfg.seed + 20_000, device=ctx.device, keep_readout_bias=sec.keep_readout_bias)
    lif = rate_to_lif(rate_net, search.best_scale, sec.lif, keep_readout_bias=sec.keep_readout_bias)
    save_checkpoint(ctx.checkpoint("lif"), lif, done=True, scale_factor=search.best_scale,
                    note="rebuild with transfer.rate_to_lif(ratenets.load_model('rate.pt'), scale_factor)")
    trials = simulate_trials(lif, ctx.task.held_out(), N_SAVED_TRIALS, seed=ctx.cfg.seed + 20_000,
                             raster_trials=sec.raster_trials)
    ctx.summary["models"]["lif"] = {
        "score": held.best_score,
        "n_trials": sec.eval_trials,
        "scale_factor": search.best_scale,
        "n_units": lif.n_units,
        "mean_rate_hz": float(trials.firing_rates_hz.mean()),
        "search_seconds": round(search.seconds, 2),
    }
    ctx.summary["transfer"] = {"scale": search.best_scale, "scan": search.table,
                               "scan_rates_hz": search.firing_rates_hz, "n_trials": search.n_trials}
    b = trials.batch
    write_h5_group(ctx.h5, "lif", {
        "outputs": trials.lif_outputs, "rate_outputs": trials.rate_outputs, "inputs": b.inputs, "targets": b.targets,
        "spikes": trials.raster, "firing_rates_hz": trials.firing_rates_hz,
    }, {
        "": {"dt_ms": ctx.task.dt_ms, "lif_dt_ms": trials.lif_dt_ms, "scale_factor": search.best_scale},
        "spikes": {"shape": "event, (trial, LIF step, unit)", "units": "LIF steps of lif_dt_ms"},
        "firing_rates_hz": {"shape": "trial, unit", "units": "Hz"},
    })
    plot_scale_scan(search.table, ctx.figure("transfer_scan"), search.best_scale)
    plot_raster(trials.raster, trials.lif_outputs.cpu(), ctx.figure("lif_raster"), trials.rate_outputs.cpu(),
                b.targets.cpu(), lif_dt_ms=trials.lif_dt_ms, rate_dt_ms=trials.rate_dt_ms)
    plot_lif_rates(trials.firing_rates_hz, ctx.figure("lif_rates"))
    ctx.log(f"transfer: best scaling factor {search.best_scale:g} (search score {search.best_score:.3f}); "
            f"LIF score {held.best_score:.4f} on {sec.eval_trials} held-out trials")


@stage("lsnn", done=model_done("lsnn"), checkpoints=("lsnn",), sections=("lsnn",))
def lsnn_stage(ctx: RunContext) -> None:
    """Train an LSNN (LIF + ALIF units, Bellec et al. 2018) on the task with surrogate gradients."""
    sec = ctx.cfg.lsnn
    model = LSNN(ctx.cfg.lsnn_model_config(), seed=ctx.cfg.seed)
    result = train(model, ctx.task, sec.train, ctx.checkpoint("lsnn"), ctx.device, seed=ctx.cfg.seed, progress=True)
    if result.resumed_from:
        ctx.log(f"lsnn: resumed from the checkpoint at step {result.resumed_from}")
    score, batch, rollout = held_out_score(model, ctx, sec.eval_trials)
    dt = ctx.task.dt_ms
    ctx.summary["models"]["lsnn"] = {
        "score": score,
        "n_trials": sec.eval_trials,
        "train_steps": result.step,
        "n_units": model.cfg.n_units,
        "mean_rate_hz": mean_rate_hz(rollout, dt),
    }
    save_model_results(ctx, "lsnn", batch, rollout, {"spikes": rollout.spikes[:N_SAVED_TRIALS].to(torch.uint8)})
    plot_training(result.history, ctx.figure("lsnn_training"), "LSNN")
    plot_lsnn_raster(rollout.spikes[0].cpu(), ctx.figure("lsnn_raster"), dt, n_lif=model.cfg.n_lif)
    plot_output_vs_target(rollout.outputs[0].cpu(), batch.targets[0].cpu(), ctx.figure("lsnn_output"), dt,
                          mask=batch.mask[0].cpu())
    plot_lsnn_rates(unit_rates_hz(rollout.spikes.cpu(), dt), ctx.figure("lsnn_rates"),
                    target_hz=model.cfg.target_rate_hz)
    ctx.log(f"lsnn: {result.step} updates, score {score:.4f} on {sec.eval_trials} held-out trials, "
            f"mean rate {ctx.summary['models']['lsnn']['mean_rate_hz']:.1f} Hz")


def _fixed_points_figure(fps, trajectories, inputs, path, title: str, settle_steps: int = 5) -> None:
    """Trajectories (steps that receive a pulse left out: they would dominate the PCs), points, spectra."""
    driven = (inputs != 0).any(dim=-1)
    if driven.float().mean() < 0.5:  # pulse tasks; where input is on most of the time, every step is shown
        hidden = driven.clone()
        for lag in range(1, settle_steps + 1):  # and the first steps of the return from each pulse
            hidden[:, lag:] |= driven[:, :-lag]
        trajectories = trajectories.clone()
        trajectories[hidden if not hidden.all() else driven] = float("nan")  # something is always left to show
    fig = plt.figure(figsize=(11, 4.5))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d" if fps.n_state >= 3 else None)
    plot_fixed_points(fps, trajectories, n_components=3 if fps.n_state >= 3 else 2, ax=ax1)
    ax1.set_title(f"{title}: {len(fps)} points, by index {fps.by_index()}", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_eigenvalues(fps, ax=ax2)
    ax2.set_title("eigenvalues (black: stable points, red: unstable)", fontsize=9)
    fig.subplots_adjust(wspace=0.35)
    save_figure(fig, path)


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
    lif = rate_to_lif(rate_net, ctx.summary["transfer"]["scale"], ctx.cfg.transfer.lif,
                      keep_readout_bias=ctx.cfg.transfer.keep_readout_bias)
    batch = ctx.task.held_out().sample(n_trials, ctx.eval_generator()).to(ctx.device)
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.cfg.seed + 30_000)
    rollout = lif(batch.inputs, generator=gen)
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


def _analysed_model(ctx: RunContext, name: str):
    """The smooth model whose fixed points stand for ``name``: LIF networks through their rate network."""
    if name == "lif":
        return ctx.load_model("rate"), "rate network the LIF weights came from (Kim et al. transfer)"
    model = ctx.load_model(name)
    if hasattr(model, "smooth_surrogate"):
        return model.smooth_surrogate(), "smooth surrogate (spikes replaced by their expected value)"
    return model, "the model itself"


def _fixed_points_done(ctx: RunContext) -> bool:
    return set(ctx.summary.get("fixed_points", {})) >= set(ctx.summary["models"])


@stage("fixedpoints", done=_fixed_points_done, sections=("fixedpoints",))
def fixedpoints_stage(ctx: RunContext) -> None:
    """Fixed points at zero input of every model of the run, their linearisation, summary and figures."""
    sec = ctx.cfg.fixedpoints
    results = ctx.summary.setdefault("fixed_points", {})
    found = {}
    for name in ctx.summary["models"]:
        model, how = _analysed_model(ctx, name)
        batch = ctx.task.held_out().sample(N_SAVED_TRIALS, ctx.eval_generator()).to(ctx.device)
        if name == "lif" and "rate" in found:
            fps, trajectories = found["rate"]  # the same smooth map: not solved twice
        else:
            trajectories = state_trajectories(model, batch.inputs)
            noise = sec.noise * float(trajectories.std())  # relative to the states' spread (config.py)
            fps = find(model, trajectories, None, n_starts=sec.n_starts, noise=noise, tol_q=sec.tol_q,
                       tol_unique=sec.tol_unique, seed=ctx.cfg.seed)
        found[name] = (fps, trajectories)
        entry = {**summarize(fps), "analysed": how, "continuous": fps.continuous,
                 "seconds": round(float(fps.info.get("seconds", 0.0)), 2)}
        if name == "lif" and "transfer" in ctx.summary:
            entry["memory_check"] = lif_memory_check(ctx, model, fps)
        results[name] = entry
        write_h5_group(ctx.h5, f"{name}/fixed_points", {
            "xstar": fps.xstar, "q": fps.q, "eigvals": fps.eigvals, "n_unstable": fps.n_unstable,
            "stable": fps.stable, "jacobians": fps.jacobians,
        }, {"": {"continuous": fps.continuous, "tol_q": fps.tol_q, "analysed": how,
                 "shapes": "xstar [K,D], eigvals [K,D] complex, jacobians [K,D,D]"}})
        _fixed_points_figure(fps, trajectories.cpu(), batch.inputs.cpu(), ctx.figure(f"fixed_points_{name}"), name)
        ctx.log(f"fixedpoints: {name}: {len(fps)} points, by index {fps.by_index()}, "
                f"max q {entry['max_q']:.1e} ({how})")
