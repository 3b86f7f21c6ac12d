"""The pipeline's stages. Each trains or analyses one model and records its results in the run
directory (``summary.json``, ``results.h5``, ``figures/``, ``checkpoints/``)."""

from __future__ import annotations

import torch

from ratenets import RateRNN, train
from ratenets.plots import plot_training, plot_trials
from tasks import TaskBatch

from .pipeline import RunContext, model_done, stage
from .results import write_h5_group

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


@stage("rate", done=model_done("rate"), checkpoints=("rate",))
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
