"""Scoring on held-out trials and the per-model arrays of ``results.h5``, shared by the model stages."""

from __future__ import annotations

import dataclasses

import torch

from tasks import TaskBatch

from .context import RunContext
from .errors import ConfigError

N_SAVED_TRIALS = 32  # trials whose full trajectories go into results.h5
MAX_EVAL_TRIALS = 1_000_000
DERIVED = ("n_inputs", "n_outputs", "dt_ms")  # a model's settings that come from the task, never by hand


def check_eval_trials(n: int) -> None:
    if not 1 <= n <= MAX_EVAL_TRIALS:
        raise ValueError(f"eval_trials must be in [1, {MAX_EVAL_TRIALS}], got {n}")


class TrainedModelSection:
    """Shared by the config sections of trained models (``model``, ``train``, ``eval_trials``; the model's widths
    and time step come from the task, the one source of the rate step). Subclasses are frozen dataclasses."""

    def __post_init__(self):
        check_eval_trials(self.eval_trials)

    def model_config(self, task):
        return dataclasses.replace(self.model, n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms)

    def check_with_task(self, task) -> None:
        try:
            self.model_config(task)
        except ValueError as e:
            raise ConfigError(f"config key {self.KEY}.model: {e}") from None


@torch.no_grad()
def held_out_score(model, ctx: RunContext, n_trials: int, batch_size: int = 250) -> tuple[float, TaskBatch, object]:
    """Score ``model`` (eval mode) on ``n_trials`` held-out trials (a stream no training or validation batch
    draws from, ``ratenets.seeds.HELD_OUT``); also return the first batch and its rollout."""
    task = ctx.task.held_out()
    gen = ctx.generator()
    model.eval()
    total, first, done = 0.0, None, 0
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
    ctx.writer.h5_group(name, arrays, attrs)
