"""Stage ``lsnn``: an LSNN of LIF and ALIF units (Bellec et al. 2018) trained on the task with surrogate
gradients, scored on held-out trials; raster, output, firing rates and training figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ratenets import TrainConfig, train
from ratenets.plots import plot_training
from spiking import LSNN, LSNNConfig, plot_output_vs_target, plot_raster, plot_rate_histogram, unit_rates_hz

from ..context import RunContext
from ..evaluation import DERIVED, N_SAVED_TRIALS, TrainedModelSection, held_out_score, save_model_results
from ..registry import Stage, register


@dataclass(frozen=True)
class LSNNSection(TrainedModelSection):
    """The LSNN (its input/output widths and dt come from the task) and its training."""

    KEY = "lsnn"
    model: LSNNConfig = field(default_factory=LSNNConfig, metadata={"derived": DERIVED})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(n_steps=1500, lr=0.005))
    eval_trials: int = 1000


def run(ctx: RunContext) -> None:
    sec = ctx.section
    model = LSNN(sec.model_config(ctx.task), seed=ctx.cfg.seed)
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
        "mean_rate_hz": model.mean_rate_hz(rollout),
    }
    save_model_results(ctx, "lsnn", batch, rollout, {"spikes": rollout.spikes[:N_SAVED_TRIALS].to(torch.uint8)})
    ctx.writer.figure("lsnn_training", plot_training(result.history, title="LSNN"))
    ctx.writer.figure("lsnn_raster", plot_raster(rollout.spikes[0], dt_ms=dt, groups=model.unit_groups(),
                                                 title="LSNN spikes"))
    ctx.writer.figure("lsnn_output", plot_output_vs_target(rollout.outputs[0], batch.targets[0], dt_ms=dt,
                                                           mask=batch.mask[0], title="LSNN output"))
    ctx.writer.figure("lsnn_rates", plot_rate_histogram(unit_rates_hz(rollout.spikes, model),
                                                        target_hz=model.cfg.target_rate_hz, title="LSNN firing rates"))
    ctx.log(f"lsnn: {result.step} updates, score {score:.4f} on {sec.eval_trials} held-out trials, "
            f"mean rate {ctx.summary['models']['lsnn']['mean_rate_hz']:.1f} Hz")


STAGE = register(Stage("lsnn", order=30, run=run, section=LSNNSection, models=("lsnn",),
                       description="LSNN (LIF + ALIF) trained with surrogate gradients"))
