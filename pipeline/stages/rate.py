"""Stage ``rate``: train the Kim-style rate network (Kim, Li & Sejnowski 2019) on the task, score it on
held-out trials, save its trajectories and figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from ratenets import RateRNN, RateRNNConfig, TrainConfig, train
from ratenets.plots import plot_training, plot_trials

from ..context import RunContext
from ..evaluation import DERIVED, N_SAVED_TRIALS, TrainedModelSection, held_out_score, save_model_results
from ..outputs import to_numpy
from ..registry import Stage, register


@dataclass(frozen=True)
class RateSection(TrainedModelSection):
    """The rate network (``model``; its input/output widths and dt come from the task) and its training."""

    KEY = "rate"
    model: RateRNNConfig = field(default_factory=lambda: RateRNNConfig(n_units=200), metadata={"derived": DERIVED})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_trials: int = 1000


def run(ctx: RunContext) -> None:
    sec = ctx.section
    task = ctx.task
    model_cfg = sec.model_config(task)
    model = RateRNN(model_cfg, seed=ctx.cfg.seed)
    result = train(model, task, sec.train, ctx.checkpoint("rate"), ctx.device, seed=ctx.cfg.seed, progress=True)
    if result.resumed_from:
        ctx.log(f"rate: resumed from the checkpoint at step {result.resumed_from}")
    score, batch, rollout = held_out_score(model, ctx, sec.eval_trials)
    taus = to_numpy(model.taus_ms())
    ctx.summary["models"]["rate"] = {
        "score": score,
        "n_trials": sec.eval_trials,
        "train_steps": result.step,
        "final_loss": result.history["loss"][-1] if result.history["loss"] else None,
        "n_units": model_cfg.n_units,
        "tau_ms": {"min": float(taus.min()), "median": float(sorted(taus)[len(taus) // 2]), "max": float(taus.max())},
    }
    save_model_results(ctx, "rate", batch, rollout, {"rates": rollout.rates[:N_SAVED_TRIALS]})
    ctx.writer.figure("rate_training", plot_training(result.history, title="rate RNN"))
    ctx.writer.figure("rate_trials", plot_trials(
        to_numpy(batch.inputs), to_numpy(rollout.outputs), to_numpy(batch.targets), to_numpy(batch.mask),
        task.dt_ms, title=f"rate RNN on {task.name}: held-out score {score:.3f}"))
    ctx.log(f"rate: {result.step} updates, score {score:.4f} on {sec.eval_trials} held-out trials")


STAGE = register(Stage("rate", order=10, run=run, section=RateSection, models=("rate",),
                       description="Kim-style rate RNN trained on the task"))
