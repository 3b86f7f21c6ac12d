"""Stage ``force``: a rate FORCE network (Sussillo & Abbott 2009; ``baselines.ForceRNN``) trained on the task by
recursive least squares on its fed-back readout, over one long stream of training trials placed end to end (the
network is never reset between them); scored on held-out trials, trajectories and figures saved. Its closed loop
is a map of the state, so the fixed-point stage analyses it like every model.

Only the readout learns, in one pass; a finished checkpoint is loaded instead of refitting, and an interrupted fit
starts again from the beginning (it holds no optimiser state worth resuming: one pass over the stream)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from matplotlib.figure import Figure

from baselines import ForceConfig, ForceRNN, ForceTrainConfig, fit_force
from ratenets import load_checkpoint, save_checkpoint
from ratenets.plots import plot_trials
from ratenets.seeds import TRAINING

from ..context import RunContext
from ..evaluation import DERIVED, N_SAVED_TRIALS, TrainedModelSection, held_out_score, save_model_results
from ..outputs import to_numpy
from ..registry import Stage, register

MAX_TRAIN_TRIALS = 100_000


@dataclass(frozen=True)
class ForceSection(TrainedModelSection):
    """The FORCE network (``model``; its input/output widths and dt come from the task), its RLS settings
    (``train``), how many task trials form the training stream, and the held-out trials it is scored on."""

    KEY = "force"
    # input_scale 5: flip-flop pulses must move the state between attractors (held-out 0.99; 0.92 at 1.0)
    model: ForceConfig = field(default_factory=lambda: ForceConfig(n_units=500, input_scale=5.0),
                               metadata={"derived": DERIVED})
    train: ForceTrainConfig = field(default_factory=ForceTrainConfig)
    train_trials: int = 200
    eval_trials: int = 1000

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.train_trials, bool) or not 1 <= self.train_trials <= MAX_TRAIN_TRIALS:
            raise ValueError(f"train_trials must be in [1, {MAX_TRAIN_TRIALS}], got {self.train_trials}")


def training_stream(task, n_trials: int, generator: torch.Generator):
    """``n_trials`` task trials end to end: inputs ``[n·T, I]``, targets and mask ``[n·T, O]``."""
    batch = task.sample(n_trials, generator)
    flat = [x.reshape(-1, x.shape[-1]) for x in (batch.inputs, batch.targets, batch.mask)]
    return tuple(flat)


def training_curves(errors, weight_change, mask, n_trial_steps: int) -> dict:
    """Per training trial: RMSE of the outputs on its scored steps and Σ|ΔW_out| (plain lists, for the
    checkpoint and the figure)."""
    err, m = to_numpy(errors), to_numpy(mask) > 0
    n = len(err) // n_trial_steps
    sq = np.where(m, err**2, 0.0)[: n * n_trial_steps].reshape(n, n_trial_steps, -1).sum(axis=(1, 2))
    count = m[: n * n_trial_steps].reshape(n, n_trial_steps, -1).sum(axis=(1, 2))
    dw = to_numpy(weight_change)[: n * n_trial_steps].reshape(n, n_trial_steps).sum(axis=1)
    return {"trial_rmse": np.sqrt(sq / np.maximum(count, 1)).tolist(), "trial_weight_change": dw.tolist()}


def plot_force_training(curves: dict, trial_ms: float, title: str = "") -> Figure:
    """The ``training_curves``: RMSE per training trial and the readout's change per trial."""
    rmse, dw = np.asarray(curves["trial_rmse"]), np.asarray(curves["trial_weight_change"])
    trials = np.arange(1, len(rmse) + 1)
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.semilogy(trials, np.maximum(rmse, 1e-12), color="k", lw=0.8)
    ax1.set(xlabel="training trial", ylabel="RMSE (scored steps)", title=f"{title} FORCE training".strip())
    ax2.semilogy(trials, np.maximum(dw, 1e-12), color="C0", lw=0.8)
    ax2.set(xlabel="training trial", ylabel="Σ |ΔW_out| in the trial", title=f"{trial_ms:g} ms per trial")
    return fig


def _finished(path, model: ForceRNN, settings: dict) -> bool:
    """Load a finished fit with the same settings from ``path`` into ``model``; False when there is none."""
    if not path.exists():
        return False
    ckpt = load_checkpoint(path)
    if not ckpt.get("done") or ckpt.get("fit") != settings or ckpt.get("model_config") != model.config_dict():
        return False
    model.load_state_dict(ckpt["model_state"])
    return True


def run(ctx: RunContext) -> None:
    sec, task = ctx.section, ctx.task
    model = ForceRNN(sec.model_config(task), seed=ctx.cfg.seed).to(ctx.device)
    path = ctx.checkpoint("force")
    settings = {"train": asdict(sec.train), "train_trials": sec.train_trials, "seed": ctx.cfg.seed}
    if _finished(path, model, settings):
        ctx.log("force: loaded the finished fit from its checkpoint")
        curves = load_checkpoint(path)["curves"]
    else:
        inputs, targets, mask = training_stream(task, sec.train_trials, ctx.generator(TRAINING))
        fit = fit_force(model, targets, inputs, train=sec.train, error_mask=mask)
        curves = training_curves(fit.errors[0], fit.weight_change[0], mask, task.n_steps)
        save_checkpoint(path, model, done=True, fit=settings, curves=curves)
    tenth = curves["trial_rmse"][-max(1, len(curves["trial_rmse"]) // 10):]
    train_rmse = float(np.mean(tenth))
    ctx.writer.figure("force_training", plot_force_training(curves, task.n_steps * task.dt_ms, title=task.name))
    score, batch, rollout = held_out_score(model, ctx, sec.eval_trials)
    ctx.summary["models"]["force"] = {
        "score": score,
        "n_trials": sec.eval_trials,
        "train_trials": sec.train_trials,
        "train_rmse_last_tenth": train_rmse,  # mean of the per-trial RMSE over the last tenth of the stream
        "n_units": model.cfg.n_units,
    }
    save_model_results(ctx, "force", batch, rollout, {"rates": rollout.rates[:N_SAVED_TRIALS]})
    ctx.writer.figure("force_trials", plot_trials(
        to_numpy(batch.inputs), to_numpy(rollout.outputs), to_numpy(batch.targets), to_numpy(batch.mask),
        task.dt_ms, title=f"FORCE on {task.name}: held-out score {score:.3f}"))
    ctx.log(f"force: {sec.train_trials} training trials, score {score:.4f} on {sec.eval_trials} held-out trials")


def report(ctx: RunContext) -> list[str]:
    m = ctx.summary["models"].get("force")
    if not isinstance(m, dict):
        return []
    return ["## FORCE (Sussillo & Abbott 2009)", "",
            f"Rate network of {m.get('n_units')} units, readout fed back and trained by recursive least squares on "
            f"{m.get('train_trials')} trials end to end: held-out score {m.get('score', float('nan')):.3f} on "
            f"{m.get('n_trials')} trials (training RMSE over the last tenth "
            f"{m.get('train_rmse_last_tenth', float('nan')):.3f})."]


STAGE = register(Stage("force", order=36, run=run, section=ForceSection, models=("force",), report=report,
                       description="rate FORCE network trained on the task by RLS"))
